package notary

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/yang"
)

// oldCommitArtifact is how recordCommit made a commit's artifact before
// it streamed: a Change with its path string per config leaf (leafPath:
// the test renders it with tree.Change, independent of the memo the
// recorder used), the whole annotation decoded, then BuildMutation.
func oldCommitArtifact(n *Notary, c *store.Commit, f notarymodel.Fidelity, leafPath func(tree.Change) string) (notarymodel.Mutation, *qmv1.NetworkMutationArtifact) {
	m := notarymodel.Mutation{Seq: c.Seq, Time: c.Time}
	for _, ch := range c.Changes {
		if ch.Node.Config {
			m.Changes = append(m.Changes, notarymodel.Change{Path: leafPath(ch), Delete: ch.Op == tree.OpDelete, After: ch.Val})
		}
	}
	if len(m.Changes) == 0 {
		return m, nil
	}
	n.annotate(&m, c.Annotation)
	return m, notarymodel.BuildMutation(m, f)
}

// randomCommits makes config commits on an annotated store: bulk and
// small additions, updates of some leaves (old values of several types),
// deletes of whole routes; some with state changes spliced in, some with
// their annotation damaged or missing.
func randomCommits(t *testing.T, st *store.Store, r *rand.Rand, count int) []*store.Commit {
	t.Helper()
	str := func(v string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}} }
	num := func(v uint64) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: v}} }
	route := func(i int) string {
		return fmt.Sprintf("/kedge/routes/route[prefix=10.%d.%d.0/24][table=254]", i/256, i%256)
	}
	var live []int
	next := 0
	var out []*store.Commit
	for len(out) < count {
		var ops []store.Op
		switch k := r.IntN(4); {
		case k == 0 || len(live) == 0: // add routes
			n := []int{1, 4, 300, 1500}[r.IntN(4)]
			for range n {
				i := next
				next++
				live = append(live, i)
				base := route(i) + "/config/"
				ops = append(ops, store.Op{Kind: store.OpUpdate, Path: path(t, base+"prefix"), Val: str(fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))},
					store.Op{Kind: store.OpUpdate, Path: path(t, base+"table"), Val: num(254)},
					store.Op{Kind: store.OpUpdate, Path: path(t, base+"device"), Val: str("eth0")})
				if r.IntN(2) == 0 {
					ops = append(ops, store.Op{Kind: store.OpUpdate, Path: path(t, base+"metric"), Val: num(r.Uint64N(1000))})
				}
			}
		case k == 1: // update some
			for _, i := range live[:1+r.IntN(len(live))] {
				base := route(i) + "/config/"
				ops = append(ops, store.Op{Kind: store.OpUpdate, Path: path(t, base+"metric"), Val: num(r.Uint64N(1000))},
					store.Op{Kind: store.OpUpdate, Path: path(t, base+"owner"), Val: str(fmt.Sprint("o", r.IntN(50)))})
			}
		default: // delete some
			r.Shuffle(len(live), func(a, b int) { live[a], live[b] = live[b], live[a] })
			n := 1 + r.IntN(len(live))
			for _, i := range live[:n] {
				ops = append(ops, store.Op{Kind: store.OpDelete, Path: path(t, route(i))})
			}
			live = live[n:]
		}
		c, err := st.Commit(context.Background(), ops)
		if err != nil {
			t.Fatal(err)
		}
		if r.IntN(3) == 0 && len(live) > 0 { // state changes among the config ones
			var sops []store.Op
			for _, i := range live[:1+r.IntN(min(len(live), 20))] {
				sops = append(sops, store.Op{Kind: store.OpUpdate, Path: path(t, route(i)+"/state/reason"), Val: str("r")})
			}
			sc, err := st.CommitState(context.Background(), sops)
			if err != nil {
				t.Fatal(err)
			}
			cc := *c
			cc.Changes = slices.Clone(c.Changes)
			for _, ch := range sc.Changes {
				at := r.IntN(len(cc.Changes) + 1)
				cc.Changes = slices.Insert(cc.Changes, at, ch)
			}
			c = &cc
		}
		switch r.IntN(8) { // a damaged annotation: the artifact is unannotated
		case 0:
			c.Annotation = nil
		case 1:
			c.Annotation = c.Annotation[:r.IntN(len(c.Annotation))]
		case 2:
			c.Annotation = append(slices.Clone(c.Annotation), 0)
		}
		out = append(out, c)
	}
	return out
}

// TestCommitArtifactMatchesTheOldWay: the artifact recordCommit streams
// is byte for byte the one it built from a Change list, over random
// commits at every fidelity (listings truncated below payload hashing).
func TestCommitArtifactMatchesTheOldWay(t *testing.T) {
	a := NewAnnotator(whoFromCtx)
	st := annotatedStore(t, t.TempDir(), a)
	defer st.Close()
	n, err := Open(Options{Dir: t.TempDir(), Node: "n1", Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	r := rand.New(rand.NewPCG(17, 4))
	commits := randomCommits(t, st, r, 60)
	truncated := 0
	for lvl := uint8(1); lvl <= 5; lvl++ {
		ac, err := accord.Default(lvl)
		if err != nil {
			t.Fatal(err)
		}
		f := notarymodel.FidelityOf(ac, nil)
		for i, c := range commits {
			wm, want := oldCommitArtifact(n, c, f, tree.Change.Path)
			gm, got := n.commitArtifact(c, f)
			if (want == nil) != (got == nil) {
				t.Fatalf("level %d commit %d: artifact %v, the old way's %v", lvl, i, got != nil, want != nil)
			}
			if want == nil {
				continue
			}
			wb, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			gb, err := proto.MarshalOptions{Deterministic: true}.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gb, wb) || gm.Level != wm.Level || gm.Unannotated != wm.Unannotated {
				t.Fatalf("level %d commit %d (%d changes): the streamed artifact differs from the old way's", lvl, i, len(c.Changes))
			}
			if want.GetChangesTruncated() {
				truncated++
			}
		}
	}
	if truncated == 0 {
		t.Error("no commit had its listing truncated")
	}
}

// BenchmarkCommitArtifact100k makes the artifact of a 100,000-route
// commit (five config leaves each, the daemon's annotation) the old way
// and the streamed way, alternately in one run, at level 5.
func BenchmarkCommitArtifact100k(b *testing.B) {
	a := NewAnnotator(nil)
	schema, err := yang.Schema()
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(b.TempDir(), schema, store.Options{Annotate: a.Annotate, KeepLog: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	n, err := Open(Options{Dir: b.TempDir(), Node: "n1", Store: st})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	w := st.Watch()
	fillRoutes(b, st, 100000)
	c, err := w.Next(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	ac, _ := accord.Default(5)
	f := notarymodel.FidelityOf(ac, nil)
	var old, streamed time.Duration
	b.ReportAllocs()
	for range b.N {
		start := time.Now()
		var paths tree.PathMemo // as recordCommit rendered paths before
		oldCommitArtifact(n, c, f, func(ch tree.Change) string { return paths.Leaf(ch.In, ch.Node) })
		mid := time.Now()
		n.commitArtifact(c, f)
		old, streamed = old+mid.Sub(start), streamed+time.Since(mid)
	}
	b.ReportMetric(old.Seconds()/float64(b.N), "old-s")
	b.ReportMetric(streamed.Seconds()/float64(b.N), "streamed-s")
	b.ReportMetric(streamed.Seconds()/old.Seconds(), "streamed/old")
}
