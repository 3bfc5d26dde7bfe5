package tests

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/server/underlay/underlaytest"
)

// watchTree waits for cond, checked after every notification of a
// Subscribe ON_CHANGE stream on /kedge (no polling); 60 s at most.
func watchTree(t testing.TB, c gpb.GNMIClient, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, UpdatesOnly: true,
		Subscription: []*gpb.Subscription{{Path: path(t, "/kedge"), Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}}); err != nil {
		t.Fatal(err)
	}
	for !cond() {
		if _, err := sc.Recv(); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

func get1(t testing.TB, c gpb.GNMIClient, p string) string {
	t.Helper()
	for k, v := range leaves(t, c, p) {
		if k == p {
			return v
		}
	}
	return ""
}

func setJSON(t testing.TB, c gpb.GNMIClient, p, js string) {
	t.Helper()
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, p), Val: jsonVal([]byte(js))}}}); err != nil {
		t.Fatalf("set %s: %v", p, err)
	}
}

// TestUnderlayThroughDaemon drives the underlay through a daemon acting
// in a throwaway namespace: two OpenConfig test devices (one
// commit-confirmed and watched ON_CHANGE, one plain and polled) and a
// VLAN that is also this node's interface (a macvlan on rtA: this kernel
// lacks 8021q, which the state's kind shows). Proposals go in over gNMI;
// the posture level moves through the posture engine, whose transition
// runs the underlay step: at 3 an operator's proposal waits while
// master's executes; at 1 nothing reaches the devices and the node's
// interface is frozen as applied; back at 5 everything waiting lands.
func TestUnderlayThroughDaemon(t *testing.T) {
	n := newNS(t, "ul")
	dir := t.TempDir()
	pki, err := underlaytest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	devs := map[string]*underlaytest.Device{}
	for _, s := range []struct {
		name   string
		cc, oc bool
	}{{"sw1", true, true}, {"sw2", false, false}} {
		d, err := underlaytest.New(underlaytest.Options{
			TLS:             &tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientCAs: pki.CAPool, ClientAuth: tls.RequireAndVerifyClientCert},
			CommitConfirmed: s.cc, OnChange: s.oc, Username: "kedge", Password: "s3cret",
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		devs[s.name] = d
	}
	writeSecret(t, dir+"/device.pw", "s3cret\n")
	cfg := daemonCfg(t, t.TempDir(), n.name)
	cfg.UnderlayCredentials = dir
	c, _ := startKedge(t, cfg)

	var dj []string
	for _, name := range []string{"sw1", "sw2"} {
		d := devs[name]
		dj = append(dj, fmt.Sprintf(`{"name":%q,"config":{"name":%q,"address":"127.0.0.1","port":%d,"server-name":"device","ca-file":"ca.pem",`+
			`"cert-file":"client.pem","key-file":"client.key","username":"kedge","password-file":"device.pw","commit-confirmed":%v,"on-change":%v}}`,
			name, name, d.Addr().Port(), name == "sw1", name == "sw1"))
	}
	vlan := func(id int, extra string) string {
		return fmt.Sprintf(`{"id":%d,"config":{"id":%d,"name":"v%d"%s},"members":{"member":[`+
			`{"device":"sw1","port":"eth1","config":{"device":"sw1","port":"eth1"}},`+
			`{"device":"sw2","port":"eth1","config":{"device":"sw2","port":"eth1"}}]}}`, id, id, id, extra)
	}
	setJSON(t, c, "/kedge/underlay", `{"devices":{"device":[`+strings.Join(dj, ",")+`]},"vlans":{"vlan":[`+
		vlan(100, `,"parent":"rtA","addresses":["10.100.0.1/24"]`)+","+vlan(200, "")+","+vlan(300, "")+`]}}`)
	propose := func(id, tier string, vlans ...int) {
		t.Helper()
		vs := fmt.Sprint(vlans)
		setJSON(t, c, "/kedge/underlay/mutations/mutation[id="+id+"]",
			fmt.Sprintf(`{"config":{"id":%q,"tier":%q,"proposer":"e2e","vlans":%s}}`, id, tier, strings.ReplaceAll(vs, " ", ",")))
	}
	status := func(id string) string {
		return get1(t, c, "/kedge/underlay/mutations/mutation[id="+id+"]/state/status")
	}
	reason := func(id string) string {
		return get1(t, c, "/kedge/underlay/mutations/mutation[id="+id+"]/state/reason")
	}
	vlans := func(name string) []uint16 {
		var out []uint16
		for id := range devs[name].Config().Vlan {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	level := func(l uint64) {
		t.Helper()
		setLevel(t, c, l)
		want := fmt.Sprint(l)
		watchTree(t, c, "effective level "+want, func() bool { return get1(t, c, "/kedge/posture/state/effective-level") == want })
	}

	// This node's VLAN interface, through the route backend.
	watchTree(t, c, "VLAN 100 interface up", func() bool {
		return get1(t, c, "/kedge/underlay/vlans/vlan[id=100]/state/status") == "up"
	})
	if k := get1(t, c, "/kedge/underlay/vlans/vlan[id=100]/state/kind"); k != "macvlan" {
		t.Errorf("VLAN 100 kind %q", k)
	}
	t.Logf("VLAN 100 is a macvlan on rtA: this kernel has no 8021q, so a tagged VLAN interface is not tested here")
	if addrs := linkAddrs(t, n, "kvl100"); !slices.Equal(addrs, []string{"10.100.0.1/24"}) {
		t.Errorf("kvl100 addresses %v", addrs)
	}

	// 5: an operator's proposal executes on both devices.
	propose("m1", "operator", 100, 200)
	watchTree(t, c, "m1 executed", func() bool { return status("m1") == "executed" })
	for _, name := range []string{"sw1", "sw2"} {
		if got := vlans(name); !slices.Equal(got, []uint16{100, 200}) {
			t.Errorf("%s VLANs %v", name, got)
		}
	}

	// 3: the operator waits, master executes.
	level(3)
	propose("m2", "operator", 300)
	watchTree(t, c, "m2 waits", func() bool { return status("m2") == "proposed" && strings.Contains(reason("m2"), "not operator") })
	propose("m3", "master", 200)
	watchTree(t, c, "m3 executed", func() bool { return status("m3") == "executed" })

	// 1: nothing is dispatched; the node's interface stays as applied.
	level(1)
	sets := devs["sw1"].Stats().Sets + devs["sw2"].Stats().Sets
	steps := leaves(t, c, "/kedge/posture/state/last-transition/steps")
	found := false
	for k, v := range steps {
		if strings.HasSuffix(k, "/state/name") && v == "underlay" {
			found = true
		}
	}
	if !found {
		t.Errorf("the 5->1 transition has no underlay step: %v", steps)
	}
	propose("m4", "master", 300)
	watchTree(t, c, "m4 frozen", func() bool { return strings.Contains(reason("m4"), "all underlay operations are frozen") })
	// One Set edits VLAN 100 and adds VLAN 500: once 500 shows frozen, the
	// route reconciler has read the edit too.
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{
		{Path: path(t, "/kedge/underlay/vlans/vlan[id=100]/config"), Val: jsonVal([]byte(`{"addresses":["10.100.0.99/24"]}`))},
		{Path: path(t, "/kedge/underlay/vlans/vlan[id=500]"), Val: jsonVal([]byte(`{"id":500,"config":{"id":500,"parent":"rtA"}}`))},
	}}); err != nil {
		t.Fatal(err)
	}
	watchTree(t, c, "VLAN 500 frozen", func() bool {
		return get1(t, c, "/kedge/underlay/vlans/vlan[id=500]/state/status") == "frozen"
	})
	if _, err := n.h.LinkByName("kvl500"); err == nil {
		t.Error("level 1 made kvl500")
	}
	if addrs := linkAddrs(t, n, "kvl100"); !slices.Equal(addrs, []string{"10.100.0.1/24"}) {
		t.Errorf("level 1 changed kvl100's addresses: %v", addrs)
	}
	if got := devs["sw1"].Stats().Sets + devs["sw2"].Stats().Sets; got != sets {
		t.Errorf("level 1 sent %d Sets to the devices", got-sets)
	}

	// 5: what waited lands.
	level(5)
	for _, id := range []string{"m2", "m4"} {
		watchTree(t, c, id+" executed", func() bool { return status(id) == "executed" })
	}
	for _, name := range []string{"sw1", "sw2"} {
		if got := vlans(name); !slices.Equal(got, []uint16{100, 200, 300}) {
			t.Errorf("%s VLANs %v", name, got)
		}
	}
	watchTree(t, c, "VLAN 500 up", func() bool {
		return get1(t, c, "/kedge/underlay/vlans/vlan[id=500]/state/status") == "up"
	})
	if addrs := linkAddrs(t, n, "kvl100"); !slices.Equal(addrs, []string{"10.100.0.99/24"}) {
		t.Errorf("back at 5, kvl100 addresses %v", addrs)
	}
}

// linkAddrs lists a link's global addresses in the namespace.
func linkAddrs(t testing.TB, n *rtNS, name string) []string {
	t.Helper()
	l, err := n.h.LinkByName(name)
	if err != nil {
		return nil
	}
	as, err := n.h.AddrList(l, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	slices.Sort(out)
	return out
}

func writeSecret(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
