package intent

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// TestRouteCacheMatchesRoutes replays random changes (routes added,
// changed and deleted, state written, pods and overlay routes sharing
// destinations with routes, failed transactions, level changes) and checks
// after each that the cached intent equals the uncached one exactly.
// With a pool of 400 destinations and a table of about 250 routes, small
// changes take the cache's binary-search path; with 12, its merge pass.
func TestRouteCacheMatchesRoutes(t *testing.T) {
	for seed := range uint64(8) {
		pool, prefill := 12, 0
		if seed%2 == 1 {
			pool, prefill = 400, 250
		}
		t.Run(fmt.Sprintf("%d-pool%d", seed, pool), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			var ls []leaf
			for i := range prefill {
				ls = append(ls, routeLeaves(fmt.Sprintf("10.40.%d.%d/32", i/256, i%256), "underlay", "operator")...)
			}
			ls = append(ls, podLeaves("c1", `["10.40.0.3/32"]`, "veth1", "underlay", "")...)
			ls = append(ls, podLeaves("c2", `["10.40.0.9/32"]`, "veth2", "overlay", "master")...)
			peer := "/kedge/mesh/peers/peer[name=p1]/config/"
			ls = append(ls, leaf{peer + "name", s("p1")}, leaf{peer + "public-key", s(key(1))},
				leaf{peer + "allowed-ips", js(`["10.40.0.5/32","10.41.0.0/16"]`)})
			// gRIBI's AFT: two next hops, two groups, one session.
			aft := "/kedge/aft/"
			ls = append(ls, leaf{aft + "next-hops/next-hop[index=1]/config/index", u(1)},
				leaf{aft + "next-hops/next-hop[index=1]/config/ip-address", s("192.0.2.1")},
				leaf{aft + "next-hops/next-hop[index=2]/config/index", u(2)},
				leaf{aft + "next-hops/next-hop[index=2]/config/interface", s("eth0")},
				leaf{aft + "next-hop-groups/next-hop-group[id=1]/config/id", u(1)},
				leaf{aft + "next-hop-groups/next-hop-group[id=1]/next-hops/next-hop[index=1]/config/index", u(1)},
				leaf{aft + "next-hop-groups/next-hop-group[id=2]/config/id", u(2)},
				leaf{aft + "next-hop-groups/next-hop-group[id=2]/next-hops/next-hop[index=1]/config/index", u(1)},
				leaf{aft + "next-hop-groups/next-hop-group[id=2]/next-hops/next-hop[index=2]/config/index", u(2)},
				leaf{aft + "next-hop-groups/next-hop-group[id=2]/next-hops/next-hop[index=2]/config/weight", u(3)},
				leaf{aft + "sessions/session[id=s1]/config/id", s("s1")},
				leaf{aft + "sessions/session[id=s1]/config/class", s("underlay")},
				leaf{aft + "sessions/session[id=s1]/config/tier", s("operator")})
			ep := "/kedge/routes/endpoints/endpoint[name=prom]/config/"
			ls = append(ls, leaf{ep + "name", s("prom")}, leaf{ep + "kind", s("monitoring")}, leaf{ep + "prefix", s("10.40.0.0/29")})
			tr := build(t, ls)

			prefix := func() string { i := rng.IntN(pool); return fmt.Sprintf("10.40.%d.%d/32", i/256, i%256) }
			entry := func(p string) string { return "/kedge/routes/route[prefix=" + p + "][table=254]" }
			// gRIBI entries share the routes' destinations (precedence) and
			// have IPv6 ones of their own.
			aftEntry := func() (string, string) {
				if rng.IntN(4) == 0 {
					p := fmt.Sprintf("2001:db8:%x::/48", rng.IntN(pool))
					return "/kedge/aft/ipv6-entries/ipv6-entry[prefix=" + p + "]", p
				}
				p := prefix()
				return "/kedge/aft/ipv4-entries/ipv4-entry[prefix=" + p + "]", p
			}
			classes := []string{"overlay", "underlay", "management", "monitoring", "incident"}
			var cache RouteCache
			var seq uint64
			most, unobserved := 0, 0
			for step := range 300 {
				var ops []op
				what := rng.IntN(14)
				switch {
				case what >= 10 && what < 12: // gRIBI adds or replaces an entry
					e, p := aftEntry()
					ops = append(ops, op{path: e + "/config/prefix", val: s(p)},
						op{path: e + "/config/next-hop-group", val: u(uint64(1 + rng.IntN(3)))}, // group 3 does not exist
						op{path: e + "/config/session", val: s("s1")})
				case what == 12: // gRIBI deletes an entry
					e, _ := aftEntry()
					ops = append(ops, op{path: e})
				case what == 13: // its state, written or removed
					e, _ := aftEntry()
					st := op{path: e + "/state/status", val: s("installed"), state: true}
					if rng.IntN(3) == 0 {
						st.val = nil
					}
					ops = append(ops, st)
				case what < 4: // add or change a route
					p := prefix()
					c := entry(p) + "/config/"
					ops = append(ops, op{path: c + "prefix", val: s(p)}, op{path: c + "table", val: u(254)}, op{path: c + "device", val: s("eth0")},
						op{path: c + "class", val: s(classes[rng.IntN(len(classes))])}, op{path: c + "metric", val: u(uint64(rng.IntN(3)))})
					if rng.IntN(2) == 0 {
						ops = append(ops, op{path: c + "tier", val: s([]string{"master", "operator"}[rng.IntN(2)])})
					}
				case what < 6: // delete a route
					ops = append(ops, op{path: entry(prefix())})
				case what < 7: // a transaction that fails and rolls back
					c := entry(prefix()) + "/config/"
					ops = append(ops, op{path: c + "metric", val: u(7)}, op{path: c + "class", val: s("not-a-class")})
				case what < 8: // state, which only moves Stated: written, or now and then removed
					st := op{path: entry(prefix()) + "/state/status", val: s("installed"), state: true}
					if rng.IntN(3) == 0 {
						st.val = nil
					}
					ops = append(ops, st)
				case what < 9: // a pod moves
					ops = append(ops, op{path: "/kedge/pods/pod[container-id=c1][ifname=eth0]/config/addresses",
						val: js(`["` + prefix() + `"]`)})
				default: // nothing changes but the level
				}
				if changes, ok := applyOps(t, tr, ops); ok {
					seq++
					// Now and then a commit goes by unobserved: the cache
					// must notice and walk every entry.
					if rng.IntN(20) != 0 {
						cache.Observe(seq, len(ops) > 0 && ops[0].state, changes)
					} else {
						unobserved++
					}
				}
				if rng.IntN(3) == 0 {
					continue // commits pile up between intents, as the reconciler coalesces them
				}
				acc, _ := accord.Default(uint8(1 + rng.IntN(5)))
				got, err := cache.Routes(tr, acc, seq)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := Routes(tr, acc)
				most = max(most, len(cache.order))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("step %d (op kind %d, level %d): cached intent differs:\ngot  %+v\nwant %+v",
						step, what, acc.Level, got, want)
				}
			}
			if unobserved == 0 {
				t.Errorf("every commit was observed: the fallback walk went untested")
			}
			if most < 6 {
				t.Errorf("the table never held more than %d routes: the changes did not apply", most)
			}
			if len(cache.byEntry) != len(cache.order) {
				t.Errorf("cache keeps %d entries for %d routes", len(cache.byEntry), len(cache.order))
			}
		})
	}
}

// op is one write: a value to update, nil to delete; state selects a
// state transaction. Writes of one step that fail roll back together.
type op struct {
	path  string
	val   *gpb.TypedValue
	state bool
}

// applyOps commits ops as one transaction and returns its changes; ok
// is false when nothing was committed (a failed or empty transaction).
func applyOps(t *testing.T, tr *tree.Tree, ops []op) (changes []tree.Change, ok bool) {
	t.Helper()
	if len(ops) == 0 {
		return nil, false
	}
	tx, err := tr.Begin(ops[0].state)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		p, err := tree.ParsePath(o.path)
		if err != nil {
			t.Fatal(err)
		}
		if o.val == nil {
			err = tx.Delete(p)
		} else {
			err = tx.Update(p, o.val)
		}
		if err != nil {
			tx.Rollback()
			return nil, false
		}
	}
	if err := tx.Validate(); err != nil {
		tx.Rollback()
		return nil, false
	}
	changes = tx.Changes()
	tx.Commit()
	return changes, len(changes) > 0
}
