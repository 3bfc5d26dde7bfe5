package rules

import (
	"context"
	"errors"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

func TestRoutePrefixes(t *testing.T) {
	st := yangtest.Store(t)
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

func TestAccordSessionTypes(t *testing.T) {
	st := yangtest.Store(t)
	register(st)
	set := func(types ...string) error {
		elems := kedgepath.Root().Kedge().Accords().Accord(3).Config().AllowedSessionTypes().Elems()
		var vals []*gpb.TypedValue
		for _, s := range types {
			vals = append(vals, &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}})
		}
		_, err := st.Commit(context.Background(), []store.Op{{Kind: store.OpUpdate, Path: elems,
			Val: &gpb.TypedValue{Value: &gpb.TypedValue_LeaflistVal{LeaflistVal: &gpb.ScalarArray{Element: vals}}}}})
		return err
	}
	if err := set("management", "incident", "monitoring"); err != nil {
		t.Fatalf("critical types refused: %v", err)
	}
	for _, bad := range [][]string{{"incident-response"}, {"management", "health-monitoring"}, {""}} {
		var re *tree.RuleError
		if err := set(bad...); !errors.Is(err, tree.ErrBadValue) || !errors.As(err, &re) || re.Reason != ReasonUnknownSessionType {
			t.Errorf("%q: %v, want a bad-value error naming the session type", bad, err)
		}
	}
}
