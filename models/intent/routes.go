package intent

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// Withheld is a route of the tree's config that the accord keeps out of the
// kernel, with the reason shown in its state.
type Withheld struct {
	Dst    netip.Prefix
	Table  uint32
	Reason string
}

// RouteSet is the routes intent: what to install and what is withheld.
type RouteSet struct {
	Config   route.Config
	Withheld []Withheld
}

type endpoint struct {
	kind   string
	prefix netip.Prefix
}

// Routes translates /kedge/routes under the accord's route policy (the
// seed's CNI table):
//
//   - full: every route;
//   - withhold-underlay-below-master: underlay routes whose tier is below
//     master (no tier means operator) are withheld, the rest kept;
//   - critical-only: only management and incident routes, and routes that
//     reach a configured service endpoint (Quartermaster, SPIRE,
//     Prometheus, incident targets);
//   - monitoring-only: only monitoring and incident routes and routes to
//     monitoring or incident endpoints; never an overlay route.
//
// An unknown policy withholds everything but incident routes: failing
// closed is the safe reading of a policy this code does not know.
func Routes(t *tree.Tree, a accord.Accord) (RouteSet, error) { return routes(t, a, true) }

// RouteConfig is Routes without the withheld list, for a posture step or
// reconciler of the route backend.
func RouteConfig(t *tree.Tree, a accord.Accord) (route.Config, error) {
	s, err := routes(t, a, false)
	return s.Config, err
}

func routes(t *tree.Tree, a accord.Accord, withheld bool) (RouteSet, error) {
	var set RouteSet
	k := t.Root().Sub("kedge")
	if k == nil {
		return set, nil
	}
	rt := k.Sub("routes")
	if rt == nil {
		return set, nil
	}
	var eps []endpoint
	if e := rt.Sub("endpoints"); e != nil {
		e.Entries("endpoint", func(in *tree.Inst) bool {
			if c := in.Sub("config"); c != nil {
				if p, err := netip.ParsePrefix(c.Get("prefix").Str()); err == nil {
					eps = append(eps, endpoint{kind: c.Get("kind").Str(), prefix: p.Masked()})
				}
			}
			return true
		})
	}
	var errs []string
	set.Config.Routes = make([]route.Route, 0, rt.Len("route"))
	reason := "posture level " + strconv.Itoa(int(a.Level)) + " (" + a.RoutePolicy + "): "
	rt.Entries("route", func(in *tree.Inst) bool {
		c := in.Sub("config")
		if c == nil {
			return true
		}
		r, err := routeOf(c)
		if err != nil {
			errs = append(errs, err.Error())
			return true
		}
		class, tier := c.Get("class").Str(), c.Get("tier").Str()
		if tier == "" {
			tier = accord.TierOperator
		}
		if ok, why := keepRoute(a, class, tier, r.Dst, eps); ok {
			set.Config.Routes = append(set.Config.Routes, r)
		} else if withheld {
			set.Withheld = append(set.Withheld, Withheld{Dst: r.Dst, Table: r.Table, Reason: reason + why})
		}
		return true
	})
	// Entries runs in map order; sort so equal trees give equal Configs.
	slices.SortFunc(set.Config.Routes, func(x, y route.Route) int { return compareKey(x.Dst, x.Table, y.Dst, y.Table) })
	slices.SortFunc(set.Withheld, func(x, y Withheld) int { return compareKey(x.Dst, x.Table, y.Dst, y.Table) })
	if len(errs) > 0 {
		slices.Sort(errs)
		return set, fmt.Errorf("translate routes: %s", strings.Join(errs, "; "))
	}
	return set, nil
}

func compareKey(a netip.Prefix, at uint32, b netip.Prefix, bt uint32) int {
	if at != bt {
		if at < bt {
			return -1
		}
		return 1
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func routeOf(c *tree.Inst) (route.Route, error) {
	dst, err := netip.ParsePrefix(c.Get("prefix").Str())
	if err != nil {
		return route.Route{}, fmt.Errorf("route %q: %w", c.Get("prefix").Str(), err)
	}
	r := route.Route{Dst: dst.Masked(), Device: c.Get("device").Str(),
		Table: uint32(c.Get("table").UintVal()), Metric: uint32(c.Get("metric").UintVal())}
	if nh := c.Get("next-hop").Str(); nh != "" {
		if r.Gateway, err = netip.ParseAddr(nh); err != nil {
			return route.Route{}, fmt.Errorf("route %s next-hop: %w", dst, err)
		}
	}
	return r, nil
}

func keepRoute(a accord.Accord, class, tier string, dst netip.Prefix, eps []endpoint) (bool, string) {
	reaches := func(kinds ...string) bool {
		for _, e := range eps {
			if slices.Contains(kinds, e.kind) && e.prefix.Overlaps(dst) {
				return true
			}
		}
		return false
	}
	switch a.RoutePolicy {
	case accord.RoutesFull:
		return true, ""
	case accord.RoutesWithholdUnderlayBelowMaster:
		if class == "underlay" && tier != accord.TierMaster {
			return false, "underlay route of tier " + tier + ", below master"
		}
		return true, ""
	case accord.RoutesCriticalOnly:
		if class == "management" || class == "incident" || reaches("management", "incident", "monitoring") {
			return true, ""
		}
		return false, "not a management or incident route"
	case accord.RoutesMonitoringOnly:
		if class == "overlay" {
			return false, "overlay routes are removed"
		}
		if class == "monitoring" || class == "incident" || reaches("monitoring", "incident") {
			return true, ""
		}
		return false, "not a monitoring route"
	}
	if class == "incident" {
		return true, ""
	}
	return false, "unknown route policy"
}
