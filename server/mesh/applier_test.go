package mesh

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/drain"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/wgmeshtest"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// recordingBackend is the wgmeshtest fake, logging each Set's peers into
// the events the fake platform's DRAINs go to, so order can be checked.
type recordingBackend struct {
	*wgmeshtest.Fake
	mu     *sync.Mutex
	events *[]string
}

func (b recordingBackend) Set(ctx context.Context, cfg wgmesh.Config) error {
	var names []string
	for _, p := range cfg.Peers {
		names = append(names, p.Name)
	}
	b.mu.Lock()
	*b.events = append(*b.events, "set "+strings.Join(names, ","))
	b.mu.Unlock()
	return b.Fake.Set(ctx, cfg)
}

// applierRig is an applier over a real store, the recording backend, the
// fake platform and a fake clock: everything but the kernel.
type applierRig struct {
	st     *store.Store
	a      *meshApplier
	plat   *fakePlatform
	clock  *fakeClock
	events []string
	mu     sync.Mutex
	kicks  int
}

func newApplierRig(t *testing.T) *applierRig {
	t.Helper()
	st := meshStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	r := &applierRig{st: st, clock: newFakeClock()}
	r.plat = &fakePlatform{events: &r.events, ack: map[string]bool{}}
	priv := meshTestKey(t)
	r.a = newMeshApplier(meshApplierConfig{
		backend: recordingBackend{Fake: wgmeshtest.New(), mu: &r.plat.mu, events: &r.events},
		st:      st, log: testLogger(t), node: "self", priv: priv, pub: priv.PublicKey(),
		opts: defaultMeshOptions(), platform: r.plat.platform(), clock: r.clock,
	})
	r.a.kick = func() {
		r.mu.Lock()
		r.kicks++
		r.mu.Unlock()
	}
	t.Cleanup(func() { r.a.close() })
	// A mesh: our tunnel address, a critical peer and a plain one, each
	// reachable at its first host address.
	leaves := map[string]*gpb.TypedValue{
		"/kedge/mesh/config/interface": meshStr("kedge7"),
		"/kedge/mesh/config/addresses": jsonIETF(`["10.96.0.1/24"]`),
	}
	for name, addr := range map[string]string{"critical": "10.96.0.2/32", "plain": "10.96.0.3/32"} {
		for k, v := range meshPeerLeaves(name, meshTestKey(t).PublicKey().String(), 0) {
			leaves[k] = v
		}
		leaves["/kedge/mesh/peers/peer[name="+name+"]/config/allowed-ips"] = jsonIETF(`["` + addr + `"]`)
	}
	leaves["/kedge/mesh/peers/peer[name=critical]/config/critical"] = &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: true}}
	meshCommit(t, st, leaves)
	return r
}

// set applies the mesh under the accord of level, as the posture step does.
func (r *applierRig) set(t *testing.T, level uint8) error {
	t.Helper()
	acc, err := accord.Effective(level, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mi meshIntent
	if err := r.st.Read(func(tr *tree.Tree) error {
		var err error
		mi, err = r.a.intent(tr, acc)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return r.a.Set(context.Background(), mi)
}

func (r *applierRig) takeEvents() []string {
	r.plat.mu.Lock()
	defer r.plat.mu.Unlock()
	out := slices.Clone(r.events)
	r.events = r.events[:0]
	return out
}

// peerStatus reads a peer's state status from the tree.
func (r *applierRig) peerStatus(t *testing.T, peer string) kedgepath.PeerStatus {
	t.Helper()
	var s kedgepath.PeerStatus
	r.st.Read(func(tr *tree.Tree) error {
		if p, ok := kedgetree.Of(tr).Kedge().Mesh().Peers().Peer().Get(peer); ok {
			s, _ = p.State().Status()
		}
		return nil
	})
	return s
}

// TestApplierDrainsBeforeTeardown: escalating to a level whose accord
// keeps only critical peers sends the plain peer a DRAIN before the Set
// that removes it, and state calls it drained; de-escalating brings it
// back with no DRAIN.
func TestApplierDrainsBeforeTeardown(t *testing.T) {
	r := newApplierRig(t)
	if err := r.set(t, 5); err != nil {
		t.Fatalf("level 5: %v", err)
	}
	if got, want := r.takeEvents(), []string{"set critical,plain"}; !slices.Equal(got, want) {
		t.Fatalf("level 5 events %q, want %q", got, want)
	}
	if len(r.plat.hosted) != 1 || r.plat.hosted[0].name != "kedge7" {
		t.Fatalf("hosted %v, want one kedge7", r.plat.hosted)
	}
	if len(r.plat.listens) != 1 || r.plat.listens[0].Addr.String() != "10.96.0.1" {
		t.Fatalf("DRAIN listener %v, want one on the tunnel address 10.96.0.1", r.plat.listens)
	}

	r.plat.ack["plain"] = true
	if err := r.set(t, 2); err != nil {
		t.Fatalf("level 2: %v", err)
	}
	if got, want := r.takeEvents(), []string{"drain plain", "set critical"}; !slices.Equal(got, want) {
		t.Fatalf("level 2 events %q, want %q (DRAIN first, teardown second)", got, want)
	}
	if got := r.plat.drained[0]["plain"].String(); got != "10.96.0.3" {
		t.Errorf("DRAIN went to %s, want the peer's tunnel address 10.96.0.3", got)
	}
	if s := r.peerStatus(t, "plain"); s != kedgepath.PeerStatusDrained {
		t.Errorf("plain peer status %q at level 2, want drained", s)
	}
	if s := r.peerStatus(t, "critical"); s != kedgepath.PeerStatusUp {
		t.Errorf("critical peer status %q at level 2, want up", s)
	}

	if err := r.set(t, 5); err != nil {
		t.Fatalf("back to 5: %v", err)
	}
	if got, want := r.takeEvents(), []string{"set critical,plain"}; !slices.Equal(got, want) {
		t.Fatalf("de-escalation events %q, want %q", got, want)
	}
	// An unacknowledged DRAIN does not stop the teardown: posture wins.
	r.plat.ack["plain"] = false
	if err := r.set(t, 2); err != nil {
		t.Fatalf("level 2 again: %v", err)
	}
	if got, want := r.takeEvents(), []string{"drain plain", "set critical"}; !slices.Equal(got, want) {
		t.Fatalf("unacknowledged DRAIN events %q, want %q", got, want)
	}
}

// TestApplierPeerDrainGrace: a peer that announces its own teardown
// stays on the device for the acknowledgement's grace (the clock does
// not move: it stays), then the clock's timer asks for a Set, which
// takes it off and calls it posture-down.
func TestApplierPeerDrainGrace(t *testing.T) {
	r := newApplierRig(t)
	if err := r.set(t, 5); err != nil {
		t.Fatal(err)
	}
	r.takeEvents()
	r.a.drained(drain.Event{Peer: "plain", Level: 2, Seq: 1, At: r.clock.Now()})
	if err := r.set(t, 5); err != nil {
		t.Fatal(err)
	}
	if got, want := r.takeEvents(), []string{"set critical,plain"}; !slices.Equal(got, want) {
		t.Fatalf("within the grace: %q, want %q", got, want)
	}
	if r.kicks != 0 {
		t.Fatalf("%d kicks before the grace ended", r.kicks)
	}
	r.clock.Advance(meshAckGrace)
	if r.kicks != 1 {
		t.Fatalf("%d kicks after the grace, want 1", r.kicks)
	}
	if err := r.set(t, 5); err != nil {
		t.Fatal(err)
	}
	if got, want := r.takeEvents(), []string{"set critical"}; !slices.Equal(got, want) {
		t.Fatalf("after the grace: %q, want %q (no DRAIN back: it drained itself)", got, want)
	}
	if s := r.peerStatus(t, "plain"); s != kedgepath.PeerStatusPostureDown {
		t.Errorf("plain peer status %q, want posture-down", s)
	}
}

// TestApplierRehostsDeadDevice: an embedded device that stops on its own
// is hosted again by the next Set; one that cannot be hosted leaves the
// mesh down with the reason in state and no Set of the backend.
func TestApplierRehostsDeadDevice(t *testing.T) {
	r := newApplierRig(t)
	if err := r.set(t, 5); err != nil {
		t.Fatal(err)
	}
	r.plat.hosted[0].die()
	if err := r.set(t, 5); err != nil {
		t.Fatal(err)
	}
	if len(r.plat.hosted) != 2 || !r.plat.hosted[0].closed {
		t.Fatalf("hosted %d devices (first closed: %v), want a second after the first died", len(r.plat.hosted), r.plat.hosted[0].closed)
	}
	r.takeEvents()
	r.plat.hosted[1].die()
	r.plat.hostErr = errors.New("no tun")
	if err := r.set(t, 5); err == nil || !strings.Contains(err.Error(), "no tun") {
		t.Fatalf("Set with no device: %v, want the hosting error", err)
	}
	if got := r.takeEvents(); len(got) != 0 {
		t.Errorf("events %q with no device, want none", got)
	}
	var status kedgepath.MeshStatus
	var why string
	r.st.Read(func(tr *tree.Tree) error {
		st := kedgetree.Of(tr).Kedge().Mesh().State()
		status, _ = st.Status()
		why, _ = st.Error()
		return nil
	})
	if status != kedgepath.MeshStatusDown || !strings.Contains(why, "no tun") {
		t.Errorf("mesh state %q %q, want down with the hosting error", status, why)
	}
}
