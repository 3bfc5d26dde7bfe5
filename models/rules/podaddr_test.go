package rules

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

func podOp(t testing.TB, cid, addrs string) store.Op {
	t.Helper()
	elems, err := tree.ParsePath("/kedge/pods/pod[container-id=" + cid + "][ifname=eth0]/config")
	if err != nil {
		t.Fatal(err)
	}
	js := `{"container-id":"` + cid + `","ifname":"eth0","addresses":` + addrs + `}`
	return store.Op{Kind: store.OpReplace, Path: elems, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(js)}}}
}

func TestUniqueAddresses(t *testing.T) {
	st := yangtest.Store(t)
	register(st)
	ctx := context.Background()
	if _, err := st.Commit(ctx, []store.Op{podOp(t, "a", `["10.76.0.2/32"]`), podOp(t, "b", `["10.76.0.3/32"]`)}); err != nil {
		t.Fatalf("distinct addresses: %v", err)
	}
	// Same address, different prefix length, other pod: refused whole.
	_, err := st.Commit(ctx, []store.Op{podOp(t, "c", `["10.76.0.9/32"]`), podOp(t, "d", `["10.76.0.2/24"]`)})
	var re *tree.RuleError
	if !errors.As(err, &re) || re.Reason != ReasonPodAddressInUse || !errors.Is(err, tree.ErrRule) {
		t.Fatalf("duplicate address: err = %v, want a RuleError %s", err, ReasonPodAddressInUse)
	}
	if re.Path != "/kedge/pods/pod[container-id=d][ifname=eth0]" && re.Path != "/kedge/pods/pod[container-id=a][ifname=eth0]" {
		t.Errorf("refusal names %s, want one of the two pods", re.Path)
	}
	// Re-registering a pod with its own address is fine.
	if _, err := st.Commit(ctx, []store.Op{podOp(t, "a", `["10.76.0.2/32"]`)}); err != nil {
		t.Fatalf("re-register: %v", err)
	}
	// Moving b onto a's address is refused; onto a free one allowed.
	if _, err := st.Commit(ctx, []store.Op{podOp(t, "b", `["10.76.0.2/32"]`)}); err == nil {
		t.Fatal("want conflict moving b onto a's address")
	}
	if _, err := st.Commit(ctx, []store.Op{podOp(t, "b", `["10.76.0.4/32"]`)}); err != nil {
		t.Fatalf("move b: %v", err)
	}
}

// openRuled opens a store in a temporary directory with check as its only
// rule on /kedge/pods.
func openRuled(tb testing.TB, check store.Validator) *store.Store {
	tb.Helper()
	st := yangtest.Store(tb)
	if check != nil {
		st.AddValidator(kedgepath.Root().Kedge().Pods().SchemaPath(), check)
	}
	return st
}

func delPod(t testing.TB, cid string) store.Op {
	elems, err := tree.ParsePath("/kedge/pods/pod[container-id=" + cid + "][ifname=eth0]")
	if err != nil {
		t.Fatal(err)
	}
	return store.Op{Kind: store.OpDelete, Path: elems}
}

func wantInUse(t *testing.T, err error, what string) *tree.RuleError {
	t.Helper()
	var re *tree.RuleError
	if !errors.As(err, &re) || re.Reason != ReasonPodAddressInUse {
		t.Fatalf("%s: err = %v, want a RuleError %s", what, err, ReasonPodAddressInUse)
	}
	return re
}

// TestPodAddressesRace: two pods racing for one address lose in one commit
// and in two; an address a refused commit would have freed stays held; a
// deleted pod's address is free again, also after the index was rebuilt.
func TestPodAddressesRace(t *testing.T) {
	st := openRuled(t, (&PodAddresses{Slack: 1}).Check)
	ctx := context.Background()
	commit := func(ops ...store.Op) error { _, err := st.Commit(ctx, ops); return err }
	// One commit: both new pods claim 10.76.0.2; nothing is committed.
	wantInUse(t, commit(podOp(t, "a", `["10.76.0.2/32"]`), podOp(t, "b", `["10.76.0.2/32"]`)), "one commit")
	if err := commit(podOp(t, "c", `["10.76.0.2/32"]`)); err != nil {
		t.Fatalf("refused commit left a claim behind: %v", err)
	}
	// Two commits: the second claim of c's address is refused, naming c.
	re := wantInUse(t, commit(podOp(t, "d", `["10.76.0.3/32", "10.76.0.2/24"]`)), "two commits")
	if re.Path != "/kedge/pods/pod[container-id=d][ifname=eth0]" || !strings.Contains(re.Detail, "c/eth0") {
		t.Errorf("refusal %s %q, want d's path naming c", re.Path, re.Detail)
	}
	// A refused commit that moves c away and lets e take c's address,
	// while f collides: c keeps 10.76.0.2, so g may not take it.
	if err := commit(podOp(t, "f", `["10.76.0.5/32"]`)); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, commit(podOp(t, "c", `["10.76.0.4/32"]`), podOp(t, "e", `["10.76.0.2/32"]`), podOp(t, "h", `["10.76.0.5/32"]`)), "collision")
	wantInUse(t, commit(podOp(t, "g", `["10.76.0.2/32"]`)), "address of a refused move")
	// Moving c and taking its old address in one commit is fine.
	if err := commit(podOp(t, "c", `["10.76.0.4/32"]`), podOp(t, "e", `["10.76.0.2/32"]`)); err != nil {
		t.Fatalf("move and take: %v", err)
	}
	// A deleted pod's address is free; its re-created entry claims anew.
	if err := commit(delPod(t, "e")); err != nil {
		t.Fatal(err)
	}
	if err := commit(podOp(t, "g", `["10.76.0.2/32"]`)); err != nil {
		t.Fatalf("address of a deleted pod: %v", err)
	}
	if err := commit(podOp(t, "e", `["10.76.0.6/32"]`)); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, commit(podOp(t, "i", `["10.76.0.6/32"]`)), "re-created pod's address")
	wantInUse(t, commit(podOp(t, "i", `["10.76.0.2/32"]`)), "g's address")
}

// TestPodAddressesMatchReference: over random commits of pod adds, moves
// and deletes (some refused), a store checked by PodAddresses accepts and
// refuses exactly what one checked by UniqueAddresses, the full walk,
// does, and its tree never holds an address twice. A small Slack makes
// the index rebuild often.
func TestPodAddressesMatchReference(t *testing.T) {
	inc := openRuled(t, (&PodAddresses{Slack: 3}).Check)
	ref := openRuled(t, UniqueAddresses)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(17, 5))
	addr := func() string { return fmt.Sprintf(`"10.76.0.%d/32"`, rng.IntN(10)) }
	refused := 0
	for step := range 400 {
		var ops []store.Op
		for range 1 + rng.IntN(3) {
			cid := fmt.Sprintf("p%d", rng.IntN(8))
			switch rng.IntN(4) {
			case 0:
				ops = append(ops, delPod(t, cid))
			case 1:
				a, b := addr(), addr()
				if a == b {
					b = `"10.76.0.9/24"` // the schema refuses a repeated element
				}
				ops = append(ops, podOp(t, cid, "["+a+","+b+"]"))
			default:
				ops = append(ops, podOp(t, cid, "["+addr()+"]"))
			}
		}
		_, errInc := inc.Commit(ctx, ops)
		_, errRef := ref.Commit(ctx, ops)
		if (errInc == nil) != (errRef == nil) {
			t.Fatalf("step %d: incremental %v, reference %v", step, errInc, errRef)
		}
		if errInc != nil {
			refused++
			wantInUse(t, errInc, "incremental")
		}
		if err := inc.Read(func(tr *tree.Tree) error { return UniqueAddresses(tr, nil) }); err != nil {
			t.Fatalf("step %d: committed tree holds an address twice: %v", step, err)
		}
	}
	if refused == 0 || refused == 400 {
		t.Fatalf("%d of 400 commits refused: the sequence checks nothing", refused)
	}
}

// BenchmarkPodAdd: one pod registered (and removed) in a store of 1,000
// pods, checked by the full walk and by the index, side by side; the
// allocations per op are the rule's difference (-benchmem).
func BenchmarkPodAdd(b *testing.B) {
	for _, c := range []struct {
		name  string
		check store.Validator
	}{{"walk", UniqueAddresses}, {"index", (&PodAddresses{}).Check}} {
		b.Run(c.name, func(b *testing.B) {
			st := openRuled(b, c.check)
			ctx := context.Background()
			var ops []store.Op
			for i := range 1000 {
				ops = append(ops, podOp(b, fmt.Sprintf("p%d", i), fmt.Sprintf(`["10.76.%d.%d/32"]`, i/250, i%250)))
			}
			if _, err := st.Commit(ctx, ops); err != nil {
				b.Fatal(err)
			}
			add, del := []store.Op{podOp(b, "new", `["10.77.0.1/32"]`)}, []store.Op{delPod(b, "new")}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.Commit(ctx, add); err != nil {
					b.Fatal(err)
				}
				if _, err := st.Commit(ctx, del); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
