package gribi

import (
	"context"
	"net/netip"
	"testing"

	"github.com/guildhouse-co/kedge/models/aft"
)

// TestAnsweredOpsReleaseTheirSession: once its operations are answered,
// the RIB that holds their entries (as the ops' own Entry) no longer
// reaches the session through them, so a session that ended is not kept
// alive by the entries it wrote.
func TestAnsweredOpsReleaseTheirSession(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	s := New(Config{Store: st, Auth: allowAll{}, Class: "underlay"})
	ctx := context.Background()
	if err := s.Start(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ss := &session{svc: s, id: "b-9", who: Writer{Name: "master:test", Tier: "master"}, rpc: ctx, wake: make(chan struct{}, 1)}
	ops := []*aft.Op{
		// The IP entry first: it waits for its group, and is answered
		// in the same batch once the group is there.
		{ID: 1, Verb: aft.Add, Entry: aft.Entry{Kind: aft.KindIPv4, IP: aft.IPEntry{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NHG: 5}}},
		{ID: 2, Verb: aft.Add, Entry: aft.Entry{Kind: aft.KindNextHop, NH: aft.NextHop{Index: 1, IP: netip.MustParseAddr("192.0.2.1")}}},
		{ID: 3, Verb: aft.Add, Entry: aft.Entry{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: 5, Members: []aft.Member{{Index: 1}}}}},
	}
	for _, op := range ops {
		op.Entry.Meta.Session, op.Tag = ss.id, ss
	}
	ss.owe(len(ops))
	if err := s.submit(ctx, work{sess: ss, ops: ops}); err != nil {
		t.Fatal(err)
	}
	<-ss.drained()
	held := make(chan int, 1)
	if err := s.submit(ctx, work{read: func(r *aft.RIB) {
		n := 0
		for _, op := range ops {
			if e, ok := r.Get(op.Entry.Key()); ok && e == &op.Entry {
				n++
			}
		}
		held <- n
	}}); err != nil {
		t.Fatal(err)
	}
	if n := <-held; n != len(ops) {
		t.Fatalf("the RIB holds %d of the %d ops' entries", n, len(ops))
	}
	for _, op := range ops {
		if op.Tag != nil {
			t.Errorf("op %d answered, still tagged with its session", op.ID)
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.queue) == 0 {
		t.Error("no response queued")
	}
}
