package underlay

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	mu "github.com/guildhouse-co/kedge/models/underlay"
	"github.com/guildhouse-co/kedge/server/underlay/underlaytest"
)

// fastDrift is an accord at level with a short polling interval, so a
// polled device's drift is seen within the test.
func fastDrift(t *testing.T, level uint8) accord.Accord {
	a, err := accord.Default(level)
	if err != nil {
		t.Fatal(err)
	}
	a.UnderlayDriftMillis = 100
	return a
}

// TestDriftRepairedAtFiveReportedAtThree injects drift behind Kedge's back
// on a device watched ON_CHANGE and on one polled: at 5 both are repaired,
// at 3 both are reported (paths, since when) and left alone, and back at 5
// they are repaired.
func TestDriftRepairedAtFiveReportedAtThree(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{})
	e.accord(fastDrift(t, 5))
	e.vlan(10, "sw1", "sw2")
	e.vlan(20, "sw1", "sw2")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")
	drift := func(c *oc.Device) {
		c.GetVlan(10).Name = ygot.String("rogue")
		c.DeleteVlan(20)
		c.GetOrCreateVlan(999).Name = ygot.String("not ours") // never applied by Kedge: not drift
	}
	for _, n := range []string{"sw1", "sw2"} {
		if err := e.devs[n].Mutate(drift); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"sw1", "sw2"} {
		d := e.devs[n]
		if err := d.WaitFor(e.ctx(), func(c *oc.Device) bool { return c.GetVlan(10).GetName() == "v10" && c.GetVlan(20) != nil }); err != nil {
			t.Fatalf("%s not repaired at 5: %v", n, err)
		}
		if d.Config().GetVlan(999) == nil {
			t.Errorf("%s: the repair removed VLAN 999, which Kedge never applied", n)
		}
	}
	e.waitFor("devices in sync after repair", func(tr *tree.Tree) bool {
		return leaf(tr, dstate("sw1", "status")) == "in-sync" && leaf(tr, dstate("sw2", "status")) == "in-sync"
	})

	e.accord(fastDrift(t, 3))
	before := e.sets()
	for _, n := range []string{"sw1", "sw2"} {
		if err := e.devs[n].Mutate(drift); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"sw1", "sw2"} {
		e.waitFor(n+" drift reported", func(tr *tree.Tree) bool {
			p := leaf(tr, dstate(n, "drift-paths"))
			return leaf(tr, dstate(n, "status")) == "drifted" && strings.Contains(p, "vlan-id=10") &&
				strings.Contains(p, "/vlans/vlan[vlan-id=20]") && !strings.Contains(p, "999") &&
				leaf(tr, dstate(n, "drift-since")) != ""
		})
	}
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if e.sets() != before {
		t.Error("level 3 repaired drift")
	}
	if e.get("/kedge/underlay/state/drift-detected") != "true" {
		t.Error("drift-detected not set")
	}

	e.accord(fastDrift(t, 5))
	for _, n := range []string{"sw1", "sw2"} {
		if err := e.devs[n].WaitFor(e.ctx(), func(c *oc.Device) bool { return c.GetVlan(10).GetName() == "v10" && c.GetVlan(20) != nil }); err != nil {
			t.Fatalf("%s not repaired back at 5: %v", n, err)
		}
	}
	e.waitFor("drift cleared", func(tr *tree.Tree) bool {
		return leaf(tr, "/kedge/underlay/state/drift-detected") == "false" && leaf(tr, dstate("sw1", "drift-since")) == ""
	})
}

// TestDeviceDownAndBack: a mutation while a device is down executes on
// the other device and fails for the one that is down (nothing changed
// there); the device's state says unreachable, and once it is back a new
// proposal brings it in line.
func TestDeviceDownAndBack(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, true}}, Options{RPCTimeout: 2 * time.Second})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")

	e.devs["sw2"].Down()
	e.waitFor("sw2 unreachable", func(tr *tree.Tree) bool { return leaf(tr, dstate("sw2", "status")) == "unreachable" })
	e.vlan(20, "sw1", "sw2")
	e.propose("m2", "operator", nil, "")
	e.waitStatus("m2", "failed")
	if r := e.get(mstate("m2", "reason")); !strings.Contains(r, "sw2: unreachable") || strings.Contains(r, "sw1") {
		t.Errorf("reason %q", r)
	}
	if e.get("/kedge/underlay/mutations/mutation[id=m2]/results/result[device=sw1]/state/status") != "confirmed" {
		t.Error("sw1 did not take m2 while sw2 was down")
	}
	if !hasVLANs(e.devs["sw1"].Config(), 10, 20) || !hasVLANs(e.devs["sw2"].Config(), 10) {
		t.Error("device configurations after m2")
	}
	if e.get(dstate("sw2", "last-error")) == "" || e.get(dstate("sw2", "reachable")) != "false" {
		t.Error("sw2 state does not say why")
	}

	if err := e.devs["sw2"].Up(); err != nil {
		t.Fatal(err)
	}
	e.waitFor("sw2 back", func(tr *tree.Tree) bool {
		return leaf(tr, dstate("sw2", "reachable")) == "true" && leaf(tr, dstate("sw2", "status")) == "in-sync"
	})
	e.propose("m3", "operator", nil, "")
	e.waitStatus("m3", "executed")
	if !hasVLANs(e.devs["sw2"].Config(), 10, 20) {
		t.Errorf("sw2 after m3: %v", vlanIDs(e.devs["sw2"].Config()))
	}
	if e.get("/kedge/underlay/mutations/mutation[id=m3]/results/result[device=sw1]/state/status") != "unchanged" {
		t.Error("sw1 was pushed again for nothing")
	}
}

// TestNeverConfirms: a commit-confirmed device takes the Set but its
// confirm never answers: the push is cancelled and rolled back, the other
// device is unaffected.
func TestNeverConfirms(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", true, true}}, Options{RPCTimeout: 2 * time.Second})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")
	e.devs["sw1"].SetFault(faultHang)
	e.vlan(20, "sw1", "sw2")
	e.propose("m2", "operator", nil, "")
	e.waitStatus("m2", "failed")
	st := e.get("/kedge/underlay/mutations/mutation[id=m2]/results/result[device=sw1]/state/status")
	msg := e.get("/kedge/underlay/mutations/mutation[id=m2]/results/result[device=sw1]/state/error")
	if st != "rolled-back" || !strings.Contains(msg, "confirm") || !strings.Contains(msg, "cancelled") {
		t.Errorf("sw1 result %s: %s", st, msg)
	}
	if !hasVLANs(e.devs["sw1"].Config(), 10) || e.devs["sw1"].Pending() {
		t.Errorf("sw1 not rolled back: %v pending=%v", vlanIDs(e.devs["sw1"].Config()), e.devs["sw1"].Pending())
	}
	if !hasVLANs(e.devs["sw2"].Config(), 10, 20) {
		t.Errorf("sw2 affected: %v", vlanIDs(e.devs["sw2"].Config()))
	}
	if e.devs["sw1"].Stats().Cancels != 1 {
		t.Errorf("sw1 stats %+v", e.devs["sw1"].Stats())
	}
	if e.get(dstate("sw1", "status")) != "failed" || e.get(dstate("sw1", "applied-sequence")) != e.get(mstate("m1", "sequence")) {
		t.Errorf("sw1 state %s applied %s", e.get(dstate("sw1", "status")), e.get(dstate("sw1", "applied-sequence")))
	}
	// Nothing is left half-applied: the device is not drifted from m1.
	e.waitFor("sw1 checked", func(tr *tree.Tree) bool { return leaf(tr, dstate("sw1", "drift")) == "false" })
}

// TestPlainDeviceCompensates: a device without commit-confirmed that
// takes a Set but then fails the verifying read is undone with a
// compensating Set.
func TestPlainDeviceCompensates(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", false, false}}, Options{RPCTimeout: 5 * time.Second})
	e.level(5)
	e.vlan(10, "sw1")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")
	// A device that does not hold what it acknowledged: every Set it
	// takes renames VLAN 20.
	d := e.devs["sw1"]
	d.SetFault(underlaytest.Fault{Rewrite: func(c *oc.Device) {
		if v := c.GetVlan(20); v != nil {
			v.Name = ygot.String("mangled")
		}
	}})
	e.vlan(20, "sw1")
	e.propose("m2", "operator", nil, "")
	e.waitStatus("m2", "failed")
	msg := e.get("/kedge/underlay/mutations/mutation[id=m2]/results/result[device=sw1]/state/error")
	if !strings.Contains(msg, "verify") || !strings.Contains(msg, "compensating Set") {
		t.Errorf("result error %q", msg)
	}
	if !hasVLANs(d.Config(), 10) {
		t.Errorf("not compensated: %v", vlanIDs(d.Config()))
	}
}

// TestSetRejected: a device that refuses the Set changes nothing; the
// mutation fails with the device's reason.
func TestSetRejected(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{})
	e.level(5)
	e.vlan(10, "sw1")
	e.devs["sw1"].SetFault(faultReject)
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "failed")
	if r := e.get(mstate("m1", "reason")); !strings.Contains(r, "sw1: rejected") || !strings.Contains(r, "injected fault") {
		t.Errorf("reason %q", r)
	}
	if len(e.devs["sw1"].Config().Vlan) != 0 || e.devs["sw1"].Stats().Refused != 1 {
		t.Errorf("device changed: %v %+v", vlanIDs(e.devs["sw1"].Config()), e.devs["sw1"].Stats())
	}
	if e.get(dstate("sw1", "status")) != "failed" {
		t.Errorf("device status %s", e.get(dstate("sw1", "status")))
	}
}

// TestCompileRefusedBySchema: a compile result the OpenConfig schema
// refuses is denied and nothing is sent to any device. The compiler is
// replaced by one with a bug (a VLAN whose id is not its key); the
// schema check is the real one.
func TestCompileRefusedBySchema(t *testing.T) {
	buggy := func(dev string, vs []mu.VLAN) (*oc.Device, error) {
		d, err := mu.Compile(dev, vs)
		if err != nil {
			return nil, err
		}
		for id, v := range d.Vlan {
			v.VlanId = ygot.Uint16(id + 5000)
		}
		return d, nil
	}
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{Compiler: buggy})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "denied")
	if r := e.get(mstate("m1", "reason")); !strings.Contains(r, "OpenConfig schema") {
		t.Errorf("reason %q", r)
	}
	if e.sets() != 0 {
		t.Errorf("%d Sets sent for a refused compile", e.sets())
	}
}

func TestDenied(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{})
	e.level(5)
	e.vlan(10, "sw1")
	e.propose("unknown-device", "master", nil, `"devices":["sw9"]`)
	e.propose("unknown-vlan", "master", []int{77}, "")
	// Port eth1 untagged in two VLANs.
	e.set("/kedge/underlay/vlans/vlan[id=30]", `{"config":{"id":30},"members":{"member":[{"device":"sw1","port":"eth2","config":{"device":"sw1","port":"eth2","untagged":true}}]}}`)
	e.set("/kedge/underlay/vlans/vlan[id=31]", `{"config":{"id":31},"members":{"member":[{"device":"sw1","port":"eth2","config":{"device":"sw1","port":"eth2","untagged":true}}]}}`)
	e.propose("conflict", "master", []int{30, 31}, "")
	e.waitReason("unknown-device", "denied", `unknown device "sw9"`)
	e.waitReason("unknown-vlan", "denied", "unknown VLAN 77")
	e.waitReason("conflict", "denied", "untagged in VLANs 30 and 31")
	if e.sets() != 0 {
		t.Error("a denied proposal reached a device")
	}
}

// TestTLSAndCredentials: a device whose certificate the configured CA does
// not sign is unreachable with the TLS error in its state, and the
// mutation fails for it; credential files that are unsafe or outside the
// credentials directory are refused before anything is sent.
func TestTLSAndCredentials(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}, {"sw2", false, false}}, Options{RPCTimeout: 2 * time.Second})
	e.level(5)
	e.vlan(10, "sw1", "sw2")
	other := t.TempDir()
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(e.dir, "wrong-ca.pem")
	writeForeignCA(t, wrongCA)
	e.set("/kedge/underlay/devices/device[name=sw1]/config/ca-file", `"wrong-ca.pem"`)
	e.waitFor("sw1 TLS failure", func(tr *tree.Tree) bool {
		return leaf(tr, dstate("sw1", "status")) == "unreachable" && strings.Contains(leaf(tr, dstate("sw1", "last-error")), "certificate")
	})
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "failed")
	if st := e.get("/kedge/underlay/mutations/mutation[id=m1]/results/result[device=sw1]/state/status"); st != "unreachable" {
		t.Errorf("sw1 result %s", st)
	}
	if !hasVLANs(e.devs["sw2"].Config(), 10) || len(e.devs["sw1"].Config().Vlan) != 0 {
		t.Error("configurations after a TLS failure")
	}

	// A key readable by others, and a path out of the directory.
	if err := os.Chmod(filepath.Join(e.dir, "client.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.set("/kedge/underlay/devices/device[name=sw1]/config/ca-file", `"ca.pem"`)
	e.waitFor("unsafe key refused", func(tr *tree.Tree) bool {
		return strings.Contains(leaf(tr, dstate("sw1", "last-error")), "readable by group or others")
	})
	if err := os.Chmod(filepath.Join(e.dir, "client.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.set("/kedge/underlay/devices/device[name=sw1]/config/ca-file", `"../ca.pem"`)
	e.waitFor("escaping path refused", func(tr *tree.Tree) bool {
		return strings.Contains(leaf(tr, dstate("sw1", "last-error")), "not a file name inside the credentials directory")
	})
	e.set("/kedge/underlay/devices/device[name=sw1]/config/ca-file", `"ca.pem"`)
	e.waitFor("sw1 reachable", func(tr *tree.Tree) bool { return leaf(tr, dstate("sw1", "reachable")) == "true" })
	e.propose("m2", "operator", nil, "")
	e.waitStatus("m2", "executed")
}

// TestAbortOnEscalation: a push in flight when the level drops to 1 is
// stopped and its pending commit cancelled before the posture step
// returns; the mutation waits and executes back at 5.
func TestAbortOnEscalation(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{RPCTimeout: 20 * time.Second})
	e.level(5)
	e.vlan(10, "sw1")
	e.devs["sw1"].SetFault(faultHang)
	e.propose("m1", "operator", nil, "")
	// Wait until the commit is on the device, pending its confirm.
	if err := e.devs["sw1"].WaitFor(e.ctx(), func(c *oc.Device) bool { return c.GetVlan(10) != nil }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	e.level(1)
	took := time.Since(start)
	if took > 10*time.Second {
		t.Errorf("the underlay step took %v (budget 10 s)", took)
	}
	if e.devs["sw1"].Pending() || len(e.devs["sw1"].Config().Vlan) != 0 {
		t.Error("the pending commit was not cancelled before the step returned")
	}
	e.waitReason("m1", "proposed", "all underlay operations are frozen")
	rp := "/kedge/underlay/mutations/mutation[id=m1]/results/result[device=sw1]/state/"
	if e.get(rp+"status") != "pending" || !strings.Contains(e.get(rp+"error"), "cancelled, the device rolled back") {
		t.Errorf("sw1 result %s: %s", e.get(rp+"status"), e.get(rp+"error"))
	}
	e.devs["sw1"].SetFault(faultNone)
	e.level(5)
	e.waitStatus("m1", "executed")
	if !hasVLANs(e.devs["sw1"].Config(), 10) {
		t.Error("m1 not executed back at 5")
	}
}

// TestRestart: records survive a restart: an executed mutation is not
// executed again, a device's executed intent still defines drift.
func TestRestart(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{})
	e.level(5)
	e.vlan(10, "sw1")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")
	sets := e.sets()
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.level(5)
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("m1", "executed")
	if e.sets() != sets {
		t.Error("an executed mutation ran again after a restart")
	}
	if err := e.devs["sw1"].Mutate(func(c *oc.Device) { c.DeleteVlan(10) }); err != nil {
		t.Fatal(err)
	}
	if err := e.devs["sw1"].WaitFor(e.ctx(), func(c *oc.Device) bool { return c.GetVlan(10) != nil }); err != nil {
		t.Fatalf("drift after restart not repaired: %v", err)
	}
	if got := e.get(dstate("sw1", "applied-sequence")); got != "1" {
		t.Errorf("applied-sequence %s after restart", got)
	}
}

var (
	faultHang   = faultOf(false, true)
	faultReject = faultOf(true, false)
	faultNone   = faultOf(false, false)
)

// TestTLSWithPassword: a device that asks for no client certificate but a
// user name and password (read from a 0600 file) is reached over TLS; a
// wrong password is an unreachable device with the device's refusal.
func TestTLSWithPassword(t *testing.T) {
	e := newEnv(t, nil, Options{RPCTimeout: 2 * time.Second})
	d, err := underlaytest.New(underlaytest.Options{
		TLS:      &tls.Config{Certificates: []tls.Certificate{e.pki.Server}},
		OnChange: true,
		Username: "kedge",
		Password: "right",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	e.devs["tls1"] = d
	if err := os.WriteFile(filepath.Join(e.dir, "tls1.pw"), []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.set("/kedge/underlay/devices/device[name=tls1]", fmt.Sprintf(`{"name":"tls1","config":{"name":"tls1","address":"127.0.0.1","port":%d,`+
		`"server-name":"device","ca-file":"ca.pem","username":"kedge","password-file":"tls1.pw"}}`, d.Addr().Port()))
	e.level(5)
	e.waitFor("wrong password refused", func(tr *tree.Tree) bool {
		return leaf(tr, dstate("tls1", "status")) == "unreachable" && strings.Contains(leaf(tr, dstate("tls1", "last-error")), "Unauthenticated")
	})
	if err := os.WriteFile(filepath.Join(e.dir, "tls1.pw"), []byte("right\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Credentials are read when the device's client is made: a config
	// change (here its role) makes a new one.
	e.set("/kedge/underlay/devices/device[name=tls1]/config/role", `"edge"`)
	e.vlan(10, "tls1")
	e.waitFor("tls1 reachable", func(tr *tree.Tree) bool { return leaf(tr, dstate("tls1", "reachable")) == "true" })
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")
	if !hasVLANs(d.Config(), 10) {
		t.Errorf("tls1 VLANs %v", vlanIDs(d.Config()))
	}
}

// TestRepairBacksOff: a drifted device that refuses the repair is not
// pushed again at every check; the drift stays reported meanwhile.
func TestRepairBacksOff(t *testing.T) {
	e := newEnv(t, []devSpec{{"sw1", true, true}}, Options{RetryMin: time.Hour, RetryMax: time.Hour})
	e.level(5)
	e.vlan(10, "sw1")
	e.propose("m1", "operator", nil, "")
	e.waitStatus("m1", "executed")
	d := e.devs["sw1"]
	d.SetFault(faultReject)
	if err := d.Mutate(func(c *oc.Device) { c.GetVlan(10).Name = ygot.String("rogue") }); err != nil {
		t.Fatal(err)
	}
	e.waitFor("repair refused", func(*tree.Tree) bool { return d.Stats().Refused == 1 })
	// More changes, more checks: no second repair within the backoff.
	for i := range 5 {
		if err := d.Mutate(func(c *oc.Device) { c.GetOrCreateVlan(uint16(900 + i)) }); err != nil {
			t.Fatal(err)
		}
	}
	after := uint64(time.Now().UnixNano())
	e.waitFor("a check after the last change", func(tr *tree.Tree) bool {
		n, _ := strconv.ParseUint(leaf(tr, dstate("sw1", "last-sync")), 10, 64)
		return n >= after && leaf(tr, dstate("sw1", "drift")) == "true"
	})
	if err := e.c.Sync(e.ctx()); err != nil {
		t.Fatal(err)
	}
	if n := d.Stats().Refused; n != 1 {
		t.Errorf("%d repair attempts within the backoff, want 1", n)
	}
}
