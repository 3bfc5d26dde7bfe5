package rules

import (
	"context"
	"errors"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

func podOp(t *testing.T, cid, addrs string) store.Op {
	t.Helper()
	elems, err := tree.ParsePath("/kedge/pods/pod[container-id=" + cid + "][ifname=eth0]/config")
	if err != nil {
		t.Fatal(err)
	}
	js := `{"container-id":"` + cid + `","ifname":"eth0","addresses":` + addrs + `}`
	return store.Op{Kind: store.OpReplace, Path: elems, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(js)}}}
}

func TestUniqueAddresses(t *testing.T) {
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	register(st)
	ctx := context.Background()
	if _, err := st.Commit(ctx, []store.Op{podOp(t, "a", `["10.76.0.2/32"]`), podOp(t, "b", `["10.76.0.3/32"]`)}); err != nil {
		t.Fatalf("distinct addresses: %v", err)
	}
	// Same address, different prefix length, other pod: refused whole.
	_, err = st.Commit(ctx, []store.Op{podOp(t, "c", `["10.76.0.9/32"]`), podOp(t, "d", `["10.76.0.2/24"]`)})
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
