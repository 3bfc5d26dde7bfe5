package notary

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
	"github.com/guildhouse-co/kedge/yang"
)

type whoKey struct{}

func whoFromCtx(ctx context.Context) (notarymodel.Writer, bool) {
	w, ok := ctx.Value(whoKey{}).(notarymodel.Writer)
	return w, ok
}

// annotatedStore opens a store the way the daemon does for the notary.
func annotatedStore(t *testing.T, dir string, a *Annotator) *store.Store {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, schema, store.Options{Annotate: a.Annotate, KeepLog: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func setDevice(t *testing.T, st *store.Store, who string, dev string) uint64 {
	t.Helper()
	ctx := context.WithValue(context.Background(), whoKey{}, notarymodel.Writer{Identity: who, Tier: "operator", Method: "password"})
	c, err := st.Commit(ctx, []store.Op{{Kind: store.OpUpdate,
		Path: path(t, "/kedge/routes/route[prefix=10.9.0.0/16][table=254]/config/device"),
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: dev}}}})
	if err != nil {
		t.Fatal(err)
	}
	return c.Seq
}

// Commits the notary did not see (it was down) are recorded from the
// store's log when it starts: with their writer, posture level and values
// before, marked as recovered; then the store may drop them.
func TestCatchUpFromTheStoresLog(t *testing.T) {
	sdir, ndir := t.TempDir(), t.TempDir()
	a := NewAnnotator(whoFromCtx)
	st := annotatedStore(t, sdir, a)
	defer st.Close()
	open := func() *Notary {
		n, err := Open(Options{Dir: ndir, Node: "n1", Store: st, CommitLog: st, Annotator: a})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := open()
	lvl := func(l uint8) {
		ac, _ := accordFor(l)
		if err := n.Step().Apply(context.Background(), transitionTo(l, ac)); err != nil {
			t.Fatal(err)
		}
	}
	lvl(4)
	setDevice(t, st, "alice", "eth0")
	if err := n.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	live := n.Ledger().Size()
	n.Close()

	// The notary is down; two commits happen.
	setDevice(t, st, "bob", "eth1")
	s2 := setDevice(t, st, "carol", "eth2")

	n = open()
	defer n.Close()
	var got []string
	var recovered int
	err := n.Ledger().Scan(live, func(i int64, b []byte) (bool, error) {
		e, _, err := n.Get(i)
		if err != nil {
			return false, err
		}
		if m := e.GetNetworkMutation(); m != nil {
			got = append(got, m.GetWriter().GetIdentity())
			if m.GetRecovered() {
				recovered++
			}
			if m.GetPostureLevel() != 4 {
				t.Errorf("commit %d recorded at level %d, want 4 (the level at commit)", m.GetCommitSequence(), m.GetPostureLevel())
			}
			c := m.GetChanges()[0]
			if m.GetCommitSequence() == s2 && !bytes.Equal(c.GetBeforeSha256(), notarymodel.ValueHash(treeString("eth1"))) {
				t.Errorf("commit %d: before hash is not eth1's", s2)
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "bob" || got[1] != "carol" || recovered != 2 {
		t.Fatalf("recovered mutations by %v (%d marked recovered), want [bob carol]", got, recovered)
	}
	if seq, note := st.Retained(); seq != s2 || markSize(note) != n.Ledger().Size() {
		t.Errorf("retention mark %d (size %d), want %d (size %d)", seq, markSize(note), s2, n.Ledger().Size())
	}
}

// The store's retention mark remembers how far the notary's log was
// durable: an older copy of the notary directory is refused.
func TestOlderNotaryCopyIsRefused(t *testing.T) {
	sdir, ndir, old := t.TempDir(), t.TempDir(), t.TempDir()
	a := NewAnnotator(whoFromCtx)
	st := annotatedStore(t, sdir, a)
	defer st.Close()
	n, err := Open(Options{Dir: ndir, Node: "n1", Store: st, CommitLog: st, Annotator: a})
	if err != nil {
		t.Fatal(err)
	}
	n.Start(context.Background())
	setDevice(t, st, "alice", "eth0")
	n.Sync(context.Background())
	n.Close()
	if out, err := exec.Command("cp", "-a", ndir+"/.", old).CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	n, err = Open(Options{Dir: ndir, Node: "n1", Store: st, CommitLog: st, Annotator: a})
	if err != nil {
		t.Fatal(err)
	}
	n.Start(context.Background())
	setDevice(t, st, "alice", "eth1")
	n.Sync(context.Background())
	n.Close()
	os.RemoveAll(filepath.Join(ndir, "log"))
	if out, err := exec.Command("cp", "-a", old+"/log", ndir+"/log").CombinedOutput(); err != nil {
		t.Fatalf("restore: %v %s", err, out)
	}
	_, err = Open(Options{Dir: ndir, Node: "n1", Store: st, CommitLog: st, Annotator: a})
	if !errors.Is(err, ledger.ErrRolledBack) {
		t.Fatalf("open an older notary log: %v, want ErrRolledBack", err)
	}
	t.Logf("refused: %v", err)
}
