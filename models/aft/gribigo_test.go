package aft_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	aftpb "github.com/openconfig/gribi/v1/proto/gribi_aft"
	spb "github.com/openconfig/gribi/v1/proto/service"
	"github.com/openconfig/gribigo/rib"
	wpb "github.com/openconfig/ygot/proto/ywrapper"

	"github.com/guildhouse-co/kedge/models/aft"
)

// TestMatchesGribigoRIB applies the same random operations (adds,
// implicit and explicit replaces, deletes, forward references in any
// order, referenced deletes) to this RIB and to gribigo's reference RIB
// (v0.1.3, whose semantics the compliance suite encodes) and checks that
// each operation succeeds, fails or waits alike, and that both end up
// holding the same entries.
func TestMatchesGribigoRIB(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			ours, ref := aft.New(), rib.New("DEFAULT")
			// Keys with an operation waiting for a reference: gribigo
			// retries waiting operations in map order, so two waiting for
			// one key complete in either order there (here in the order
			// sent). The sequence keeps to one waiting operation per key.
			waiting := map[aft.Key]uint64{}
			for step := range 300 {
				id := uint64(step + 1)
				wire, op := randomOp(rng, id)
				for waiting[op.Entry.Key()] != 0 {
					wire, op = randomOp(rng, id)
				}
				var refOK, refFail []*rib.OpResult
				var err error
				if wire.Op == spb.AFTOperation_DELETE {
					refOK, refFail, err = ref.DeleteEntry("DEFAULT", wire)
				} else {
					refOK, refFail, err = ref.AddEntry("DEFAULT", wire)
				}
				if err != nil {
					t.Fatalf("step %d: gribigo: %v", step, err)
				}
				want := outcomes(refOK, refFail)
				var got []string
				rs := ours.Apply(op)
				if len(rs) == 0 {
					waiting[op.Entry.Key()] = op.ID
				}
				for _, r := range rs {
					if waiting[r.Op.Entry.Key()] == r.Op.ID {
						delete(waiting, r.Op.Entry.Key())
					}
					s := fmt.Sprintf("%d:ok", r.Op.ID)
					if !r.OK {
						s = fmt.Sprintf("%d:failed", r.Op.ID)
					}
					got = append(got, s)
				}
				slices.Sort(got)
				if d := cmp.Diff(want, got); d != "" {
					t.Fatalf("step %d (%s %s): outcomes differ (-gribigo +kedge):\n%s", step, op.Verb, op.Entry.Key(), d)
				}
			}
			contents, err := ref.RIBContents()
			if err != nil {
				t.Fatal(err)
			}
			afts := contents["DEFAULT"].GetAfts()
			var want []string
			for i := range afts.NextHop {
				want = append(want, aft.Key{Kind: aft.KindNextHop, ID: i}.String())
			}
			for i := range afts.NextHopGroup {
				want = append(want, aft.Key{Kind: aft.KindNextHopGroup, ID: i}.String())
			}
			for p := range afts.Ipv4Entry {
				want = append(want, aft.Key{Kind: aft.KindIPv4, Prefix: netip.MustParsePrefix(p)}.String())
			}
			var got []string
			for _, k := range ours.Keys() {
				got = append(got, k.String())
			}
			slices.Sort(want)
			slices.Sort(got)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("entries held (-gribigo +kedge):\n%s", d)
			}
			if len(got) < 5 {
				t.Errorf("only %d entries at the end: the operations did not exercise the RIB", len(got))
			}
		})
	}
}

func outcomes(oks, fails []*rib.OpResult) []string {
	var out []string
	for _, r := range oks {
		out = append(out, fmt.Sprintf("%d:ok", r.ID))
	}
	for _, r := range fails {
		out = append(out, fmt.Sprintf("%d:failed", r.ID))
	}
	slices.Sort(out)
	return out
}

// randomOp makes one operation in both forms, over small key spaces so
// that references, replaces and referenced deletes are frequent.
func randomOp(rng *rand.Rand, id uint64) (*spb.AFTOperation, *aft.Op) {
	w := &spb.AFTOperation{Id: id, NetworkInstance: "DEFAULT", Op: spb.AFTOperation_ADD}
	op := &aft.Op{ID: id, Verb: aft.Add}
	kind := rng.IntN(3)
	switch rng.IntN(10) {
	case 0:
		// An explicit replace that waits for a reference fails, in
		// gribigo, at the next install of anything once its target is
		// gone; here when its reference arrives (the one difference, see
		// the package doc). Next hops reference nothing and never wait.
		kind = 0
		w.Op, op.Verb = spb.AFTOperation_REPLACE, aft.Replace
	case 1, 2:
		w.Op, op.Verb = spb.AFTOperation_DELETE, aft.Delete
	}
	switch kind {
	case 0:
		idx := uint64(1 + rng.IntN(6))
		w.Entry = &spb.AFTOperation_NextHop{NextHop: &aftpb.Afts_NextHopKey{Index: idx,
			NextHop: &aftpb.Afts_NextHop{IpAddress: &wpb.StringValue{Value: "192.0.2.1"}}}}
		op.Entry = aft.Entry{Kind: aft.KindNextHop, NH: aft.NextHop{Index: idx, IP: netip.MustParseAddr("192.0.2.1")}}
	case 1:
		gid := uint64(1 + rng.IntN(4))
		g := &aftpb.Afts_NextHopGroup{}
		e := aft.Entry{Kind: aft.KindNextHopGroup, NHG: aft.NextHopGroup{ID: gid}}
		if op.Verb != aft.Delete {
			a := uint64(1 + rng.IntN(6))
			b := a + uint64(1+rng.IntN(2))
			for _, m := range []uint64{a, b} {
				g.NextHop = append(g.NextHop, &aftpb.Afts_NextHopGroup_NextHopKey{Index: m,
					NextHop: &aftpb.Afts_NextHopGroup_NextHop{Weight: &wpb.UintValue{Value: 1}}})
				e.NHG.Members = append(e.NHG.Members, aft.Member{Index: m, Weight: 1})
			}
		}
		w.Entry = &spb.AFTOperation_NextHopGroup{NextHopGroup: &aftpb.Afts_NextHopGroupKey{Id: gid, NextHopGroup: g}}
		op.Entry = e
	default:
		p := fmt.Sprintf("10.%d.0.0/16", rng.IntN(8))
		gid := uint64(1 + rng.IntN(4))
		w.Entry = &spb.AFTOperation_Ipv4{Ipv4: &aftpb.Afts_Ipv4EntryKey{Prefix: p,
			Ipv4Entry: &aftpb.Afts_Ipv4Entry{NextHopGroup: &wpb.UintValue{Value: gid}}}}
		op.Entry = aft.Entry{Kind: aft.KindIPv4, IP: aft.IPEntry{Prefix: netip.MustParsePrefix(p), NHG: gid}}
	}
	return w, op
}
