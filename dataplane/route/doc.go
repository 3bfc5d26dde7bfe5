// Package route is the route backend's contract: the plain Config (routes,
// policy rules, underlay interfaces of one network namespace), the Status
// of the last Set, the errors items fail with, and the Backend interface.
// It imports no kernel library, so the intent code that builds Configs
// (models/intent) and the daemon's routes component link none: the
// implementation over rtnetlink is package route/kernel, a recording fake
// is route/routetest (the model is Tailscale's wgengine/router and its
// osrouter).
//
// Ownership: Kedge's routes and rules carry Kedge's own rtnetlink protocol
// number (DefaultProtocol). Only those are ever replaced or deleted; a
// route of another protocol is never touched, even one with the same
// destination. Underlay interfaces Kedge made carry the alias
// InterfaceAlias.
package route

import "context"

// Backend makes Kedge's routes, policy rules and underlay interfaces in one
// network namespace match a Config. Its methods are safe for concurrent
// use; Set calls are serialised.
type Backend interface {
	// Set makes the namespace match cfg: interfaces first, then rules and
	// routes added or replaced, and only then is what cfg lacks deleted.
	// Items already as cfg wants them cause no change, so Set twice is a
	// no-op. It returns the items' errors joined (each a *RouteError,
	// *RuleError or *InterfaceError); one bad item never stops the others.
	// The caller may reuse cfg's slices once Set returns.
	Set(ctx context.Context, cfg Config) error
	// Patch applies a change to the routes of the desired state the
	// backend holds: Put routes are added or replaced first, then Del
	// routes removed. It fails with ErrNoBase, changing nothing, when it
	// cannot (then Set the whole Config); otherwise like Set it returns
	// the items' errors joined, and the outcome is in the Status
	// (Routes[i] about p.Put[i], Patched set).
	Patch(ctx context.Context, p Patch) error
	// CopyStatus copies the outcome of the last Set or Patch into dst,
	// reusing dst's slices (Routes[i] is about the last Config's
	// Routes[i], or the last Patch's Put[i]).
	CopyStatus(dst *Status)
	// Watch calls drift whenever something other than Set changes what
	// the last Set made, or makes a failed item possible, until ctx is
	// done (then it returns nil) or watching fails.
	Watch(ctx context.Context, drift func()) error
	// Close releases the backend; what it programmed stays.
	Close() error
}
