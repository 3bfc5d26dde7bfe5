// Package routetest provides a recording fake of the route backend for
// tests of its consumers (the posture engine, the routes reconciler). It
// keeps the kernel state a real Backend would leave, using the same
// validation (route.CheckRoutes, route.CheckRules), and can inject failures.
package routetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// Fake records Set calls and computes what the kernel would hold. It is
// safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	devices map[string]bool // nil: every device exists
	calls   []route.Config
	routes  map[route.Key]route.Route
	rules   map[route.Rule]bool
	ifaces  map[string]route.Interface
	failDst map[netip.Prefix]error
	failSet error
	drift   chan struct{} // Watch's wake-ups (Drift)
	status  route.Status
	patches []route.Patch
	// base: the last Set or Patch left every item as desired, so a Patch
	// may apply (as in the kernel backend).
	base bool
}

// New returns an empty fake. With devices given, routes naming any other
// device (and not an interface of the same Config) fail with
// route.ErrUnknownDevice, as on a kernel without that link.
func New(devices ...string) *Fake {
	f := &Fake{routes: map[route.Key]route.Route{}, rules: map[route.Rule]bool{},
		ifaces: map[string]route.Interface{}, failDst: map[netip.Prefix]error{}}
	if len(devices) > 0 {
		f.devices = map[string]bool{}
		for _, d := range devices {
			f.devices[d] = true
		}
	}
	return f
}

// FailRoute makes every route to dst fail with err (wrapped in a
// *route.RouteError) until FailRoute(dst, nil) clears it. Like a kernel
// refusal, the previous route for that key is kept.
func (f *Fake) FailRoute(dst netip.Prefix, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.failDst, dst)
		return
	}
	f.failDst[dst] = err
}

// FailNextSet makes the next Set fail as a whole with err, changing nothing
// (as when the netlink socket fails). The call is still recorded.
func (f *Fake) FailNextSet(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failSet = err
}

// Set records cfg and applies it with the real backend's semantics.
func (f *Fake) Set(ctx context.Context, cfg route.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, clone(cfg))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set routes: %w", err)
	}
	if err := f.failSet; err != nil {
		f.failSet = nil
		return fmt.Errorf("set routes: %w", err)
	}
	st := route.Status{Applied: time.Now()}
	var errs []error

	names := map[string]int{}
	for _, i := range cfg.Interfaces {
		names[i.Name]++
	}
	ifaces := map[string]route.Interface{}
	for _, i := range cfg.Interfaces {
		s := route.InterfaceStatus{Name: i.Name, Kind: i.Kind, State: route.StateInstalled}
		if s.Kind == route.KindAuto {
			s.Kind = route.KindMacvlan // the fake's kernel has no 8021q, like ours
		}
		var err error
		switch {
		case names[i.Name] > 1:
			err = route.ErrDuplicate
		case i.Kind == route.KindVLAN:
			err = route.ErrNotSupported
		case f.devices != nil && !f.devices[i.Parent]:
			err = fmt.Errorf("%w %q (parent)", route.ErrUnknownDevice, i.Parent)
		}
		if err != nil {
			s.State, s.Err = route.StateFailed, &route.InterfaceError{Name: i.Name, Err: err}
			errs = append(errs, s.Err)
			if old, ok := f.ifaces[i.Name]; ok {
				ifaces[i.Name] = old
			}
		} else {
			ifaces[i.Name] = i
		}
		st.Interfaces = append(st.Interfaces, s)
	}
	f.ifaces = ifaces

	ruleErrs := route.CheckRules(cfg.Rules)
	rules := map[route.Rule]bool{}
	for i, r := range cfg.Rules {
		s := route.RuleStatus{Rule: r, State: route.StateInstalled}
		n := r.Normalize()
		if ruleErrs[i] != nil {
			s.State, s.Err = route.StateFailed, &route.RuleError{Rule: r, Err: ruleErrs[i]}
			errs = append(errs, s.Err)
			if f.rules[n] {
				rules[n] = true
			}
		} else {
			rules[n] = true
		}
		st.Rules = append(st.Rules, s)
	}
	f.rules = rules

	check := route.CheckRoutes(cfg.Routes)
	keep := map[route.Key]bool{}
	next := map[route.Key]route.Route{}
	for i, r := range cfg.Routes {
		s := route.RouteStatus{State: route.StateInstalled}
		err := check[i]
		if r.Dst.IsValid() {
			keep[r.Key()] = true
		}
		if err == nil && r.Device != "" && f.devices != nil && !f.devices[r.Device] && ifaces[r.Device].Name == "" {
			err = fmt.Errorf("%w %q", route.ErrUnknownDevice, r.Device)
		}
		for _, h := range r.Multipath {
			if err == nil && h.Device != "" && f.devices != nil && !f.devices[h.Device] && ifaces[h.Device].Name == "" {
				err = fmt.Errorf("%w %q", route.ErrUnknownDevice, h.Device)
			}
		}
		if err == nil {
			err = f.failDst[r.Dst]
		}
		if err != nil {
			s.State, s.Err = route.StateFailed, &route.RouteError{Route: r, Err: err}
			errs = append(errs, s.Err)
		} else {
			n := r.Normalize()
			if old, ok := f.routes[n.Key()]; !ok || !old.Equal(n) {
				st.Added++
			}
			next[n.Key()] = n
		}
		st.Routes = append(st.Routes, s)
	}
	for k, r := range f.routes {
		if _, ok := next[k]; ok {
			continue
		}
		if keep[k] {
			next[k] = r // the item failed: the kernel keeps what it had
			continue
		}
		st.Removed++
	}
	f.routes = next
	f.status = st
	f.base = len(errs) == 0
	return errors.Join(errs...)
}

// Patch records p and applies it with the real backend's semantics: it is
// refused with route.ErrNoBase unless the last Set or Patch left every
// item as desired.
func (f *Fake) Patch(ctx context.Context, p route.Patch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.patches = append(f.patches, route.Patch{Put: slices.Clone(p.Put), Del: slices.Clone(p.Del)})
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("patch routes: %w", err)
	}
	if !f.base {
		return fmt.Errorf("patch routes: %w", route.ErrNoBase)
	}
	puts := map[route.Key]bool{}
	for i, r := range p.Put {
		if r.Check() != nil || puts[r.Key()] {
			return fmt.Errorf("patch routes: route %d: %w", i, route.ErrNoBase)
		}
		puts[r.Key()] = true
	}
	if err := f.failSet; err != nil {
		f.failSet = nil
		f.base = false
		return fmt.Errorf("patch routes: %w", err)
	}
	st := route.Status{Applied: time.Now(), Patched: true, Incremental: true}
	var errs []error
	for _, r := range p.Put {
		s := route.RouteStatus{State: route.StateInstalled}
		var err error
		if r.Device != "" && f.devices != nil && !f.devices[r.Device] && f.ifaces[r.Device].Name == "" {
			err = fmt.Errorf("%w %q", route.ErrUnknownDevice, r.Device)
		}
		if err == nil {
			err = f.failDst[r.Dst]
		}
		if err != nil {
			s.State, s.Err = route.StateFailed, &route.RouteError{Route: r, Err: err}
			errs = append(errs, s.Err)
		} else {
			n := r.Normalize()
			if old, ok := f.routes[n.Key()]; !ok || !sameRoute(old, n) {
				st.Added++
			}
			f.routes[n.Key()] = n
		}
		st.Routes = append(st.Routes, s)
	}
	for _, r := range p.Del {
		if k := r.Key(); !puts[k] {
			if _, ok := f.routes[k]; ok {
				delete(f.routes, k)
				st.Removed++
			}
		}
	}
	f.status = st
	f.base = len(errs) == 0
	return errors.Join(errs...)
}

// Patches returns copies of every Patch passed, in order.
func (f *Fake) Patches() []route.Patch {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]route.Patch, len(f.patches))
	for i, p := range f.patches {
		out[i] = route.Patch{Put: slices.Clone(p.Put), Del: slices.Clone(p.Del)}
	}
	return out
}

func sameRoute(a, b route.Route) bool { return a.Equal(b) }

// Sweep applies the last Config again (recorded as another call), like
// Backend.Sweep. The fake adopts nothing at start, so nothing is held.
func (f *Fake) Sweep(ctx context.Context) error {
	f.mu.Lock()
	var last route.Config
	if n := len(f.calls); n > 0 {
		last = clone(f.calls[n-1])
	}
	f.mu.Unlock()
	return f.Set(ctx, last)
}

// Status returns the result of the last successful Set.
func (f *Fake) Status() route.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.status
	s.Routes = slices.Clone(s.Routes)
	s.Rules = slices.Clone(s.Rules)
	s.Interfaces = slices.Clone(s.Interfaces)
	return s
}

// CopyStatus is Status into dst (route.Backend's signature).
func (f *Fake) CopyStatus(dst *route.Status) { *dst = f.Status() }

// Watch waits until ctx is done, calling drift for each Drift.
func (f *Fake) Watch(ctx context.Context, drift func()) error {
	ch := f.driftChan()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			drift()
		}
	}
}

// Drift makes Watch report a change made by someone else (at most one
// pending at a time). As in the kernel backend, the next Patch is then
// refused: only a whole Set repairs what someone else changed.
func (f *Fake) Drift() {
	f.mu.Lock()
	f.base = false
	f.mu.Unlock()
	select {
	case f.driftChan() <- struct{}{}:
	default:
	}
}

// Kick wakes Watch as a notification that changed none of the routes
// does (a new pod's veth appearing): the base a Patch needs stays.
func (f *Fake) Kick() {
	select {
	case f.driftChan() <- struct{}{}:
	default:
	}
}

func (f *Fake) driftChan() chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.drift == nil {
		f.drift = make(chan struct{}, 1)
	}
	return f.drift
}

// Close does nothing: what the fake programmed stays, as in the kernel.
func (f *Fake) Close() error { return nil }

// Calls returns copies of every Config passed to Set, in order.
func (f *Fake) Calls() []route.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]route.Config, len(f.calls))
	for i, c := range f.calls {
		out[i] = clone(c)
	}
	return out
}

// Routes returns the routes the kernel would hold, normalized and sorted.
func (f *Fake) Routes() []route.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]route.Route, 0, len(f.routes))
	for _, r := range f.routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b route.Route) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Rules returns the rules the kernel would hold, normalized and sorted.
func (f *Fake) Rules() []route.Rule {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]route.Rule, 0, len(f.rules))
	for r := range f.rules {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b route.Rule) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Interfaces returns the underlay interfaces that would exist, by name.
func (f *Fake) Interfaces() []route.Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]route.Interface, 0, len(f.ifaces))
	for _, i := range f.ifaces {
		out = append(out, i)
	}
	slices.SortFunc(out, func(a, b route.Interface) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func clone(c route.Config) route.Config {
	out := route.Config{Routes: slices.Clone(c.Routes), Rules: slices.Clone(c.Rules),
		Interfaces: slices.Clone(c.Interfaces)}
	for i := range out.Interfaces {
		out.Interfaces[i].Addresses = slices.Clone(out.Interfaces[i].Addresses)
	}
	return out
}
