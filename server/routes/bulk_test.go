package routes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// bulkCommit commits n random route changes in one transaction: routes
// added or changed and deleted, from a pool of prefixes; with failing set,
// a few on a device that does not exist, which the fake fails (their
// prefixes are returned). gone are prefixes to delete in the same commit.
func (r *routesRig) bulkCommit(t *testing.T, rng *rand.Rand, n int, failing bool, gone ...string) []string {
	t.Helper()
	var failed []string
	classes := []string{"overlay", "underlay", "management", "monitoring", "incident"}
	var ops []store.Op
	seen := map[int]bool{}
	for _, prefix := range gone {
		ops = append(ops, store.Op{Kind: store.OpDelete, Path: gp(t, routeEntry(prefix)).Elem})
	}
	for range n {
		i := rng.IntN(600)
		if seen[i] {
			continue
		}
		seen[i] = true
		prefix := fmt.Sprintf("10.60.%d.%d/32", i/256, i%256)
		if slices.Contains(gone, prefix) {
			continue
		}
		if rng.IntN(5) == 0 {
			ops = append(ops, store.Op{Kind: store.OpDelete, Path: gp(t, routeEntry(prefix)).Elem})
			continue
		}
		dev := "eth0"
		if failing && rng.IntN(40) == 0 {
			dev = "nosuch0"
			failed = append(failed, prefix)
		}
		for p, v := range routeConfig(prefix, dev, classes[rng.IntN(len(classes))]) {
			ops = append(ops, store.Op{Kind: store.OpUpdate, Path: gp(t, p).Elem, Val: v})
		}
	}
	if _, err := r.st.Commit(context.Background(), ops); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return failed
}

// TestBulkPartsConverge: bulk commits that the intent reads in parts of
// 16 entries, each part patched in while the next is read, with small
// commits landing right behind them (while the parts are programmed) and
// posture changes between: after each round the fake's routes and every
// entry's state equal the full recomputation (intent.Routes), and the
// bulk changes went in as several patches each, not as whole Sets.
func TestBulkPartsConverge(t *testing.T) {
	r := newRoutesRigChunk(t, 16)
	rng := rand.New(rand.NewPCG(7, 8))
	r.commit(t, store.OpUpdate, podConfig("c1", "10.244.0.5/32", "underlay", "operator"))
	// gRIBI entries committed behind the bulk ones come in a change's
	// first part; the programmed-sequence their FIB acknowledgements
	// wait for must follow the last part.
	var aftSeq uint64
	aftCommit := func(leaves map[string]*gpb.TypedValue) {
		var ops []store.Op
		for p, v := range leaves {
			ops = append(ops, store.Op{Kind: store.OpUpdate, Path: gp(t, p).Elem, Val: v})
		}
		c, err := r.st.Commit(context.Background(), ops)
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		aftSeq = c.Seq
	}
	aftCommit(aftBase())
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last difference: %s", last)
		}
	}()
	var failed []string
	for round := range 30 {
		before := len(r.fake.Patches())
		// Every fifth round some routes fail (a part that fails makes
		// the rest whole Sets); the next round deletes them, and the
		// one after is patched in parts again.
		failed = r.bulkCommit(t, rng, 50+rng.IntN(150), round%5 == 4, failed...)
		if round%3 == 1 {
			aftCommit(aftIPConfig(fmt.Sprintf("10.61.0.%d/32", round), 1, "op"))
		}
		// Commits right behind the bulk one, not waiting for it.
		for range rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				r.bulkCommit(t, rng, 1+rng.IntN(40), false)
			case 1:
				r.commit(t, store.OpUpdate, podConfig("c1", fmt.Sprintf("10.244.0.%d/32", rng.IntN(50)), "underlay", "operator"))
			default:
				r.setLevel(t, uint64(3+rng.IntN(3)))
			}
		}
		waitUntil(t, fmt.Sprintf("round %d converged", round), func() bool { last = r.converged(t, aftSeq); return last == "" })
		if round == 0 {
			continue // the first reconcile after start is a whole Set
		}
		t.Logf("round %d: %d patches", round, len(r.fake.Patches())-before)
	}
	patches, sets := len(r.fake.Patches()), len(r.fake.Calls())
	// 30 bulk commits of 40 to 200 changes, 16 entries a part: well
	// over 100 patches when the parts are patched in.
	if patches < 100 {
		t.Errorf("%d patches and %d whole Sets: the bulk changes were not patched in parts", patches, sets)
	}
	t.Logf("%d patches, %d whole Sets", patches, sets)
}

// TestBulkPartsRestart: the daemon stops while a bulk change is being
// patched in part by part (after its first part reached the backend), and
// a new one starts over the same store and backend, as after a crash: the
// commit was durable before the first part, so nothing acknowledged is
// lost and the backend ends equal to the whole intent.
func TestBulkPartsRestart(t *testing.T) {
	r := newRoutesRigChunk(t, 8)
	rng := rand.New(rand.NewPCG(9, 10))
	r.bulkCommit(t, rng, 40, false)
	waitUntil(t, "the first commit converged", func() bool { return r.converged(t, 0) == "" })
	for round := range 10 {
		before := len(r.fake.Patches())
		r.bulkCommit(t, rng, 300, false)
		waitUntil(t, "the first part patched in", func() bool { return len(r.fake.Patches()) > before })
		r.stop()
		r.start(t, 8)
		var last string
		waitUntil(t, fmt.Sprintf("round %d converged after the restart", round), func() bool { last = r.converged(t, 0); return last == "" })
		if last != "" {
			t.Fatal(last)
		}
	}
}
