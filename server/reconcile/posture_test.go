package reconcile

import (
	"context"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/dataplane/route/routetest"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
)

// TestPostureAwareIntent wires a route reconciler the way the daemon will:
// intent under accord.Current, triggered by route config and by the
// effective level the posture engine publishes in state.
func TestPostureAwareIntent(t *testing.T) {
	st := openStore(t, store.Options{})
	for i := range 4 {
		addRoute(t, st, i) // no class: withheld at levels 2 and 1
	}
	fake := routetest.New()
	routesIntent := func(tr *tree.Tree) (route.Config, error) { return intent.RouteConfig(tr, accord.Current(tr)) }
	r := New[route.Config](st, routesIntent, fake, Options[route.Config]{Name: "routes",
		Prefixes: []string{"/kedge/routes"}, StatePrefixes: []string{"/kedge/posture/state/effective-level"}})
	run(t, r)
	waitFor(t, "4 routes at level 5", func() bool { return len(fake.Routes()) == 4 })

	// The engine publishes effective level 2 (e.g. the BPF map asked).
	_, err := st.CommitState(context.Background(), []store.Op{{Kind: store.OpUpdate,
		Path: mustPath(t, "/kedge/posture/state/effective-level"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "routes withheld at level 2", func() bool { return len(fake.Routes()) == 0 })
	addRoute(t, st, 9) // a new route while at 2 stays withheld
	waitFor(t, "the new route seen", func() bool { return r.Stats().Commits >= 2 })
	if n := len(fake.Routes()); n != 0 {
		t.Errorf("%d routes installed at level 2, want 0", n)
	}
	_, err = st.CommitState(context.Background(), []store.Op{{Kind: store.OpUpdate,
		Path: mustPath(t, "/kedge/posture/state/effective-level"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 5}}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all 5 routes back at level 5", func() bool { return len(fake.Routes()) == 5 })
}
