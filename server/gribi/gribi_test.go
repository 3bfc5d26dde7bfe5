package gribi

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/proto"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/aft"
	"github.com/guildhouse-co/kedge/yang"
)

type allowAll struct{}

func (allowAll) GRIBIWrite(context.Context) (Writer, error) {
	return Writer{Name: "master:test", Tier: "master"}, nil
}
func (allowAll) GRIBIRead(context.Context) error { return nil }

func openStore(t testing.TB, dir string) *store.Store {
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

// TestRestore: at start the RIB is rebuilt from the tree's PRESERVE
// entries; the entries of DELETE sessions (which cannot have outlived the
// daemon that served them) and session records no entry uses are removed
// from the tree, durably.
func TestRestore(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	keep := sessionRecord{ID: "b-1", Identity: "master:a", Preserve: true, Tier: "master", Class: "underlay"}
	drop := sessionRecord{ID: "b-2", Identity: "master:b", Tier: "master", Class: "underlay"}
	unused := sessionRecord{ID: "b-3", Identity: "master:c", Preserve: true, Tier: "master", Class: "underlay"}
	var ops []store.Op
	for _, r := range []sessionRecord{keep, drop, unused} {
		ops = append(ops, r.ops()...)
	}
	entries := []aft.Entry{
		{Kind: aft.KindNextHop, NH: aft.NextHop{Index: 1, IP: netip.MustParseAddr("192.0.2.1")}, Meta: aft.Meta{Session: "b-1"}},
		{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: 5, Members: []aft.Member{{Index: 1, Weight: 2}}}, Meta: aft.Meta{Session: "b-1"}},
		{Kind: aft.KindIPv4, IP: aft.IPEntry{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NHG: 5, Metadata: []byte{1, 2}}, Meta: aft.Meta{Session: "b-1"}},
		{Kind: aft.KindIPv6, IP: aft.IPEntry{Prefix: netip.MustParsePrefix("2001:db8::/32"), NHG: 5}, Meta: aft.Meta{Session: "b-2"}},
		// A DELETE session's group that a PRESERVE entry references stays,
		// as it would have when the session ended.
		{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: 6, Members: []aft.Member{{Index: 1}}}, Meta: aft.Meta{Session: "b-2"}},
		{Kind: aft.KindIPv4, IP: aft.IPEntry{Prefix: netip.MustParsePrefix("198.51.101.0/24"), NHG: 6}, Meta: aft.Meta{Session: "b-1"}},
	}
	for i := range entries {
		ops = entryOps(nil, ops, &entries[i], false)
	}
	if _, err := st.Commit(context.Background(), ops); err != nil {
		t.Fatal(err)
	}
	st.Close()

	st = openStore(t, dir)
	defer st.Close()
	s := New(Config{Store: st, Auth: allowAll{}, Class: "underlay"})
	if err := s.Start(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var keys []string
	for _, k := range s.rib.Keys() {
		keys = append(keys, k.String())
	}
	if d := cmp.Diff([]string{"ipv4-entry 198.51.100.0/24", "ipv4-entry 198.51.101.0/24", "next-hop-group 5", "next-hop-group 6", "next-hop 1"}, keys); d != "" {
		t.Errorf("RIB after restore (-want +got):\n%s", d)
	}
	var sessions []string
	var v6 int
	st.Read(func(tr *tree.Tree) error {
		a := kedgetree.Of(tr).Kedge().Aft()
		for in := range a.Sessions().Session().All() {
			id, _ := in.Id()
			sessions = append(sessions, id)
		}
		v6 = a.Ipv6Entries().Ipv6Entry().Len()
		got, err := load(tr)
		if err != nil {
			t.Fatal(err)
		}
		want := []aft.Entry{entries[0], entries[1], entries[4], entries[2], entries[5]}
		if d := cmp.Diff(want, got.entries, cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}),
			cmpopts.SortSlices(func(a, b aft.Entry) bool { return a.Key().String() < b.Key().String() })); d != "" {
			t.Errorf("entries read back (-written +read):\n%s", d)
		}
		return nil
	})
	slices.Sort(sessions)
	if d := cmp.Diff([]string{"b-1", "b-2"}, sessions); d != "" || v6 != 0 {
		t.Errorf("tree after restore: sessions %v (-want +got: %s), %d IPv6 entries, want 0", sessions, d, v6)
	}
}

// TestFIBWaits: a batch's waits are due once the route backend's
// programmed sequence reaches the last AFT change before they were added,
// in order; a session that ends takes its waits out of every batch.
func TestFIBWaits(t *testing.T) {
	ids := func(due []fibBatch) []uint64 {
		var out []uint64
		for _, b := range due {
			for _, w := range b.waits {
				out = append(out, w.op.ID)
			}
		}
		return out
	}
	a, b := &session{id: "a"}, &session{id: "b"}
	f := newFIBWaits()
	f.changed(10)
	f.add([]fibWait{{sess: a, op: &aft.Op{ID: 1}}, {sess: b, op: &aft.Op{ID: 2}}})
	f.add(nil)
	f.changed(12)
	f.add([]fibWait{{sess: a, op: &aft.Op{ID: 3}}, {sess: b, op: &aft.Op{ID: 4}}})
	f.add([]fibWait{{sess: b, op: &aft.Op{ID: 5}}}) // changed nothing: waits for 12 too
	f.changed(13)
	f.add([]fibWait{{sess: b, op: &aft.Op{ID: 6}}, {sess: a, op: &aft.Op{ID: 7}}})
	if f.observe(9) || len(f.due()) != 0 {
		t.Error("due before the backend reached 10")
	}
	if !f.observe(11) {
		t.Error("observe(11) did not report a due wait")
	}
	if d := ids(f.due()); !slices.Equal(d, []uint64{1, 2}) {
		t.Errorf("due at 11: %v, want 1 2", d)
	}
	f.forget(b)
	f.observe(12)
	if d := ids(f.due()); !slices.Equal(d, []uint64{3}) {
		t.Errorf("due at 12 after b ended: %v, want 3", d)
	}
	if f.observe(12) {
		t.Error("observe of the same sequence reported progress")
	}
	if !f.observe(20) {
		t.Error("observe(20) did not report a due wait")
	}
	if d := ids(f.due()); !slices.Equal(d, []uint64{7}) {
		t.Errorf("due at 20: %v, want 7", d)
	}
	if f.observe(21) || len(f.due()) != 0 {
		t.Error("waits left after all were due")
	}
}

type ctxKey string

// TestCommitContext: a batch's commit acts for its RPCs' identity when
// they share one, and for none when they differ; the commit's context
// takes values from the RPC first and ends with the writer's, not the
// RPC's.
func TestCommitContext(t *testing.T) {
	rpcA, endA := context.WithCancel(context.WithValue(context.Background(), ctxKey("who"), "alice"))
	rpcB := context.WithValue(context.Background(), ctxKey("who"), "bob")
	alice1 := &session{who: Writer{Name: "operator:alice", Tier: "operator"}, rpc: rpcA}
	alice2 := &session{who: Writer{Name: "operator:alice", Tier: "operator"}, rpc: rpcB}
	bob := &session{who: Writer{Name: "master:bob", Tier: "master"}, rpc: rpcB}
	if got := batchRPC([]work{{sess: alice1}, {sess: alice2}}); got != rpcA {
		t.Errorf("one identity's batch acts for %v, want the first session's RPC", got)
	}
	if got := batchRPC([]work{{sess: alice1}, {sess: bob}}); got != nil {
		t.Errorf("a batch of two identities acts for %v, want none", got)
	}

	writer, stop := context.WithCancel(context.WithValue(context.Background(), ctxKey("writer"), "w"))
	c := commitContext(writer, rpcA)
	if c.Value(ctxKey("who")) != "alice" || c.Value(ctxKey("writer")) != "w" {
		t.Errorf("values: who %v writer %v, want alice and w", c.Value(ctxKey("who")), c.Value(ctxKey("writer")))
	}
	endA()
	if c.Err() != nil {
		t.Error("the commit's context ended with the RPC's")
	}
	stop()
	if c.Err() == nil {
		t.Error("the commit's context outlived the writer's")
	}
	if commitContext(writer, nil) != writer {
		t.Error("commitContext without an RPC is not the writer's context")
	}
}

// TestLockdownRule: once the effective level is 1, a commit adding or
// changing AFT entries is refused inside the store (whatever the RPC saw
// when it arrived), a removal still commits, and adds pass again when the
// level leaves 1.
func TestLockdownRule(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	s := New(Config{Store: st, Auth: allowAll{}, Class: "underlay"})
	if err := s.Start(context.Background(), "l"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	level := func(l uint8) {
		t.Helper()
		if _, err := st.CommitState(ctx, []store.Op{store.Update(kedgepath.Root().Kedge().Posture().State().EffectiveLevel(), l)}); err != nil {
			t.Fatal(err)
		}
	}
	nh := func(i uint64) []store.Op {
		return entryOps(nil, nil, &aft.Entry{Kind: aft.KindNextHop, NH: aft.NextHop{Index: i, IP: netip.MustParseAddr("192.0.2.1")},
			Meta: aft.Meta{Session: "l-1"}}, false)
	}
	level(5)
	if _, err := st.Commit(ctx, nh(1)); err != nil {
		t.Fatalf("add at level 5: %v", err)
	}
	level(1)
	if _, err := st.Commit(ctx, nh(2)); !errors.Is(err, errLockdown) {
		t.Errorf("add at level 1: %v, want %v", err, errLockdown)
	}
	if _, err := st.Commit(ctx, []store.Op{deleteOp(aft.Key{Kind: aft.KindNextHop, ID: 1})}); err != nil {
		t.Errorf("removal at level 1: %v", err)
	}
	level(3)
	if _, err := st.Commit(ctx, nh(2)); err != nil {
		t.Errorf("add at level 3: %v", err)
	}
}

// TestAnswers: one response per session, sessions in the order of their
// first result, each session's results in the order they came, with
// their own statuses and details.
func TestAnswers(t *testing.T) {
	a, b := &session{id: "a"}, &session{id: "b"}
	ans := newAnswers(4)
	ans.add(b, 1, spb.AFTResult_RIB_PROGRAMMED)
	ans.addDetails(a, 2, spb.AFTResult_FAILED, "no")
	ans.add(b, 3, spb.AFTResult_FIB_PROGRAMMED)
	ans.add(a, 4, spb.AFTResult_RIB_PROGRAMMED)
	ans.send()
	got := func(ss *session) string {
		var s []string
		for _, q := range ss.queue {
			m := new(spb.ModifyResponse)
			if err := proto.Unmarshal(q.enc.b, m); err != nil {
				t.Fatalf("decode answers: %v", err)
			}
			var rs []string
			for _, r := range m.GetResult() {
				rs = append(rs, fmt.Sprintf("%d %s %s", r.GetId(), r.GetStatus(), r.GetErrorDetails().GetErrorMessage()))
			}
			s = append(s, strings.Join(rs, ", "))
		}
		return strings.Join(s, " | ")
	}
	if g, w := got(a), "2 FAILED no, 4 RIB_PROGRAMMED "; g != w {
		t.Errorf("session a: %q, want %q", g, w)
	}
	if g, w := got(b), "1 RIB_PROGRAMMED , 3 FIB_PROGRAMMED "; g != w {
		t.Errorf("session b: %q, want %q", g, w)
	}
	if len(ans.order) != 2 || ans.order[0] != b || ans.order[1] != a {
		t.Errorf("sessions answered in order %v, want b, a", ans.order)
	}
}
