package route

import "time"

// DefaultProtocol is Kedge's rtnetlink route protocol number, 107 (0x6b,
// ASCII 'k'). It is unassigned in the kernel's list (rtnetlink.h: 0-4, 8-18,
// 42, 99, 186-192), in iproute2's rt_protos, and outside the range FRR uses
// (186-198) and Calico's 80. To show it by name: echo "107 kedge" >
// /etc/iproute2/rt_protos.d/kedge.conf.
const DefaultProtocol uint8 = 107

// InterfaceAlias marks the underlay interfaces Kedge made (IFLA_IFALIAS);
// interfaces without it are never changed or deleted.
const InterfaceAlias = "kedge:underlay"

// State is the outcome for one item of the last Set.
type State uint8

// Item states.
const (
	StateInstalled State = iota + 1
	StateFailed
)

func (s State) String() string {
	switch s {
	case StateInstalled:
		return "installed"
	case StateFailed:
		return "failed"
	}
	return "unknown"
}

// RouteStatus is the outcome of one route of the last Config: Routes[i] of
// Status is about cfg.Routes[i]. It does not repeat the route, to keep a
// 100,000-route Status small; a failure's *RouteError names it.
type RouteStatus struct {
	State State
	Err   error // non-nil when State is StateFailed; a *RouteError
}

// RuleStatus is the outcome of one rule of the last Config.
type RuleStatus struct {
	Rule  Rule
	State State
	Err   error
}

// InterfaceStatus is the outcome of one interface of the last Config.
type InterfaceStatus struct {
	Name  string
	Kind  Kind // the kind actually made (never KindAuto once installed)
	State State
	Err   error
}

// Status is the result of the last Set, in Config order, for the reconciler
// to write into /state.
type Status struct {
	Routes     []RouteStatus
	Rules      []RuleStatus
	Interfaces []InterfaceStatus
	Adopted    int  // Kedge routes found in the kernel by New
	Added      int  // routes created or replaced by the last Set
	Removed    int  // stale routes deleted by the last Set
	Messages   int  // route and rule requests the last Set sent
	Sends      int  // netlink sendmsg calls they took (batching)
	ReadKernel bool // the Set read Kedge's routes from the kernel, not its cache
	// Incremental: the Set planned its routes from the previous Set's
	// (Config in key order, kernel untouched by others), not from scratch.
	Incremental bool
	// Patched: the outcome is a Patch's; Routes are about its Put.
	Patched bool
	Applied time.Time
}
