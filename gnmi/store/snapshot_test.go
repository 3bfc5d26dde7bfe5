package store

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// waitFor fails the test when ch does not deliver within a generous bound:
// a detector for a hang, not a synchronisation.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
	var zero T
	return zero
}

// TestCommitWhileReadersMidWalk: readers stopped inside their walks (one
// in Read, one in ReadWatch) do not hold up a commit, keep seeing the
// version they started on, and the ReadWatch reader's watcher delivers
// exactly the commits after that version. At 4568498 readers held the
// store's read lock across the walk and the commit waited for them.
func TestCommitWhileReadersMidWalk(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		mustCommit(t, s, upd(t, route(i)+"/config/device", str("eth0")))
	}
	type result struct {
		devices []string
		seq     uint64
		w       *Watcher
		err     error
	}
	inside := make(chan struct{}, 2)
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free() // before Close: a reader still waiting would hold it up
	results := make(chan result, 2)
	walk := func(tr *tree.Tree) ([]string, error) {
		var devs []string
		first := true
		err := tr.Walk(path(t, "/top/routes/route/config/device"), func(m tree.Match) error {
			if first {
				first = false
				inside <- struct{}{}
				<-release // hold the walk open while the writer commits
			}
			devs = append(devs, m.In.Leaf(m.Node).Str())
			return nil
		})
		return devs, err
	}
	go func() {
		var r result
		r.err = s.Read(func(tr *tree.Tree) error {
			var err error
			r.devices, err = walk(tr)
			return err
		})
		results <- r
	}()
	go func() {
		var r result
		r.w, r.err = s.ReadWatch(func(tr *tree.Tree, seq uint64) error {
			r.seq = seq
			var err error
			r.devices, err = walk(tr)
			return err
		})
		results <- r
	}()
	waitFor(t, inside, "the first reader's walk")
	waitFor(t, inside, "the second reader's walk")
	before := s.Seq()
	committed := make(chan *Commit, 1)
	go func() {
		ops := make([]Op, 0, 20)
		for i := range 20 {
			ops = append(ops, upd(t, route(i)+"/config/device", str("eth1")))
		}
		c, err := s.Commit(context.Background(), ops)
		if err != nil {
			t.Error(err)
		}
		committed <- c
	}()
	c := waitFor(t, committed, "a commit while two readers were mid-walk")
	if c.Seq != before+1 || len(c.Changes) != 20 {
		t.Fatalf("commit %d with %d changes, want %d with 20", c.Seq, len(c.Changes), before+1)
	}
	free()
	for range 2 {
		r := waitFor(t, results, "a reader's end")
		if r.err != nil {
			t.Fatal(r.err)
		}
		if len(r.devices) != 20 {
			t.Fatalf("a reader saw %d devices, want 20", len(r.devices))
		}
		for _, d := range r.devices {
			if d != "eth0" {
				t.Fatalf("a reader that started before the commit saw %q", d)
			}
		}
		if r.w == nil {
			continue
		}
		if r.seq != before {
			t.Fatalf("ReadWatch read version %d, want %d", r.seq, before)
		}
		got, err := r.w.Next(context.Background())
		if err != nil || got != c {
			t.Fatalf("the watcher after the read got %v (%v), want the commit made during it", got, err)
		}
	}
	if d := dump(s); !contains(d, route(3)+"/config/device=eth1") {
		t.Fatalf("the commit is not in the tree:\n%s", d)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// TestReaderSeesOneVersion: every commit sets two leaves of different
// entries to the same value; readers running alongside must find them
// equal (no read straddles a commit) and never going backwards, and each
// snapshot must agree with the sequence number it was read at.
func TestReaderSeesOneVersion(t *testing.T) {
	s, err := Open(t.TempDir(), testSchema(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := path(t, route(1)+"/config/tags"), path(t, route(2)+"/config/tags")
	mustCommit(t, s, Op{Kind: OpUpdate, Path: a, Val: str("0")}, Op{Kind: OpUpdate, Path: b, Val: str("0")})
	base := s.Seq()
	const commits = 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for {
				select {
				case <-done:
					return
				default:
				}
				err := s.ReadAt(func(tr *tree.Tree, seq uint64) error {
					read := func(p string) string {
						tgt, ok, err := tr.Lookup(path(t, p))
						if err != nil || !ok {
							t.Errorf("lookup %s: %v %v", p, ok, err)
							return ""
						}
						return tgt.In.Leaf(tgt.Node).Str()
					}
					x := read(route(1) + "/config/tags")
					y := read(route(2) + "/config/tags")
					if x != y {
						t.Errorf("one read saw two versions: %s and %s", x, y)
					}
					n := 0
					for _, c := range x {
						n = n*10 + int(c-'0')
					}
					if n < last {
						t.Errorf("a later read saw an older version: %d after %d", n, last)
					}
					if uint64(n) != seq-base {
						t.Errorf("read at seq %d saw value %d, want %d", seq, n, seq-base)
					}
					last = n
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// A snapshot held across every commit below never changes.
	var held *tree.Tree
	_ = s.Read(func(tr *tree.Tree) error { held = tr; return nil })
	heldDump := dumpTree(held)
	for i := 1; i <= commits; i++ {
		v := str(itoa(i))
		mustCommit(t, s, Op{Kind: OpUpdate, Path: a, Val: v}, Op{Kind: OpUpdate, Path: b, Val: v})
	}
	close(done)
	wg.Wait()
	if dumpTree(held) != heldDump {
		t.Fatal("a held snapshot changed while commits went on")
	}
}

func dumpTree(tr *tree.Tree) string {
	var out []byte
	_ = tree.Match{In: tr.Root()}.Leaves(nil, func(in *tree.Inst, n *tree.Node, v tree.Value) error {
		out = append(out, tree.Match{In: in, Node: n}.Path()+"="+v.String()+"\n"...)
		return nil
	})
	return string(out)
}
