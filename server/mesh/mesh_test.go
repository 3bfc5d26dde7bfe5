package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/drain"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/host"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgdevice"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/tests/needs"
	"github.com/guildhouse-co/kedge/yang"
)

func meshTestKey(t *testing.T) wgmesh.Key {
	t.Helper()
	k, err := wgmesh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// statusOf flattens wantState to "peer/leaf" (or "leaf") → value.
func statusOf(m map[string]meshLeaf) map[string]string {
	out := map[string]string{}
	for _, l := range m {
		k := l.path[len(l.path)-1].GetName()
		if l.peer != "" {
			k = l.peer + "/" + k
		}
		out[k] = l.text
	}
	return out
}

// TestMeshWantState: each way a peer can be off the device or on it maps
// to its status, and device trouble shows at mesh level.
func TestMeshWantState(t *testing.T) {
	priv := meshTestKey(t)
	now := time.Now()
	peer := func(name string) intent.MeshPeer {
		return intent.MeshPeer{Peer: wgmesh.Peer{Name: name, PublicKey: "K" + name}}
	}
	a := &meshApplier{meshApplierConfig: meshApplierConfig{pub: priv.PublicKey(), clock: wallClock{}},
		down: map[string]meshDown{"gone": {Level: 1}}, haveSet: true}
	a.last = meshIntent{
		configured: true, staleAfter: 140 * time.Second,
		peers: []intent.MeshPeer{peer("bad"), peer("drained"), peer("fresh"), peer("gone"), peer("new"), peer("old"), peer("unset")},
		cfg:   wgmesh.Config{Peers: []wgmesh.Peer{{Name: "bad"}, {Name: "fresh"}, {Name: "gone"}, {Name: "new"}, {Name: "old"}, {Name: "unset"}}},
	}
	st := &wgmesh.Status{Interface: "kedge9", ListenPort: 51820, Peers: []wgmesh.PeerStatus{
		{Name: "bad", State: wgmesh.StateFailed, Err: fmt.Errorf("%w: x", wgmesh.ErrDuplicateKey)},
		{Name: "fresh", LastHandshake: now.Add(-time.Minute), RxBytes: 10, TxBytes: 20, State: wgmesh.StateUp},
		{Name: "new", State: wgmesh.StatePending},
		// The backend's default is 3 minutes; the accord's 140 s wins.
		{Name: "old", LastHandshake: now.Add(-150 * time.Second), State: wgmesh.StateUp},
	}}
	got := statusOf(a.wantState(st))
	want := map[string]string{
		"public-key": priv.PublicKey().String(), "status": "up", "interface": "kedge9", "listen-port": "51820",
		"bad/public-key": "Kbad", "bad/status": "failed", "bad/error": "duplicate public key: x",
		"drained/public-key": "Kdrained", "drained/status": "drained",
		"fresh/public-key": "Kfresh", "fresh/status": "up", "fresh/rx-bytes": "10", "fresh/tx-bytes": "20",
		"fresh/last-handshake": fmt.Sprint(now.Add(-time.Minute).UnixNano()),
		"gone/public-key":      "Kgone", "gone/status": "posture-down",
		"new/public-key": "Knew", "new/status": "pending", "new/rx-bytes": "0", "new/tx-bytes": "0", "new/last-handshake": "0",
		"old/public-key": "Kold", "old/status": "stale", "old/rx-bytes": "0", "old/tx-bytes": "0",
		"old/last-handshake": fmt.Sprint(now.Add(-150 * time.Second).UnixNano()),
		"unset/public-key":   "Kunset", "unset/status": "pending",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("state (-want +got):\n%s", d)
	}

	a.last.isolated, a.last.cfg.Peers = true, nil
	if got := statusOf(a.wantState(&wgmesh.Status{Interface: "kedge9"})); got["status"] != "isolated" || got["fresh/status"] != "drained" {
		t.Errorf("isolated: mesh %q, fresh %q; want isolated, drained", got["status"], got["fresh/status"])
	}
	a.hostErr = errors.New("create tun: busy")
	a.last.cfg.Interface, a.last.cfg.ListenPort = "kedge9", 51900
	if got := statusOf(a.wantState(nil)); got["status"] != "down" || got["error"] != "create tun: busy" || got["gone/status"] != "posture-down" ||
		got["interface"] != "kedge9" || got["listen-port"] != "51900" {
		t.Errorf("no device: %v", got)
	}
}

// TestMeshWantStateBeforeAnyMesh (issue 11 item 14): the state of a node
// before the first Set and of one whose tree names no mesh carries the
// node's key, the interface and port a device would get, and a status
// saying why there is no device.
func TestMeshWantStateBeforeAnyMesh(t *testing.T) {
	priv := meshTestKey(t)
	a := &meshApplier{meshApplierConfig: meshApplierConfig{pub: priv.PublicKey(), clock: wallClock{}}, down: map[string]meshDown{}}
	a.last = meshIntent{cfg: wgmesh.Config{Interface: "kedge0", ListenPort: 51820}}
	want := map[string]string{"public-key": priv.PublicKey().String(), "interface": "kedge0", "listen-port": "51820", "status": "unconfigured"}
	if d := cmp.Diff(want, statusOf(a.wantState(nil))); d != "" {
		t.Errorf("unconfigured, before the first Set (-want +got):\n%s", d)
	}
	a.haveSet = true
	if d := cmp.Diff(want, statusOf(a.wantState(nil))); d != "" {
		t.Errorf("unconfigured, after a Set (-want +got):\n%s", d)
	}

	// Configured, before the first Set (which waits for the posture
	// engine): not applied yet, its peers pending.
	a.haveSet = false
	a.last = meshIntent{configured: true, cfg: wgmesh.Config{Interface: "wg7", ListenPort: 51999, Peers: []wgmesh.Peer{{Name: "p"}}},
		peers: []intent.MeshPeer{{Peer: wgmesh.Peer{Name: "p", PublicKey: "Kp"}}}}
	want = map[string]string{"public-key": priv.PublicKey().String(), "interface": "wg7", "listen-port": "51999", "status": "down",
		"error": "not applied yet: the mesh starts once the posture engine has converged", "p/public-key": "Kp", "p/status": "pending"}
	if d := cmp.Diff(want, statusOf(a.wantState(nil))); d != "" {
		t.Errorf("configured, before the first Set (-want +got):\n%s", d)
	}
}

func TestMeshHelpers(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	for _, c := range []struct {
		allowed []netip.Prefix
		want    string
	}{
		{p("10.1.0.0/16", "10.99.0.7/32"), "10.99.0.7"},
		{p("fd00::/64", "fd99::7/128"), "fd99::7"},
		{p("10.1.0.0/16"), "10.1.0.0"},
		{nil, "invalid IP"},
	} {
		got, _ := drainAddr(wgmesh.Peer{AllowedIPs: c.allowed})
		if got.String() != c.want {
			t.Errorf("drainAddr(%v) = %v, want %s", c.allowed, got, c.want)
		}
	}
	pe := func(n string) error { return &wgmesh.PeerError{Name: n, Err: wgmesh.ErrBadKey} }
	for _, c := range []struct {
		err  error
		want bool
	}{
		{pe("a"), true},
		{errors.Join(pe("a"), pe("b")), true},
		{errors.Join(pe("a"), errors.New("read device kedge0: no such file")), false},
		{errors.New("read device kedge0: no such file"), false},
	} {
		if got := peerErrorsOnly(c.err); got != c.want {
			t.Errorf("peerErrorsOnly(%v) = %v", c.err, got)
		}
	}
	unres := &wgmesh.PeerError{Name: "c", Err: fmt.Errorf("%w: x", wgmesh.ErrUnresolvable)}
	dev := errors.New("read device kedge0: no such file")
	for _, c := range []struct {
		err, want error
	}{
		{nil, nil},
		{pe("a"), nil},
		{errors.Join(pe("a"), unres), unres},
		{errors.Join(pe("a"), dev), errors.Join(pe("a"), dev)},
	} {
		got := retryable(c.err)
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	for in, want := range map[string]string{"": "", "node1": "/run/netns/node1", "/proc/1/ns/net": "/proc/1/ns/net"} {
		if got := NetnsPath(in); got != want {
			t.Errorf("NetnsPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func meshStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func meshCommit(t *testing.T, st *store.Store, leaves map[string]*gpb.TypedValue) {
	t.Helper()
	var ops []store.Op
	for p, v := range leaves {
		e, err := tree.ParsePath(p)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: e, Val: v})
	}
	if _, err := st.Commit(context.Background(), ops); err != nil {
		t.Fatalf("commit %v: %v", leaves, err)
	}
}

func meshPeerLeaves(name, key string, reconnect uint64) map[string]*gpb.TypedValue {
	base := "/kedge/mesh/peers/peer[name=" + name + "]/config/"
	out := map[string]*gpb.TypedValue{base + "name": meshStr(name), base + "public-key": meshStr(key)}
	if reconnect != 0 {
		out[base+"reconnect"] = uval(reconnect)
	}
	return out
}

func meshStr(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func currentMeshIntent(t *testing.T, a *meshApplier) meshIntent {
	t.Helper()
	var mi meshIntent
	a.st.Read(func(tr *tree.Tree) error {
		var err error
		mi, err = a.intent(tr, accord.Current(tr))
		return err
	})
	return mi
}

// TestMeshPostureDownDurable: a DRAIN marks the peer posture-down with
// the reconnect leaf of that moment; the mark survives a restart (a new
// applier on the same store) and is lifted by a change of that leaf only.
func TestMeshPostureDownDurable(t *testing.T) {
	dir := t.TempDir()
	st := meshStore(t, dir)
	peerKey := meshTestKey(t).PublicKey().String()
	meshCommit(t, st, meshPeerLeaves("anchor", peerKey, 3))
	clock := newFakeClock()
	a := newMeshApplier(meshApplierConfig{st: st, log: testLogger(t), clock: clock})
	a.drained(drain.Event{Peer: "anchor", Level: 1, Seq: 9, At: clock.Now()})
	if !a.postureDown("anchor") {
		t.Fatal("anchor not posture-down after its DRAIN")
	}
	// Within the grace the peer stays on the device for the DRAIN's
	// acknowledgement; after it, it is filtered out.
	if got := a.withoutDown([]wgmesh.Peer{{Name: "anchor"}, {Name: "lab"}}); len(got) != 2 {
		t.Errorf("withoutDown within the grace kept %v, want both", got)
	}
	clock.Advance(meshAckGrace)
	if got := a.withoutDown([]wgmesh.Peer{{Name: "anchor"}, {Name: "lab"}}); len(got) != 1 || got[0].Name != "lab" {
		t.Errorf("withoutDown after the grace kept %v, want lab only", got)
	}
	st.Close()

	st = meshStore(t, dir)
	defer st.Close()
	b := newMeshApplier(meshApplierConfig{st: st, log: testLogger(t)})
	if !b.postureDown("anchor") {
		t.Fatal("posture-down lost across a restart")
	}
	b.liftPostureDown(currentMeshIntent(t, b))
	if !b.postureDown("anchor") {
		t.Fatal("posture-down lifted without a change of reconnect")
	}
	meshCommit(t, st, meshPeerLeaves("anchor", peerKey, 4))
	b.liftPostureDown(currentMeshIntent(t, b))
	if b.postureDown("anchor") {
		t.Fatal("posture-down kept after reconnect changed")
	}
	if c := newMeshApplier(meshApplierConfig{st: st, log: testLogger(t)}); c.postureDown("anchor") {
		t.Error("the lifted mark came back from the store")
	}
}

// meshNetns creates a throwaway namespace for one daemon or backend.
func meshNetns(t *testing.T) string {
	t.Helper()
	needs.Root(t, "creates a network namespace and a TUN device")
	needs.TUN(t)
	name := fmt.Sprintf("server-mesh-%d", rand.IntN(1<<30))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		needs.Unavailable(t, "cannot create a namespace with ip: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// TestMeshExternalDevice: in external mode the daemon configures a
// device someone else hosts (the kedge-wg sidecar): until it appears the
// mesh is down with the error in state, then it is configured as usual.
func TestMeshExternalDevice(t *testing.T) {
	ns := NetnsPath(meshNetns(t))
	st := meshStore(t, t.TempDir())
	defer st.Close()
	b, err := wgdevice.New(wgdevice.Options{Netns: ns, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	priv := meshTestKey(t)
	opts := defaultMeshOptions()
	opts.device = DeviceExternal
	a := newMeshApplier(meshApplierConfig{backend: b, st: st, log: testLogger(t), node: "n1", netns: ns,
		priv: priv, pub: priv.PublicKey(), opts: opts})
	defer a.close()
	iface := fmt.Sprintf("kse%d", rand.IntN(1<<20))
	peer := meshTestKey(t).PublicKey().String()
	leaves := meshPeerLeaves("p1", peer, 0)
	leaves["/kedge/mesh/config/interface"] = meshStr(iface)
	leaves["/kedge/mesh/peers/peer[name=p1]/config/allowed-ips"] = jsonIETF(`["10.97.0.2/32"]`)
	meshCommit(t, st, leaves)
	// stateOf reads the status leaf of the mesh (peer "") or of a peer.
	stateOf := func(peer string) string {
		var s string
		st.Read(func(tr *tree.Tree) error {
			m := tr.Root().Sub("kedge").Sub("mesh")
			if peer == "" {
				if ms := m.Sub("state"); ms != nil {
					s = ms.Get("status").Str()
				}
				return nil
			}
			m.Sub("peers").Entries("peer", func(in *tree.Inst) bool {
				if in.Keys()[0].Str() == peer && in.Sub("state") != nil {
					s = in.Sub("state").Get("status").Str()
				}
				return true
			})
			return nil
		})
		return s
	}
	ctx := context.Background()
	if err := a.Set(ctx, currentMeshIntent(t, a)); err == nil {
		t.Fatal("Set succeeded with no device")
	}
	if s := stateOf(""); s != "down" {
		t.Errorf("status %q without the device, want down", s)
	}
	h, err := host.Start(host.Config{Name: iface, Netns: ns, Mode: host.ModeUserspace, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := a.Set(ctx, currentMeshIntent(t, a)); err != nil {
		t.Fatalf("Set with the sidecar's device: %v", err)
	}
	if s := stateOf(""); s != "up" {
		t.Errorf("status %q with the device, want up", s)
	}
	if s := stateOf("p1"); s != "pending" {
		t.Errorf("peer status %q, want pending (no endpoint, no handshake)", s)
	}
	stt, err := b.Status()
	if err != nil || len(stt.Peers) != 1 || stt.Peers[0].PublicKey != peer {
		t.Errorf("device peers %+v (%v), want p1", stt.Peers, err)
	}
}

// TestMeshReconcileAccord: while a de-escalation is under way the
// reconciler keeps the level the mesh step already applied instead of
// re-tightening to the lagging effective level; otherwise it follows
// accord.Current.
func TestMeshReconcileAccord(t *testing.T) {
	st := meshStore(t, t.TempDir())
	defer st.Close()
	a := newMeshApplier(meshApplierConfig{st: st, log: testLogger(t)})
	set := func(config, effective uint64) {
		meshCommit(t, st, map[string]*gpb.TypedValue{"/kedge/posture/config/level": uval(config)})
		e, _ := tree.ParsePath("/kedge/posture/state/effective-level")
		if _, err := st.CommitState(context.Background(), []store.Op{{Kind: store.OpUpdate, Path: e, Val: uval(effective)}}); err != nil {
			t.Fatal(err)
		}
	}
	level := func() uint8 {
		var l uint8
		st.Read(func(tr *tree.Tree) error { l = a.reconcileAccord(tr).Level; return nil })
		return l
	}
	for _, c := range []struct {
		name              string
		config, effective uint64
		step              uint32
		want              uint8
	}{
		{"no step yet: the lower of config and effective", 5, 1, 0, 1},
		{"escalating: the config level at once", 1, 5, 0, 1},
		{"escalation step done", 1, 5, 1, 1},
		{"de-escalation step done, effective lags", 5, 1, 5, 5},
		{"re-escalated during a de-escalation", 2, 1, 5, 2},
		{"settled", 5, 5, 5, 5},
	} {
		set(c.config, c.effective)
		a.stepLevel.Store(c.step)
		if got := level(); got != c.want {
			t.Errorf("%s: level %d, want %d", c.name, got, c.want)
		}
	}
}
