package intent

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// TestRouteChangesMatchRoutes is the incremental intent's differential
// test: random commits (routes added, changed, moved between tables and
// deleted, invalid ones, state written and removed, pods moving onto and
// off route destinations, rolled-back transactions, commits the cache
// never sees; gRIBI's IPv4 and IPv6 entries added, replaced and deleted,
// some on a route's or a pod's destination, some through a group that
// fails or does not exist, groups' members and next hops changed, a
// session's tier changed, entries' state written and removed) with now
// and then a posture level change, and after each
// intent the outcome of applying every set so far (a full set replaces
// the model, a delta patches it) must equal the full recomputation
// (Routes) exactly: the routes the backend would hold and the status of
// every route entry and pod.
func TestRouteChangesMatchRoutes(t *testing.T) {
	for seed := range uint64(8) {
		pool, prefill := 12, 0
		if seed%2 == 1 {
			pool, prefill = 400, 250
		}
		// Half the seeds read the changes in parts, as the daemon
		// reads a bulk Set's (RouteCache.Chunk), and apply every part
		// before comparing: of one entry, or growing from one to four.
		chunk := 0
		switch {
		case seed >= 6:
			chunk = 4
		case seed >= 4:
			chunk = 1
		}
		t.Run(fmt.Sprintf("%d-pool%d-chunk%d", seed, pool, chunk), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			var ls []leaf
			for i := range prefill {
				ls = append(ls, routeLeaves(fmt.Sprintf("10.40.%d.%d/32", i/256, i%256), "underlay", "operator")...)
			}
			ls = append(ls, podLeaves("c1", `["10.42.0.3/32"]`, "veth1", "underlay", "")...)
			ls = append(ls, podLeaves("c2", `["10.42.0.9/32"]`, "veth2", "overlay", "master")...)
			peer := "/kedge/mesh/peers/peer[name=p1]/config/"
			ls = append(ls, leaf{peer + "name", s("p1")}, leaf{peer + "public-key", s(key(1))},
				leaf{peer + "allowed-ips", js(`["10.43.0.5/32","10.41.0.0/16"]`)})
			ep := "/kedge/routes/endpoints/endpoint[name=prom]/config/"
			ls = append(ls, leaf{ep + "name", s("prom")}, leaf{ep + "kind", s("monitoring")}, leaf{ep + "prefix", s("10.40.0.0/29")})
			ls = append(ls, aftBase()...)
			for i := range prefill {
				ls = append(ls, aftLeaves(fmt.Sprintf("10.60.%d.%d/32", i/256, i%256), 1+i%3, []string{"op", "ma"}[i%2])...)
			}
			tr := build(t, ls)
			// gRIBI's prefixes: mostly their own, now and then a route's
			// or a pod's (precedence), now and then IPv6.
			aftPrefix := func() string {
				i := rng.IntN(pool)
				switch rng.IntN(10) {
				case 0:
					return fmt.Sprintf("10.40.%d.%d/32", i/256, i%256)
				case 1:
					return fmt.Sprintf("10.42.0.%d/32", rng.IntN(20))
				case 2:
					return fmt.Sprintf("2001:db8::%x/128", i)
				}
				return fmt.Sprintf("10.60.%d.%d/32", i/256, i%256)
			}

			prefix := func() string { i := rng.IntN(pool); return fmt.Sprintf("10.40.%d.%d/32", i/256, i%256) }
			entry := func(p string, table int) string {
				return fmt.Sprintf("/kedge/routes/route[prefix=%s][table=%d]", p, table)
			}
			table := func() int { return []int{254, 254, 254, 100}[rng.IntN(4)] }
			classes := []string{"overlay", "underlay", "management", "monitoring", "incident"}
			cache := RouteCache{Chunk: chunk}
			var seq uint64
			level := uint8(5)
			kernel := map[route.Key]route.Route{}
			status := map[Origin]string{} // Stated cleared
			stated := map[Origin]bool{}
			deltas, fulls, aftDeltas, parts, intents := 0, 0, 0, 0, 0
			next := func(got RouteSet) RouteSet {
				t.Helper()
				parts++
				n, err := got.Next()
				if err != nil {
					t.Fatal(err)
				}
				if n.Seq != seq {
					t.Fatalf("part at seq %d, want %d", n.Seq, seq)
				}
				n.Seq = 0 // Changes leaves it to the caller; Next sets it
				return n
			}
			for step := range 400 {
				var ops []op
				what := rng.IntN(19)
				switch {
				case what >= 12:
					ops = aftOp(rng, what-12, aftPrefix, func() []string {
						var out []string
						for in := range kedgetree.Of(tr).Kedge().Aft().Ipv4Entries().Ipv4Entry().All() {
							p, _ := in.Prefix()
							out = append(out, p)
						}
						return out
					})
				case what < 5: // add or change a route
					p, tb := prefix(), table()
					c := entry(p, tb) + "/config/"
					ops = append(ops, op{path: c + "prefix", val: s(p)}, op{path: c + "table", val: u(uint64(tb))}, op{path: c + "device", val: s("eth0")},
						op{path: c + "class", val: s(classes[rng.IntN(len(classes))])}, op{path: c + "metric", val: u(uint64(rng.IntN(3)))})
					if rng.IntN(2) == 0 {
						ops = append(ops, op{path: c + "tier", val: s([]string{"master", "operator"}[rng.IntN(2)])})
					}
					if rng.IntN(8) == 0 {
						ops = append(ops, op{path: c + "next-hop", val: s("fd00::1")}) // wrong family: invalid
					}
				case what < 7: // delete a route
					ops = append(ops, op{path: entry(prefix(), table())})
				case what < 8: // a transaction that fails and rolls back
					c := entry(prefix(), 254) + "/config/"
					ops = append(ops, op{path: c + "metric", val: u(7)}, op{path: c + "class", val: s("not-a-class")})
				case what < 10: // state, which only moves Stated: written, or now and then removed; a route's, a pod's or a gRIBI entry's
					st := op{path: entry(prefix(), 254) + "/state/status", val: s("installed"), state: true}
					if rng.IntN(3) == 0 {
						st.path = fmt.Sprintf("/kedge/pods/pod[container-id=c%d][ifname=eth0]/state/status", 1+rng.IntN(5))
						st.val = s("active")
					} else if rng.IntN(2) == 0 {
						st.path = aftEntry(aftPrefix()) + "/state/status"
					}
					if rng.IntN(3) == 0 {
						st.val = nil
					}
					ops = append(ops, st)
				case what < 11: // a pod comes, goes or moves, now and then onto a route's destination
					a := fmt.Sprintf("10.42.0.%d/32", rng.IntN(20))
					if rng.IntN(4) == 0 {
						a = prefix()
					}
					cid := fmt.Sprintf("c%d", 1+rng.IntN(5))
					switch rng.IntN(4) {
					case 0:
						ops = append(ops, op{path: "/kedge/pods/pod[container-id=" + cid + "][ifname=eth0]"})
					case 1:
						for _, l := range podLeaves(cid, `["`+a+`"]`, "veth"+cid, classes[rng.IntN(2)], []string{"", "master", "operator"}[rng.IntN(3)]) {
							ops = append(ops, op{path: l.path, val: l.val})
						}
					default: // a pod that does not exist yet comes pending (no host-ifname)
						ops = append(ops, op{path: "/kedge/pods/pod[container-id=" + cid + "][ifname=eth0]/config/addresses",
							val: js(`["` + a + `"]`)})
					}
				default: // the posture level changes
					level = uint8(1 + rng.IntN(5))
				}
				if rng.IntN(40) == 0 {
					// A whole subtree goes in one delete: the routes, the
					// pods, the AFT or all of /kedge.
					ops = []op{{path: []string{"/kedge/routes", "/kedge/pods", "/kedge/aft", "/kedge"}[rng.IntN(4)]}}
				}
				if chunk > 0 && rng.IntN(5) == 0 {
					// A bulk commit: several routes added or deleted.
					for range 2 + rng.IntN(8) {
						p, tb := prefix(), table()
						if rng.IntN(4) == 0 {
							ops = append(ops, op{path: entry(p, tb)})
							continue
						}
						c := entry(p, tb) + "/config/"
						ops = append(ops, op{path: c + "prefix", val: s(p)}, op{path: c + "table", val: u(uint64(tb))}, op{path: c + "device", val: s("eth0")},
							op{path: c + "class", val: s(classes[rng.IntN(len(classes))])})
					}
				}
				if changes, ok := applyOps(t, tr, ops); ok {
					seq++
					if rng.IntN(30) != 0 {
						cache.Observe(seq, len(ops) > 0 && ops[0].state, changes)
					}
				}
				if rng.IntN(3) == 0 {
					continue // commits pile up between intents
				}
				acc, _ := accord.Default(level)
				intents++
				got, err := cache.Changes(tr, acc, seq)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := Routes(tr, acc)
			apply:
				for {
					if got.Delta == nil {
						fulls++
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("step %d: full set differs:\ngot  %+v\nwant %+v", step, got, want)
						}
						clear(kernel)
						for _, r := range got.Config.Routes {
							kernel[r.Key()] = r
						}
						clear(status)
						clear(stated)
						for _, o := range got.Origins {
							status[unstate(o)], stated[unstate(o)] = "kept", o.Stated
						}
						for _, w := range got.Withheld {
							status[unstate(w.Origin)], stated[unstate(w.Origin)] = "withheld: "+w.Reason, w.Origin.Stated
						}
						for _, w := range got.Invalid {
							status[unstate(w.Origin)], stated[unstate(w.Origin)] = "invalid: "+w.Reason, w.Origin.Stated
						}
						for _, st := range got.AFT {
							status[Origin{AFT: st.Key}], stated[Origin{AFT: st.Key}] = "aft: "+st.Status+" "+st.Reason, st.Stated
						}
						if got.Next == nil {
							break apply
						}
						prev := got
						got = next(got)
						prev.Release() // the next set may reuse its lists
						continue
					}
					deltas++
					// The route entries' puts come in set order, then the pods'
					// and peers' (also in order).
					put, po := got.Delta.Patch.Put, got.Delta.PutOrigins
					for i := 1; i < len(put); i++ {
						side := po[i].IsPod() || po[i].IsOverlay()
						if side == (po[i-1].IsPod() || po[i-1].IsOverlay()) && compareRoutes(put[i-1], po[i-1], put[i], po[i]) >= 0 {
							t.Fatalf("step %d: puts out of order: %s before %s", step, put[i-1].Dst, put[i].Dst)
						}
					}
					// Apply the delta as the backend does: puts by key, then
					// deletes of keys no put has.
					puts := map[route.Key]bool{}
					for i, r := range got.Delta.Patch.Put {
						if puts[r.Key()] {
							t.Fatalf("step %d: delta puts %s twice", step, r.Key())
						}
						puts[r.Key()] = true
						kernel[r.Key()] = r
						o := got.Delta.PutOrigins[i]
						status[unstate(o)], stated[unstate(o)] = "kept", o.Stated
					}
					for _, o := range got.Delta.Installed {
						if !o.IsPod() && !o.IsOverlay() {
							t.Fatalf("step %d: %+v reported installed without a put", step, o)
						}
					}
					for _, r := range got.Delta.Patch.Del {
						if !puts[r.Key()] {
							delete(kernel, r.Key())
						}
					}
					for _, w := range got.Withheld {
						status[unstate(w.Origin)], stated[unstate(w.Origin)] = "withheld: "+w.Reason, w.Origin.Stated
					}
					for _, w := range got.Invalid {
						status[unstate(w.Origin)], stated[unstate(w.Origin)] = "invalid: "+w.Reason, w.Origin.Stated
					}
					for _, st := range got.AFT {
						status[Origin{AFT: st.Key}], stated[Origin{AFT: st.Key}] = "aft: "+st.Status+" "+st.Reason, st.Stated
					}
					if slices.ContainsFunc(got.Delta.PutOrigins, Origin.IsAFT) || len(got.AFT) > 0 ||
						slices.ContainsFunc(got.Withheld, func(w Withheld) bool { return w.Origin.IsAFT() }) {
						aftDeltas++
					}
					if got.Next == nil {
						break
					}
					prev := got
					got = next(got)
					prev.Release()
				}
				if got.Delta == nil {
					continue // the whole set was compared
				}
				wantKernel := map[route.Key]route.Route{}
				for _, r := range want.Config.Routes {
					if _, dup := wantKernel[r.Key()]; dup {
						t.Fatalf("step %d: a delta while two routes share %s", step, r.Key())
					}
					wantKernel[r.Key()] = r
				}
				if !reflect.DeepEqual(kernel, wantKernel) {
					t.Fatalf("step %d (op kind %d, level %d): patched routes differ:\ngot  %v\nwant %v", step, what, level, kernel, wantKernel)
				}
				check := func(o Origin, st string) {
					t.Helper()
					if o.IsOverlay() {
						return // no entry of its own
					}
					if status[unstate(o)] != st {
						t.Fatalf("step %d: %+v: status %q, want %q", step, o, status[unstate(o)], st)
					}
					if o.IsPod() {
						return // a pod's state is its PodRef's: every set has them all, compared below
					}
					// Stated must be right for what the delta reports;
					// of other entries the writer remembers what it wrote.
					if stated[unstate(o)] != o.Stated && reported(got, o) {
						t.Fatalf("step %d: %+v: stated %t, want %t", step, o, stated[unstate(o)], o.Stated)
					}
					// An entry whose state went since it was last
					// reported must be reported again, or the writer,
					// remembering what it wrote, would not put it back.
					if !o.Stated && stated[unstate(o)] {
						t.Fatalf("step %d: %+v lost its state and was not reported again", step, o)
					}
				}
				for _, o := range want.Origins {
					check(o, "kept")
				}
				for _, w := range want.Withheld {
					check(w.Origin, "withheld: "+w.Reason)
				}
				for _, w := range want.Invalid {
					check(w.Origin, "invalid: "+w.Reason)
				}
				for _, st := range want.AFT {
					check(Origin{AFT: st.Key, Stated: st.Stated}, "aft: "+st.Status+" "+st.Reason)
				}
				if got.HasAFT != want.HasAFT {
					t.Fatalf("step %d: HasAFT %t, want %t", step, got.HasAFT, want.HasAFT)
				}
				if !reflect.DeepEqual(got.Pods, want.Pods) || !reflect.DeepEqual(got.PodsPending, want.PodsPending) ||
					!reflect.DeepEqual(got.VLANs, want.VLANs) || !reflect.DeepEqual(got.Config.Interfaces, want.Config.Interfaces) {
					t.Fatalf("step %d: pods, VLANs or interfaces differ", step)
				}
				// The last part's side puts and Installed are every kept pod
				// and overlay route of the whole set, once each.
				side, wantSide := map[Origin]int{}, map[Origin]int{}
				for _, o := range got.Delta.PutOrigins {
					if o.IsPod() || o.IsOverlay() {
						side[unstate(o)]++
					}
				}
				for _, o := range got.Delta.Installed {
					side[unstate(o)]++
				}
				for _, o := range want.Origins {
					if o.IsPod() || o.IsOverlay() {
						wantSide[unstate(o)]++
					}
				}
				if !reflect.DeepEqual(side, wantSide) {
					t.Fatalf("step %d: side routes put or installed %v, want %v", step, side, wantSide)
				}
				got.Release() // as the applier does: the next change set reuses its lists
			}
			// The pods must be read one by one as the commits touch them,
			// not whole on most intents (podcache.go).
			if pc := cache.pods; pc.walks*4 > intents || pc.patches < 5 {
				t.Errorf("pods read whole %d times and patched %d times in %d intents: the pods' incremental path is not exercised", pc.walks, pc.patches, intents)
			}
			if deltas < 100 || fulls < 10 || aftDeltas < 15 {
				t.Errorf("%d deltas (%d with gRIBI entries) and %d full sets: both paths must be exercised", deltas, aftDeltas, fulls)
			}
			if chunk > 0 && parts < 20 {
				t.Errorf("%d parts after the first: changes in parts must be exercised", parts)
			}
			t.Logf("%d deltas (%d with gRIBI entries), %d full sets, %d parts after the first; pods read whole %d times, patched %d times, in %d intents",
				deltas, aftDeltas, fulls, parts, cache.pods.walks, cache.pods.patches, intents)
		})
	}
}

// reported says whether the delta set names origin o.
func reported(s RouteSet, o Origin) bool {
	for _, p := range s.Delta.PutOrigins {
		if unstate(p) == unstate(o) {
			return true
		}
	}
	for _, w := range append(append([]Withheld{}, s.Withheld...), s.Invalid...) {
		if unstate(w.Origin) == unstate(o) {
			return true
		}
	}
	for _, st := range s.AFT {
		if o.IsAFT() && st.Key == o.AFT {
			return true
		}
	}
	return false
}

// aftBase is /kedge/aft's next hops (an address, an interface, an
// unsupported one), groups 1 (one hop), 2 (two, weighted) and 3 (the
// unsupported one), and two sessions: an operator's underlay and a
// master's management routes.
func aftBase() []leaf {
	a := "/kedge/aft/"
	var ls []leaf
	for _, nh := range [][3]string{{"1", "ip-address", "192.0.2.1"}, {"2", "interface", "eth1"}, {"3", "unsupported", "mac-address"}} {
		p := a + "next-hops/next-hop[index=" + nh[0] + "]/config/"
		ls = append(ls, leaf{p + "index", s(nh[0])}, leaf{p + nh[1], s(nh[2])})
	}
	for id, members := range map[string][]string{"1": {"1"}, "2": {"1", "2"}, "3": {"3"}} {
		p := a + "next-hop-groups/next-hop-group[id=" + id + "]/"
		ls = append(ls, leaf{p + "config/id", s(id)})
		for i, m := range members {
			mp := p + "next-hops/next-hop[index=" + m + "]/config/"
			ls = append(ls, leaf{mp + "index", s(m)})
			if i == 1 {
				ls = append(ls, leaf{mp + "weight", u(3)})
			}
		}
	}
	for _, sess := range [][3]string{{"op", "operator", "underlay"}, {"ma", "master", "management"}} {
		p := a + "sessions/session[id=" + sess[0] + "]/config/"
		ls = append(ls, leaf{p + "id", s(sess[0])}, leaf{p + "tier", s(sess[1])}, leaf{p + "class", s(sess[2])})
	}
	return ls
}

// aftEntry is the path of the IP entry of prefix.
func aftEntry(prefix string) string {
	if strings.Contains(prefix, ":") {
		return "/kedge/aft/ipv6-entries/ipv6-entry[prefix=" + prefix + "]"
	}
	return "/kedge/aft/ipv4-entries/ipv4-entry[prefix=" + prefix + "]"
}

// aftLeaves is an IP entry through group nhg, written by session.
func aftLeaves(prefix string, nhg int, session string) []leaf {
	c := aftEntry(prefix) + "/config/"
	return []leaf{{c + "prefix", s(prefix)}, {c + "next-hop-group", u(uint64(nhg))}, {c + "session", s(session)}}
}

// aftOp is a random gRIBI commit of kind what (0-6), as the gRIBI writer
// makes them: entries added or replaced (through groups 1-3 or 9, which
// does not exist; now and then 300 at once), deleted (now and then all), groups' members and next hops changed, a
// group deleted, a session's tier changed, entries' state written or
// removed (now and then every live IPv4 entry's, live lists them).
func aftOp(rng *rand.Rand, what int, prefix func() string, live func() []string) []op {
	a := "/kedge/aft/"
	switch what {
	case 0, 1: // add or replace a few entries, now and then 300 (a bulk load's batch)
		var ops []op
		if rng.IntN(8) == 0 {
			base := rng.IntN(4) * 100
			for i := range 300 {
				for _, l := range aftLeaves(fmt.Sprintf("10.61.%d.%d/32", (base+i)/256, (base+i)%256), 1+rng.IntN(3), "op") {
					ops = append(ops, op{path: l.path, val: l.val})
				}
			}
			return ops
		}
		for range 1 + rng.IntN(4) {
			for _, l := range aftLeaves(prefix(), []int{1, 1, 2, 3, 9}[rng.IntN(5)], []string{"op", "ma", "gone"}[rng.IntN(3)]) {
				ops = append(ops, op{path: l.path, val: l.val})
			}
		}
		return ops
	case 2: // delete one, now and then every IPv4 entry
		if rng.IntN(10) == 0 {
			return []op{{path: a + "ipv4-entries"}}
		}
		return []op{{path: aftEntry(prefix())}}
	case 3: // group 2's members change, or group 3 goes and comes back
		g := a + "next-hop-groups/next-hop-group[id=2]/"
		switch rng.IntN(3) {
		case 0:
			return []op{{path: g + "next-hops"}, {path: g + "next-hops/next-hop[index=1]/config/index", val: s("1")}}
		case 1:
			return []op{{path: g + "next-hops"}, {path: g + "next-hops/next-hop[index=1]/config/index", val: s("1")},
				{path: g + "next-hops/next-hop[index=2]/config/index", val: s("2")}, {path: g + "next-hops/next-hop[index=2]/config/weight", val: u(3)}}
		}
		g3 := a + "next-hop-groups/next-hop-group[id=3]"
		if rng.IntN(2) == 0 {
			return []op{{path: g3}}
		}
		return []op{{path: g3 + "/config/id", val: s("3")}, {path: g3 + "/next-hops/next-hop[index=3]/config/index", val: s("3")}}
	case 4: // next hop 1 moves (group 1 and 2 change), or next hop 3 becomes supported
		if rng.IntN(2) == 0 {
			return []op{{path: a + "next-hops/next-hop[index=1]/config/ip-address", val: s([]string{"192.0.2.1", "192.0.2.7"}[rng.IntN(2)])}}
		}
		nh := a + "next-hops/next-hop[index=3]/config/"
		if rng.IntN(2) == 0 {
			return []op{{path: nh + "unsupported"}, {path: nh + "interface", val: s("eth3")}}
		}
		return []op{{path: nh + "interface"}, {path: nh + "unsupported", val: s("mac-address")}}
	case 5: // the operator's session becomes a master's, or back
		return []op{{path: a + "sessions/session[id=op]/config/tier", val: s([]string{"operator", "master"}[rng.IntN(2)])}}
	}
	var val *gpb.TypedValue
	if rng.IntN(3) != 0 {
		val = s("installed")
	}
	if rng.IntN(6) == 0 {
		// Every IPv4 entry's, as the route applier writes a bulk load's.
		var ops []op
		for _, p := range live() {
			ops = append(ops, op{path: aftEntry(p) + "/state/status", val: val, state: true})
		}
		return ops
	}
	return []op{{path: aftEntry(prefix()) + "/state/status", val: val, state: true}}
}

// TestChangesCarryAFTGroupAlone: a next-hop group alone in /kedge/aft (no
// IP entry refers to it yet) is a change set that says the AFT holds
// entries and carries the group's and its next hop's status, so the
// applier writes their state and the programmed-sequence gRIBI's FIB
// acknowledgement of the group waits for. (Before gRIBI's entries were in
// change sets, such a set lacked both and gribigo's compliance case "Add
// next-hop-group entry that can be resolved on the server, no referencing
// IPv4 entries - with FIB ACK" waited forever.)
func TestChangesCarryAFTGroupAlone(t *testing.T) {
	tr := build(t, routeLeaves("10.40.0.1/32", "underlay", "operator"))
	acc, _ := accord.Default(5)
	var cache RouteCache
	if _, err := cache.Changes(tr, acc, 0); err != nil {
		t.Fatal(err)
	}
	// A plain route change is a change set.
	c := "/kedge/routes/route[prefix=10.40.0.2/32][table=254]/config/"
	changes, ok := applyOps(t, tr, []op{{path: c + "prefix", val: s("10.40.0.2/32")}, {path: c + "table", val: u(254)},
		{path: c + "device", val: s("eth0")}, {path: c + "class", val: s("underlay")}})
	if !ok {
		t.Fatal("route commit refused")
	}
	cache.Observe(1, false, changes)
	got, err := cache.Changes(tr, acc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Delta == nil {
		t.Fatal("a one-route commit gave a whole set: the test no longer exercises change sets")
	}
	// Then gRIBI adds a next hop and a group, nothing referring to them.
	a := "/kedge/aft/"
	changes, ok = applyOps(t, tr, []op{
		{path: a + "next-hops/next-hop[index=1]/config/index", val: s("1")},
		{path: a + "next-hops/next-hop[index=1]/config/ip-address", val: s("192.0.2.1")},
		{path: a + "next-hop-groups/next-hop-group[id=10]/config/id", val: s("10")},
		{path: a + "next-hop-groups/next-hop-group[id=10]/next-hops/next-hop[index=1]/config/index", val: s("1")},
	})
	if !ok {
		t.Fatal("AFT commit refused")
	}
	cache.Observe(2, false, changes)
	got, err = cache.Changes(tr, acc, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got.Delta == nil || !got.HasAFT {
		t.Fatalf("with a group alone in the AFT: change set %v, HasAFT %v; want a change set with HasAFT", got.Delta != nil, got.HasAFT)
	}
	want := []AFTState{{Key: AFTKey{Kind: AFTNextHopGroup, ID: 10}, Status: "installed"}, {Key: AFTKey{Kind: AFTNextHop, ID: 1}, Status: "installed"}}
	if !reflect.DeepEqual(got.AFT, want) {
		t.Fatalf("AFT states %+v, want %+v", got.AFT, want)
	}
}

// TestChangeSetListsReused: a change set released by its consumer gives
// its pod list and installed origins to a later change set, which fills
// them afresh; a set not released keeps its own, and a whole set ignores
// Release.
func TestChangeSetListsReused(t *testing.T) {
	const pods = 20
	tr, cache, acc, leaves := podLab(t, pods)
	seq := uint64(0)
	// move gives pod i a new address: the pod count stays, so a reused
	// list needs no more room.
	move := func(i, addr int) RouteSet {
		t.Helper()
		var ops []op
		for _, l := range leaves(i, addr) {
			ops = append(ops, op{path: l.path, val: l.val})
		}
		changes, ok := applyOps(t, tr, ops)
		if !ok {
			t.Fatal("pod commit refused")
		}
		seq++
		cache.Observe(seq, false, changes)
		got, err := cache.Changes(tr, acc, seq)
		if err != nil {
			t.Fatal(err)
		}
		if got.Delta == nil {
			t.Fatal("a pod change gave a whole set: the test no longer exercises change sets")
		}
		want, _ := Routes(tr, acc)
		if !reflect.DeepEqual(got.Pods, want.Pods) || len(got.Delta.Installed) != pods-1 {
			t.Fatalf("pod %d: %d pods, %d installed; want %d pods, %d installed", i, len(got.Pods), len(got.Delta.Installed), len(want.Pods), pods-1)
		}
		return got
	}
	first := move(3, 100)
	firstPods, firstInst := &first.Pods[0], &first.Delta.Installed[0]
	second := move(4, 101) // first is not released: its lists are its own
	if &second.Pods[0] == firstPods || &second.Delta.Installed[0] == firstInst {
		t.Fatal("a change set took the lists of one not released")
	}
	if first.Pods[0].Key.ContainerID != "p000" || len(first.Pods) != pods {
		t.Fatalf("the unreleased set's pods changed: %d, the first %+v", len(first.Pods), first.Pods[0])
	}
	first.Release()
	if first.Pods != nil || first.Delta.Installed != nil {
		t.Fatal("a released set still shows its lists")
	}
	first.Release() // a second release changes nothing
	third := move(5, 102)
	if &third.Pods[0] != firstPods || &third.Delta.Installed[0] != firstInst {
		t.Fatal("the change set after a release did not reuse the released lists")
	}
	whole, _ := Routes(tr, acc)
	n := len(whole.Pods)
	whole.Release() // a whole set took no lists: nothing happens
	if len(whole.Pods) != n || n != pods {
		t.Fatalf("releasing a whole set changed it: %d pods, want %d", len(whole.Pods), n)
	}
}
