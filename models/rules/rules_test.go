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

func TestRoutePrefixes(t *testing.T) {
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
	set := func(prefix string) error {
		elems, err := tree.ParsePath("/kedge/routes/route[prefix=" + prefix + "][table=254]/config/device")
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Commit(context.Background(), []store.Op{{Kind: store.OpUpdate, Path: elems,
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: "eth0"}}}})
		return err
	}
	for _, ok := range []string{"10.1.2.0/24", "0.0.0.0/0", "fd00::/64", "10.1.2.3/32"} {
		if err := set(ok); err != nil {
			t.Fatalf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"10.1.2.3/24", "fd00::1/64"} {
		err := set(bad)
		var re *tree.RuleError
		if !errors.Is(err, tree.ErrBadValue) || !errors.As(err, &re) || re.Reason != ReasonRoutePrefixHostBits {
			t.Fatalf("%s: %v, want a bad-value RuleError %s", bad, err, ReasonRoutePrefixHostBits)
		}
	}
}

// register installs every rule, as the daemon does.
func register(st *store.Store) {
	for _, r := range All() {
		st.AddValidator(r.Prefix, r.Check)
	}
}
