package tests

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gen/oc"
	notaryv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/notary/v1"
	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	mu "github.com/guildhouse-co/kedge/models/underlay"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/underlay/underlaytest"
)

// vlanHash is SHA-256 of a device's VLAN container as the device holds
// it, in canonical JSON: computed from the device, not from what Kedge
// recorded.
func vlanHash(t testing.TB, d *underlaytest.Device, id uint16) []byte {
	t.Helper()
	v := d.Config().GetVlan(id)
	if v == nil {
		t.Fatalf("the device has no VLAN %d", id)
	}
	js, err := ygot.Marshal7951(v, &ygot.RFC7951JSONConfig{AppendModuleName: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := mu.Canonical(js)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(c)
	return h[:]
}

// testDevices starts two OpenConfig test devices with mTLS (sw1
// commit-confirmed and watched ON_CHANGE, sw2 plain and polled) and
// returns the credentials directory, the devices and their JSON entries
// for /kedge/underlay/devices.
func testDevices(t testing.TB) (string, map[string]*underlaytest.Device, []string) {
	t.Helper()
	dir := t.TempDir()
	pki, err := underlaytest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	devs := map[string]*underlaytest.Device{}
	var dj []string
	for _, name := range []string{"sw1", "sw2"} {
		cc := name == "sw1"
		d, err := underlaytest.New(underlaytest.Options{
			TLS:             &tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientCAs: pki.CAPool, ClientAuth: tls.RequireAndVerifyClientCert},
			CommitConfirmed: cc, OnChange: cc,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		devs[name] = d
		dj = append(dj, fmt.Sprintf(`{"name":%q,"config":{"name":%q,"address":"127.0.0.1","port":%d,"server-name":"device","ca-file":"ca.pem",`+
			`"cert-file":"client.pem","key-file":"client.key","commit-confirmed":%v,"on-change":%v}}`, name, name, d.Addr().Port(), cc, cc))
	}
	return dir, devs, dj
}

// boolLeaf reads a boolean leaf: "true", "false" or "" when unset.
func boolLeaf(t testing.TB, c gpb.GNMIClient, p string) string {
	t.Helper()
	resp, err := c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, p)}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		return ""
	}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			if b, ok := u.GetVal().GetValue().(*gpb.TypedValue_BoolVal); ok {
				return strconv.FormatBool(b.BoolVal)
			}
		}
	}
	return ""
}

// vlanChange is a device push's change of VLAN id on dev.
func vlanChange(m *qmv1.NetworkMutationArtifact, dev string, id int) *qmv1.LeafChange {
	for _, c := range m.GetChanges() {
		if c.GetDevice() == dev && c.GetPath() == "/vlans/vlan[vlan-id="+strconv.Itoa(id)+"]" {
			return c
		}
	}
	return nil
}

// TestUnderlayPushesAreNotarized runs a daemon (notary on, shipping to a
// reference Quartermaster receiver; dataplane off, so no root) with two
// OpenConfig test devices, and checks that every device push becomes a
// NetworkMutationArtifact: an operator's mutation at 5, a drift repair at
// 4, master's mutation at 3 (the operator's waits and has none), and
// drift at 3 reported without a repair or an artifact. Writer, tier,
// level and fidelity are as executed, the hashes are those of the
// devices' containers, a container's before is the after of the push
// that wrote it, the NotaryService lists them by type and level, the
// receiver holds the same entries, and a restart adds no duplicate.
func TestUnderlayPushesAreNotarized(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rcv := startReceiver(t, ln)
	dir, devs, dj := testDevices(t)
	cfg := notaryDaemonCfg(t, ln.Addr().String())
	cfg.UnderlayCredentials = dir
	d, err := server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			d.Shutdown(5 * time.Second)
		}
	})
	c := unixClient(t, d.SocketPath())

	setJSON(t, c, "/kedge/underlay", `{"devices":{"device":[`+strings.Join(dj, ",")+`]},"vlans":{"vlan":[`+
		`{"id":100,"config":{"id":100,"name":"v100"},"members":{"member":[{"device":"sw1","port":"eth1","config":{"device":"sw1","port":"eth1"}},`+
		`{"device":"sw2","port":"eth1","config":{"device":"sw2","port":"eth1"}}]}},`+
		`{"id":200,"config":{"id":200,"name":"v200"},"members":{"member":[{"device":"sw1","port":"eth2","config":{"device":"sw1","port":"eth2"}}]}}]}}`)
	propose := func(id, tier string, extra string) {
		t.Helper()
		setJSON(t, c, "/kedge/underlay/mutations/mutation[id="+id+"]",
			fmt.Sprintf(`{"config":{"id":%q,"tier":%q,"proposer":"e2e-%s",%s}}`, id, tier, tier, extra))
	}
	status := func(id string) string {
		return get1(t, c, "/kedge/underlay/mutations/mutation[id="+id+"]/state/status")
	}
	level := func(l uint64) {
		t.Helper()
		setLevel(t, c, l)
		want := strconv.FormatUint(l, 10)
		watchTree(t, c, "level "+want, func() bool {
			return get1(t, c, "/kedge/posture/state/effective-level") == want && get1(t, c, "/kedge/underlay/state/level") == want &&
				get1(t, c, "/kedge/notary/state/level") == want
		})
	}
	drift := func(name string) string {
		return boolLeaf(t, c, "/kedge/underlay/devices/device[name="+name+"]/state/drift")
	}
	tamper := func(name string) {
		t.Helper()
		if err := devs["sw1"].Mutate(func(d *oc.Device) { d.GetVlan(100).Name = ygot.String(name) }); err != nil {
			t.Fatal(err)
		}
	}

	// 5: an operator's mutation on both devices.
	level(5)
	propose("m1", "operator", `"vlans":[100,200]`)
	watchTree(t, c, "m1 executed", func() bool { return status("m1") == "executed" })
	m1After := map[string][]byte{"sw1": vlanHash(t, devs["sw1"], 100), "sw2": vlanHash(t, devs["sw2"], 100)}

	// 4: drift behind Kedge's back is repaired.
	level(4)
	tamper("cli-at-4")
	tampered := vlanHash(t, devs["sw1"], 100)
	if err := devs["sw1"].WaitFor(rpcCtx(t), func(d *oc.Device) bool { return d.GetVlan(100).GetName() == "v100" }); err != nil {
		t.Fatalf("drift at 4 not repaired: %v", err)
	}
	watchTree(t, c, "sw1 repaired", func() bool { return drift("sw1") == "false" })

	// 3: the operator waits (no artifact), master executes.
	level(3)
	// (m2 is for sw2 only, so that after the restart sw1's drift is
	// repaired by a repair, not by m2's push.)
	propose("m2", "operator", `"vlans":[100],"devices":["sw2"]`)
	watchTree(t, c, "m2 waits", func() bool { return status("m2") == "proposed" })
	setJSON(t, c, "/kedge/underlay/vlans/vlan[id=100]/config", `{"name":"renamed"}`)
	propose("m3", "master", `"vlans":[100]`)
	watchTree(t, c, "m3 executed", func() bool { return status("m3") == "executed" })
	m3After := vlanHash(t, devs["sw1"], 100)
	// Drift at 3 is reported, not repaired.
	tamper("cli-at-3")
	watchTree(t, c, "drift at 3 reported", func() bool { return drift("sw1") == "true" })

	n := d.Notary()
	if err := n.Sync(rpcCtx(t)); err != nil {
		t.Fatal(err)
	}
	// The NotaryService, as a client asks it.
	conn, err := grpc.NewClient("unix://"+d.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ns := notaryv1.NewNotaryServiceClient(conn)
	list := func(levels ...uint32) []*qmv1.LogEntry {
		t.Helper()
		resp, err := ns.ListArtifacts(rpcCtx(t), &notaryv1.ListArtifactsRequest{
			Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH}, PostureLevels: levels, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetEntries()
	}
	pushes := list()
	byID := map[string]*qmv1.LogEntry{}
	var ids []string
	for _, e := range pushes {
		id := e.GetNetworkMutation().GetDevicePush().GetMutationId()
		byID[id] = e
		ids = append(ids, id)
	}
	if len(pushes) != 3 || byID["m1"] == nil || byID["m3"] == nil || !strings.HasPrefix(ids[1], "repair/sw1/") {
		t.Fatalf("device push artifacts %v, want m1, one repair of sw1, m3", ids)
	}
	check := func(e *qmv1.LogEntry, lvl uint8, identity, tier, method string, kind qmv1.DevicePushKind, devices ...string) {
		t.Helper()
		m := e.GetNetworkMutation()
		dp := m.GetDevicePush()
		a, _ := accord.Default(lvl)
		if e.GetPostureLevel() != uint32(lvl) || m.GetPostureLevel() != uint32(lvl) || m.GetWriter().GetIdentity() != identity ||
			m.GetWriter().GetTier() != tier || m.GetWriter().GetMethod() != method || dp.GetKind() != kind ||
			dp.GetResult() != qmv1.DevicePushResult_DEVICE_PUSH_RESULT_EXECUTED || fmt.Sprint(dp.GetDevices()) != fmt.Sprint(devices) ||
			e.GetFidelity().GetFlushMode() != notarymodel.FlushMode(a.NotaryFlush) || e.GetFidelity().GetPayloadHashing() != a.NotaryPayloadHashing {
			t.Errorf("%s: level %d writer %v kind %v devices %v fidelity %v; want level %d %s/%s/%s %v %v",
				dp.GetMutationId(), e.GetPostureLevel(), m.GetWriter(), dp.GetKind(), dp.GetDevices(), e.GetFidelity(),
				lvl, identity, tier, method, kind, devices)
		}
		if int(m.GetChangeCount()) != len(m.GetChanges()) || m.GetChangeCount() == 0 {
			t.Errorf("%s: %d of %d changes listed", dp.GetMutationId(), len(m.GetChanges()), m.GetChangeCount())
		}
	}
	check(byID["m1"], 5, "e2e-operator", "operator", "proposal", qmv1.DevicePushKind_DEVICE_PUSH_KIND_MUTATION, "sw1", "sw2")
	check(byID[ids[1]], 4, "kedge", "master", "drift-repair", qmv1.DevicePushKind_DEVICE_PUSH_KIND_DRIFT_REPAIR, "sw1")
	check(byID["m3"], 3, "e2e-master", "master", "proposal", qmv1.DevicePushKind_DEVICE_PUSH_KIND_MUTATION, "sw1", "sw2")
	if dp := byID["m1"].GetNetworkMutation().GetDevicePush(); dp.GetQueueSequence() == 0 || dp.GetIntentSequence() == 0 ||
		byID["m3"].GetNetworkMutation().GetDevicePush().GetQueueSequence() <= dp.GetQueueSequence() {
		t.Errorf("sequences: m1 %v, m3 %v", dp, byID["m3"].GetNetworkMutation().GetDevicePush())
	}

	// The hashes are the devices' containers, chained push to push.
	for _, dev := range []string{"sw1", "sw2"} {
		ch := vlanChange(byID["m1"].GetNetworkMutation(), dev, 100)
		if ch == nil || ch.GetOperation() != qmv1.LeafOperation_LEAF_OPERATION_REPLACE || ch.GetBeforeSha256() != nil ||
			!bytes.Equal(ch.GetAfterSha256(), m1After[dev]) {
			t.Errorf("m1 on %s: %v, want after %x", dev, ch, m1After[dev])
		}
	}
	rep := vlanChange(byID[ids[1]].GetNetworkMutation(), "sw1", 100)
	if rep == nil || !bytes.Equal(rep.GetBeforeSha256(), tampered) || !bytes.Equal(rep.GetAfterSha256(), m1After["sw1"]) {
		t.Errorf("repair: %v, want before %x (tampered) after %x (m1's)", rep, tampered, m1After["sw1"])
	}
	m3 := vlanChange(byID["m3"].GetNetworkMutation(), "sw1", 100)
	if m3 == nil || !bytes.Equal(m3.GetBeforeSha256(), m1After["sw1"]) || !bytes.Equal(m3.GetAfterSha256(), m3After) {
		t.Errorf("m3 on sw1: %v, want before %x (the repair's after) after %x", m3, m1After["sw1"], m3After)
	}
	// By level, as "every device push at level 3" asks.
	if got := list(3); len(got) != 1 || got[0].GetNetworkMutation().GetDevicePush().GetMutationId() != "m3" {
		t.Errorf("device pushes at level 3: %d", len(got))
	}
	if got := list(4); len(got) != 1 || got[0].GetNetworkMutation().GetDevicePush().GetKind() != qmv1.DevicePushKind_DEVICE_PUSH_KIND_DRIFT_REPAIR {
		t.Errorf("device pushes at level 4: %d", len(got))
	}

	// Quartermaster holds the same entries.
	waitShipped(t, rcv, n)
	shipped, err := rcv.Entries(n.Ledger().Origin(), 0)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, e := range shipped {
		if w, ok := byID[e.GetNetworkMutation().GetDevicePush().GetMutationId()]; ok && notarymodel.Type(e) == qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH {
			if e.GetIndex() != w.GetIndex() || !bytes.Equal(e.GetNetworkMutation().GetChangesSha256(), w.GetNetworkMutation().GetChangesSha256()) {
				t.Errorf("receiver entry %d differs from the node's %d", e.GetIndex(), w.GetIndex())
			}
			got++
		}
	}
	if got != 3 {
		t.Errorf("the receiver holds %d device pushes, want 3", got)
	}

	// A restart: nothing is recorded twice; the next push is recorded.
	stopped = true
	d.Shutdown(10 * time.Second)
	d, err = server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(5 * time.Second) })
	c = unixClient(t, d.SocketPath())
	level(5) // the waiting operator's m2 executes, the drift is repaired
	watchTree(t, c, "m2 executed after the restart", func() bool { return status("m2") == "executed" })
	watchTree(t, c, "sw1 repaired after the restart", func() bool { return drift("sw1") == "false" })
	n = d.Notary()
	if err := n.Sync(rpcCtx(t)); err != nil {
		t.Fatal(err)
	}
	es, _, err := n.List(notary.Query{Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range es {
		count[e.GetNetworkMutation().GetDevicePush().GetMutationId()]++
	}
	repairs := 0
	for id, k := range count {
		if k != 1 {
			t.Errorf("%s recorded %d times", id, k)
		}
		if strings.HasPrefix(id, "repair/") {
			repairs++
		}
	}
	if len(es) != 5 || count["m2"] != 1 || repairs != 2 {
		t.Errorf("after the restart: %v, want m1, m3, m2 and two repairs", count)
	}
}

// TestUnderlayWithNotaryOff: with --notary off the underlay pushes as
// before and nothing asks for a record.
func TestUnderlayWithNotaryOff(t *testing.T) {
	dir, devs, dj := testDevices(t)
	cfg := config.Defaults()
	data := t.TempDir()
	cfg.DataDir, cfg.Listen, cfg.Socket, cfg.NodeName = data, "", filepath.Join(data, "kedge.sock"), "no-notary"
	cfg.Dataplane, cfg.ShmPath, cfg.BPFPinDir, cfg.MetricsListen = "off", "off", "off", "off"
	cfg.Notary, cfg.UnderlayCredentials = "off", dir
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	d, err := server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(5 * time.Second) })
	if d.Notary() != nil {
		t.Fatal("--notary off started a notary")
	}
	c := unixClient(t, d.SocketPath())
	setJSON(t, c, "/kedge/underlay", `{"devices":{"device":[`+strings.Join(dj, ",")+`]},"vlans":{"vlan":[`+
		`{"id":100,"config":{"id":100,"name":"v100"},"members":{"member":[{"device":"sw2","port":"eth1","config":{"device":"sw2","port":"eth1"}}]}}]}}`)
	setJSON(t, c, "/kedge/underlay/mutations/mutation[id=m1]", `{"config":{"id":"m1","tier":"operator","vlans":[100]}}`)
	watchTree(t, c, "m1 executed", func() bool {
		return get1(t, c, "/kedge/underlay/mutations/mutation[id=m1]/state/status") == "executed"
	})
	if devs["sw2"].Config().GetVlan(100) == nil {
		t.Error("m1 executed without VLAN 100 on sw2")
	}
}
