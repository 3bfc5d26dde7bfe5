package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/target"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// TestGRIBIWrite: the policy's gribi.write tier (operator when absent) is
// the lowest that may inject routes; a bad tier is refused at load.
func TestGRIBIWrite(t *testing.T) {
	if _, err := ParsePolicy([]byte("gribi: {write: admiral}\n")); err == nil {
		t.Error("policy with gribi write tier admiral parsed")
	}
	for _, c := range []struct {
		policy string
		tier   Tier
		ok     bool
	}{
		{"certificates: {}\n", Observer, false},
		{"certificates: {}\n", Operator, true},
		{"certificates: {}\n", Master, true},
		{"gribi: {write: site-owner}\n", Operator, false},
		{"gribi: {write: site-owner}\n", SiteOwner, true},
		{"gribi: {write: observer}\n", Observer, true},
	} {
		p, err := ParsePolicy([]byte(c.policy))
		if err != nil {
			t.Fatal(err)
		}
		ctx := WithIdentity(context.Background(), Identity{Name: "x", Tier: c.tier})
		w, err := Authorizer{Policy: p}.GRIBIWrite(ctx)
		switch {
		case c.ok && (err != nil || w.Tier != string(c.tier) || w.Name != string(c.tier)+":x"):
			t.Errorf("policy %q, tier %s: %+v %v, want allowed as itself", c.policy, c.tier, w, err)
		case !c.ok && status.Code(err) != codes.PermissionDenied:
			t.Errorf("policy %q, tier %s: %v, want PERMISSION_DENIED", c.policy, c.tier, err)
		}
	}
	if err := (Authorizer{Policy: DefaultPolicy()}).GRIBIRead(context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Get without identity: %v, want UNAUTHENTICATED", err)
	}
}

// TestAFTUntouched: a gNMI commit that changes anything under /kedge/aft
// is refused, one that changes only what lies beside it (a name that
// merely starts alike included) passes, and looking at a commit's
// changes allocates nothing.
func TestAFTUntouched(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	node := func(p string) *tree.Node {
		n := schema.Find(p)
		if n == nil {
			t.Fatalf("no schema node %s", p)
		}
		return n
	}
	route := node("/kedge/routes/route/config/prefix")
	beside := make([]tree.Change, 1000)
	for i := range beside {
		beside[i] = tree.Change{Node: route}
	}
	if err := checkAFTUntouched(store.Proposed{Changes: beside}); err != nil {
		t.Fatalf("a routes commit: %v", err)
	}
	if n := testing.AllocsPerRun(10, func() { _ = checkAFTUntouched(store.Proposed{Changes: beside}) }); n != 0 {
		t.Errorf("checking 1,000 changes allocated %.0f times", n)
	}
	lookalike := &tree.Node{Name: "aftx", Path: aftPrefix + "x"}
	if err := checkAFTUntouched(store.Proposed{Changes: []tree.Change{{Node: lookalike}}}); err != nil {
		t.Errorf("a path that only starts like %s: %v", aftPrefix, err)
	}
	// A real change under /kedge/aft, made in a transaction of a tree.
	tx, err := tree.New(schema).Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	elems, err := tree.ParsePath("/kedge/aft/next-hops/next-hop[index=1]/config/ip-address")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Update(elems, &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "192.0.2.1"}}); err != nil {
		t.Fatal(err)
	}
	aft := tx.Changes()
	if len(aft) == 0 {
		t.Fatal("the transaction changed nothing")
	}
	err = checkAFTUntouched(store.Proposed{Changes: append(slices.Clone(beside), aft...)})
	if !errors.Is(err, target.ErrPermissionDenied) || !strings.Contains(err.Error(), "/kedge/aft/next-hops/next-hop[index=1]") {
		t.Errorf("a commit changing a next hop: %v, want permission denied naming it", err)
	}
}
