package route

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Config is the full desired state of Kedge's routes, policy rules and
// underlay interfaces in one network namespace. Anything Kedge made earlier
// that is not in the Config is removed by Set.
type Config struct {
	Routes     []Route
	Rules      []Rule
	Interfaces []Interface
}

// Route is one unicast route. Its key in the kernel is (Table, Dst, Metric):
// two routes of a Config with the same key are a configuration error.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr // optional; without it the route is on-link via Device
	Device  string     // optional when Gateway is set
	Table   uint32     // 0 means main (254)
	Metric  uint32     // IPv6: 0 means the kernel's default 1024
	Src     netip.Addr // optional preferred source address
	Scope   Scope      // ScopeDefault: link without a gateway, universe with one
	// Multipath, when set, holds the route's next hops (an ECMP or
	// weighted route; gRIBI's next-hop groups); Gateway and Device are
	// then empty.
	Multipath []NextHop
}

// NextHop is one path of a multipath route.
type NextHop struct {
	Gateway netip.Addr // optional; without it the path is on-link via Device
	Device  string     // optional when Gateway is set
	Weight  uint16     // 1..256; 0 means 1
}

// Scope is a route scope. The zero value picks the usual one.
type Scope uint8

// Route scopes.
const (
	ScopeDefault Scope = iota
	ScopeUniverse
	ScopeLink
	ScopeHost
)

func (s Scope) String() string {
	switch s {
	case ScopeUniverse:
		return "global"
	case ScopeLink:
		return "link"
	case ScopeHost:
		return "host"
	}
	return "default"
}

// Key identifies a route in the kernel: per family and table, a destination
// and metric hold at most one route.
type Key struct {
	Table  uint32
	Dst    netip.Prefix
	Metric uint32
}

func (k Key) String() string {
	return fmt.Sprintf("%s table %d metric %d", k.Dst, k.Table, k.Metric)
}

const (
	tableMain     = 254
	ipv6MetricDef = 1024
)

// Normalize returns r with defaults filled in the way the kernel reports
// them, so a normalized Route compares equal to what a dump shows.
func (r Route) Normalize() Route {
	r.Dst = r.Dst.Masked()
	r.Gateway = r.Gateway.Unmap()
	r.Src = r.Src.Unmap()
	if r.Table == 0 {
		r.Table = tableMain
	}
	if r.Dst.Addr().Is6() {
		if r.Metric == 0 {
			r.Metric = ipv6MetricDef
		}
		r.Scope = ScopeUniverse // IPv6 routes have no scope
	}
	if r.Scope == ScopeDefault {
		r.Scope = ScopeUniverse
		if !r.Gateway.IsValid() && len(r.Multipath) == 0 {
			r.Scope = ScopeLink
		}
	}
	if len(r.Multipath) > 0 {
		mp := make([]NextHop, len(r.Multipath))
		for i, h := range r.Multipath {
			h.Gateway = h.Gateway.Unmap()
			if h.Weight == 0 {
				h.Weight = 1
			}
			mp[i] = h
		}
		r.Multipath = mp
	}
	return r
}

// Equal reports whether r and o are the same route, field by field
// (Multipath compared in order).
func (r Route) Equal(o Route) bool {
	return r.Dst == o.Dst && r.Gateway == o.Gateway && r.Device == o.Device && r.Table == o.Table &&
		r.Metric == o.Metric && r.Src == o.Src && r.Scope == o.Scope && slices.Equal(r.Multipath, o.Multipath)
}

// Key returns the kernel key of the normalized route.
func (r Route) Key() Key {
	n := r.Normalize()
	return Key{Table: n.Table, Dst: n.Dst, Metric: n.Metric}
}

func (r Route) String() string {
	n := r.Normalize()
	s := n.Dst.String()
	if n.Gateway.IsValid() {
		s += " via " + n.Gateway.String()
	}
	if n.Device != "" {
		s += " dev " + n.Device
	}
	for _, h := range n.Multipath {
		s += " nexthop"
		if h.Gateway.IsValid() {
			s += " via " + h.Gateway.String()
		}
		if h.Device != "" {
			s += " dev " + h.Device
		}
		s += fmt.Sprintf(" weight %d", h.Weight)
	}
	s += fmt.Sprintf(" table %d metric %d scope %s", n.Table, n.Metric, n.Scope)
	if n.Src.IsValid() {
		s += " src " + n.Src.String()
	}
	return s
}

// Rule is a policy routing rule: packets matching Src, Dst and Mark/Mask
// look up Table. Its identity is the whole tuple.
type Rule struct {
	Priority uint32 // required, 1..32765
	Src      netip.Prefix
	Dst      netip.Prefix
	Table    uint32 // required
	Mark     uint32
	Mask     uint32 // 0 with a Mark means all bits
	IPv6     bool   // family when neither Src nor Dst says it
}

// Normalize fills defaults the way the kernel reports them.
func (r Rule) Normalize() Rule {
	// A zero-length prefix matches everything, which the kernel spells as
	// "no selector".
	if r.Src.IsValid() && r.Src.Bits() == 0 {
		r.IPv6, r.Src = r.Src.Addr().Is6(), netip.Prefix{}
	}
	if r.Dst.IsValid() && r.Dst.Bits() == 0 {
		r.IPv6, r.Dst = r.Dst.Addr().Is6(), netip.Prefix{}
	}
	if r.Src.IsValid() {
		r.Src = r.Src.Masked()
		r.IPv6 = r.Src.Addr().Is6()
	}
	if r.Dst.IsValid() {
		r.Dst = r.Dst.Masked()
		r.IPv6 = r.Dst.Addr().Is6()
	}
	if r.Mark != 0 && r.Mask == 0 {
		r.Mask = 0xffffffff
	}
	return r
}

func (r Rule) String() string {
	n := r.Normalize()
	fam := "ipv4"
	if n.IPv6 {
		fam = "ipv6"
	}
	s := fmt.Sprintf("%s rule %d", fam, n.Priority)
	if n.Src.IsValid() {
		s += " from " + n.Src.String()
	}
	if n.Dst.IsValid() {
		s += " to " + n.Dst.String()
	}
	if n.Mark != 0 || n.Mask != 0 {
		s += fmt.Sprintf(" fwmark %#x/%#x", n.Mark, n.Mask)
	}
	return s + fmt.Sprintf(" lookup %d", n.Table)
}

// Kind says how an underlay interface is made.
type Kind uint8

// Interface kinds.
const (
	// KindAuto makes a VLAN when the kernel has 8021q, else a bridge-mode
	// macvlan (which carries no tag: the VLAN ID is then only recorded).
	KindAuto Kind = iota
	KindVLAN
	KindMacvlan
)

func (k Kind) String() string {
	switch k {
	case KindVLAN:
		return "vlan"
	case KindMacvlan:
		return "macvlan"
	}
	return "auto"
}

// Interface is an underlay interface Kedge owns, stacked on Parent.
type Interface struct {
	Name      string
	Parent    string
	Kind      Kind
	VLANID    uint16 // required for KindVLAN and KindAuto
	Addresses []netip.Prefix
	Up        bool
}

// Sentinel errors callers (the reconciler writing /state) branch on. Errors
// returned by Set wrap them inside *RouteError, *RuleError or *InterfaceError.
var (
	// ErrInvalid: the item is malformed (bad prefix, missing device and gateway, ...).
	ErrInvalid = errors.New("invalid")
	// ErrDuplicate: another item of the Config has the same key.
	ErrDuplicate = errors.New("duplicate key in config")
	// ErrUnknownDevice: the named device does not exist in the namespace.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrGatewayUnreachable: the kernel found no connected network for the gateway.
	ErrGatewayUnreachable = errors.New("gateway outside any connected network")
	// ErrKeyTaken: a route not made by Kedge holds the same key; it is left alone.
	ErrKeyTaken = errors.New("key held by a route of another protocol")
	// ErrNotSupported: the kernel lacks a feature (8021q for a KindVLAN interface).
	ErrNotSupported = errors.New("not supported by the kernel")
	// ErrNotOwned: an interface with the wanted name exists and Kedge did not make it.
	ErrNotOwned = errors.New("exists and was not made by Kedge")
	// ErrNoConfig: Sweep was called before any Set, so there is nothing to keep.
	ErrNoConfig = errors.New("no config applied yet")
)

// RouteError is the error for one route; it names the route.
type RouteError struct {
	Route Route
	Err   error
}

func (e *RouteError) Error() string { return "route " + e.Route.String() + ": " + e.Err.Error() }
func (e *RouteError) Unwrap() error { return e.Err }

// RuleError is the error for one rule.
type RuleError struct {
	Rule Rule
	Err  error
}

func (e *RuleError) Error() string { return e.Rule.String() + ": " + e.Err.Error() }
func (e *RuleError) Unwrap() error { return e.Err }

// InterfaceError is the error for one underlay interface.
type InterfaceError struct {
	Name string
	Err  error
}

func (e *InterfaceError) Error() string { return "interface " + e.Name + ": " + e.Err.Error() }
func (e *InterfaceError) Unwrap() error { return e.Err }

// CheckRoutes validates what can be validated without a kernel and returns one
// error per route (nil when it may be sent). Every route of a duplicated key
// fails: picking one would be a guess. The recording fake uses it too, so
// fake and kernel agree on what a bad Config is.
func CheckRoutes(routes []Route) []error {
	errs := make([]error, len(routes))
	NormalizeRoutes(routes, make([]Route, len(routes)), errs, make(map[Key]int, len(routes)))
	return errs
}

// Values of the key index built by NormalizeRoutes besides a route index.
const (
	keyDuplicated = -1 // two or more valid routes have the key
	keyInvalid    = -2 // only routes that failed checks have it
)

// NormalizeRoutes normalizes each route once (a backend's Set handles
// 100,000 of them) into norm, checks it into errs (both len(routes)), and
// indexes the keys the Config holds into the empty keys: key -> index of
// its one valid route, or a negative value for a key no single valid
// route holds (duplicated, or only on routes that failed their checks).
func NormalizeRoutes(routes []Route, norm []Route, errs []error, keys map[Key]int) {
	for i, r := range routes {
		n := r.Normalize()
		norm[i] = n
		err := r.Check()
		if !n.Dst.IsValid() {
			errs[i] = err
			continue
		}
		k := Key{Table: n.Table, Dst: n.Dst, Metric: n.Metric}
		j, seen := keys[k]
		switch {
		case err != nil:
			errs[i] = err
			if !seen {
				keys[k] = keyInvalid
			}
		case !seen || j == keyInvalid:
			keys[k] = i
		case j == keyDuplicated:
			errs[i] = ErrDuplicate
		default:
			errs[i], errs[j] = ErrDuplicate, ErrDuplicate
			keys[k] = keyDuplicated
		}
	}
}

// Check validates what can be validated of one route without a kernel.
func (r Route) Check() error {
	switch {
	case !r.Dst.IsValid():
		return fmt.Errorf("%w: no destination", ErrInvalid)
	case r.Dst.Addr().Zone() != "":
		return fmt.Errorf("%w: zoned destination", ErrInvalid)
	case !r.Gateway.IsValid() && r.Device == "" && len(r.Multipath) == 0:
		return fmt.Errorf("%w: needs a gateway or a device", ErrInvalid)
	case r.Gateway.IsValid() && r.Gateway.Unmap().Is4() != r.Dst.Addr().Is4():
		return fmt.Errorf("%w: gateway family differs from destination", ErrInvalid)
	case r.Src.IsValid() && r.Src.Unmap().Is4() != r.Dst.Addr().Is4():
		return fmt.Errorf("%w: source family differs from destination", ErrInvalid)
	case r.Scope > ScopeHost:
		return fmt.Errorf("%w: scope %d", ErrInvalid, r.Scope)
	case len(r.Multipath) > 0 && (r.Gateway.IsValid() || r.Device != ""):
		return fmt.Errorf("%w: gateway or device beside multipath next hops", ErrInvalid)
	}
	for _, h := range r.Multipath {
		switch {
		case !h.Gateway.IsValid() && h.Device == "":
			return fmt.Errorf("%w: a next hop needs a gateway or a device", ErrInvalid)
		case h.Gateway.IsValid() && h.Gateway.Unmap().Is4() != r.Dst.Addr().Is4():
			return fmt.Errorf("%w: next hop gateway family differs from destination", ErrInvalid)
		case h.Weight > 256:
			return fmt.Errorf("%w: next hop weight %d above 256", ErrInvalid, h.Weight)
		}
	}
	return nil
}

// CheckRules is CheckRoutes for rules.
func CheckRules(rules []Rule) []error {
	errs := make([]error, len(rules))
	count := make(map[Rule]int, len(rules))
	for i, r := range rules {
		n := r.Normalize()
		switch {
		case r.Priority == 0 || r.Priority > 32765:
			errs[i] = fmt.Errorf("%w: priority must be 1..32765", ErrInvalid)
		case r.Table == 0:
			errs[i] = fmt.Errorf("%w: no table", ErrInvalid)
		case r.Src.IsValid() && r.Dst.IsValid() && r.Src.Addr().Is4() != r.Dst.Addr().Is4():
			errs[i] = fmt.Errorf("%w: mixed families", ErrInvalid)
		default:
			count[n]++
		}
	}
	for i, r := range rules {
		if errs[i] == nil && count[r.Normalize()] > 1 {
			errs[i] = ErrDuplicate
		}
	}
	return errs
}
