package notary

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/protobuf/proto"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/yang"
)

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

// timer is a batching timer the test fires.
type timer struct {
	mu  sync.Mutex
	chs []chan time.Time
}

func (tm *timer) after(time.Duration) <-chan time.Time {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	ch := make(chan time.Time, 1)
	tm.chs = append(tm.chs, ch)
	return ch
}

func (tm *timer) armed() int {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	return len(tm.chs)
}

// fire fires every armed timer.
func (tm *timer) fire() {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for _, ch := range tm.chs {
		ch <- time.Now()
	}
	tm.chs = nil
}

type fixture struct {
	st  *store.Store
	n   *Notary
	tm  *timer
	dir string
}

func newFixture(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{st: openStore(t, t.TempDir()), tm: &timer{}, dir: t.TempDir()}
	o := Options{Dir: f.dir, Node: "node-1", Store: f.st, After: f.tm.after, BatchEntries: 10000}
	if mod != nil {
		mod(&o)
	}
	n, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	f.n = n
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		f.st.Close()
	})
	return f
}

// level applies the default accord of a level through the posture step.
func (f *fixture) level(t testing.TB, lvl uint8) {
	t.Helper()
	a, err := accord.Default(lvl)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.n.Step().Apply(context.Background(), posture.Transition{From: lvl, To: lvl, Accord: a}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) settle(t testing.TB) {
	t.Helper()
	if err := f.n.settle(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) sync(t testing.TB) {
	t.Helper()
	if err := f.n.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func path(t testing.TB, s string) []*gpb.PathElem {
	t.Helper()
	p, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// routes commits n routes (five leaves each) in one transaction, or
// changes their device when they exist.
func (f *fixture) routes(t testing.TB, from, n int, dev string) *store.Commit {
	t.Helper()
	str := func(v string) *gpb.TypedValue { return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: v}} }
	var ops []store.Op
	for i := from; i < from+n; i++ {
		prefix := fmt.Sprintf("10.%d.%d.0/24", i/256, i%256)
		base := "/kedge/routes/route[prefix=" + prefix + "][table=254]/config/"
		ops = append(ops,
			store.Op{Kind: store.OpUpdate, Path: path(t, base+"prefix"), Val: str(prefix)},
			store.Op{Kind: store.OpUpdate, Path: path(t, base+"table"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 254}}},
			store.Op{Kind: store.OpUpdate, Path: path(t, base+"device"), Val: str(dev)})
	}
	c, err := f.st.Commit(context.Background(), ops)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// entries decodes the durable log from index from on.
func (f *fixture) entries(t testing.TB, from int64) []*qmv1.LogEntry {
	t.Helper()
	var out []*qmv1.LogEntry
	err := f.n.Ledger().Scan(from, func(i int64, b []byte) (bool, error) {
		e := &qmv1.LogEntry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return false, err
		}
		if e.GetIndex() != uint64(i) {
			t.Errorf("entry %d carries index %d", i, e.GetIndex())
		}
		out = append(out, e)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkpoints counts the sizes in (from, to] at which a checkpoint ends a
// group.
func (f *fixture) checkpoints(t testing.TB, from, to int64) int {
	t.Helper()
	n := 0
	for s := from + 1; s <= to; s++ {
		if _, ok, err := f.n.Ledger().CheckpointAt(s); err != nil {
			t.Fatal(err)
		} else if ok {
			n++
		}
	}
	return n
}

func accordFor(l uint8) (accord.Accord, error) { return accord.Default(l) }

func transitionTo(l uint8, a accord.Accord) posture.Transition {
	return posture.Transition{From: l, To: l, Accord: a}
}

func treeString(s string) tree.Value { return tree.String(s) }
