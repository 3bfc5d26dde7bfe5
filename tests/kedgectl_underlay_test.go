package tests

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/underlay/underlaytest"
)

// TestKedgectlUnderlay runs kedgectl underlay against a daemon driving an
// OpenConfig test device: a proposal executed and confirmed on it, one
// waiting at level 3 for want of tier, and drift that the device refuses
// to have repaired (golden output, as TestKedgectl).
func TestKedgectlUnderlay(t *testing.T) {
	bin := gcliBuild(t, t.TempDir(), "github.com/guildhouse-co/kedge/server/cmd/kedgectl")
	dir := t.TempDir()
	pki, err := underlaytest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := underlaytest.New(underlaytest.Options{
		TLS:             &tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientCAs: pki.CAPool, ClientAuth: tls.RequireAndVerifyClientCert},
		CommitConfirmed: true, OnChange: true, Username: "kedge", Password: "s3cret",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	writeSecret(t, filepath.Join(dir, "device.pw"), "s3cret\n")

	data := t.TempDir()
	pol := filepath.Join(data, "policy.yaml")
	writeSecret(t, pol, fmt.Sprintf("tiers:\n  master:\n    write: [\"/\"]\nunix:\n  uids:\n    %d: master\n", os.Getuid()))
	cfg := config.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Socket = data, "", filepath.Join(data, "kedge.sock")
	cfg.NodeName, cfg.Dataplane, cfg.MetricsListen, cfg.Policy = "ul-node", "off", "off", pol
	cfg.UnderlayCredentials = dir
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	c, _ := startKedge(t, cfg)
	setJSON(t, c, "/kedge/underlay", fmt.Sprintf(`{"devices":{"device":[{"name":"sw1","config":{"name":"sw1","address":"127.0.0.1","port":%d,`+
		`"vendor":"openconfig","role":"leaf","server-name":"device","ca-file":"ca.pem","cert-file":"client.pem","key-file":"client.key",`+
		`"username":"kedge","password-file":"device.pw","commit-confirmed":true,"on-change":true}}]},`+
		`"vlans":{"vlan":[{"id":200,"config":{"id":200,"name":"v200"},"members":{"member":[{"device":"sw1","port":"eth1","config":{"device":"sw1","port":"eth1"}}]}},`+
		`{"id":300,"config":{"id":300,"name":"v300"},"members":{"member":[{"device":"sw1","port":"eth2","config":{"device":"sw1","port":"eth2"}}]}}]}}`,
		dev.Addr().Port()))
	status := func(id string) string {
		return get1(t, c, "/kedge/underlay/mutations/mutation[id="+id+"]/state/status")
	}
	setJSON(t, c, "/kedge/underlay/mutations/mutation[id=m1]", `{"config":{"id":"m1","tier":"master","proposer":"alice","description":"trunk v200","vlans":[200]}}`)
	watchTree(t, c, "m1 executed", func() bool { return status("m1") == "executed" })
	// Someone renames VLAN 200 on the device, which then refuses Kedge's
	// repair: the drift stays reported.
	dev.SetFault(underlaytest.Fault{RejectSets: codes.PermissionDenied})
	if err := dev.Mutate(func(d *oc.Device) { d.GetOrCreateVlan(200).Name = strPtr("by-hand") }); err != nil {
		t.Fatal(err)
	}
	addr := []string{"--addr", "unix://" + cfg.Socket}
	env := []string{"KEDGE_ADDR=", "KEDGE_USER=", "KEDGE_PASSWORD="}
	watchTree(t, c, "drift on sw1", func() bool {
		var ds []summary.Device
		json.Unmarshal([]byte(ctlMust(t, bin, env, append(addr, "underlay", "drift", "-o", "json")...).stdout), &ds)
		return len(ds) == 1 && len(ds[0].DriftPaths) > 0
	})
	setLevel(t, c, 3)
	watchTree(t, c, "effective level 3", func() bool { return get1(t, c, "/kedge/posture/state/effective-level") == "3" })
	setJSON(t, c, "/kedge/underlay/mutations/mutation[id=m2]", `{"config":{"id":"m2","tier":"operator","proposer":"bob","vlans":[300]}}`)
	watchTree(t, c, "m2 waits", func() bool {
		return status("m2") == "proposed" && get1(t, c, "/kedge/underlay/mutations/mutation[id=m2]/state/reason") != ""
	})

	m := masker{}
	golden(t, m, "underlay", ctlMust(t, bin, env, append(addr, "underlay")...).stdout)
	golden(t, m, "underlay-drift", ctlMust(t, bin, env, append(addr, "underlay", "drift")...).stdout)
	// The executed push is in the notary log, typed device-push (the
	// refused repair changed nothing, so it is no push). Log indexes
	// depend on what else was recorded: the first column is cut.
	q := ctlMust(t, bin, env, append(addr, "notary", "query", "--type", "device-push")...).stdout
	var rows []string
	for l := range strings.Lines(q) {
		rows = append(rows, regexp.MustCompile(`^\d+ +`).ReplaceAllString(l, "<index>  "))
	}
	golden(t, m, "underlay-notary", strings.Join(rows, ""))
	r := kedgectl(t, bin, env, "", append(addr, "underlay", "bogus")...)
	if r.code != 2 {
		t.Errorf("underlay bogus: exit %d, want 2\n%s", r.code, r.stderr)
	}
}

func strPtr(s string) *string { return &s }
