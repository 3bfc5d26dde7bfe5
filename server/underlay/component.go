// Package underlay is the daemon's underlay component: it follows the
// underlay intent and mutation proposals in the tree, gates them with the
// posture accord (models/underlay), pushes what may execute to the
// network devices over gNMI (one client per device, TLS or mTLS,
// credentials from files), watches every device for drift (Subscribe
// ON_CHANGE, else Get at the accord's interval), repairs drift at levels
// 5 and 4 and only reports it below, and writes all of it to
// /kedge/underlay state. It is the posture plan's "underlay" step in the
// routes stage: a transition returns once every push the new level
// forbids has been stopped and undone.
//
// It never touches the kernel: this node's own VLAN interfaces are the
// route backend's (models/intent).
//
// Durable records (the store's meta, so a restart neither re-executes nor
// forgets): each mutation's status, captured change and results, and each
// device's executed intent and applied sequence.
package underlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	mu "github.com/guildhouse-co/kedge/models/underlay"
	"github.com/guildhouse-co/kedge/server/posture"
)

// Store is what the component needs of the tree store (*store.Store).
type Store interface {
	Read(fn func(t *tree.Tree) error) error
	ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error)
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
	CommitOperational(ctx context.Context, ops []store.Op) (*store.Commit, error)
	PutMeta(key string, val []byte) error
	GetMeta(key string) ([]byte, error)
}

// Options configure a Component.
type Options struct {
	Logger *slog.Logger
	// CredentialsDir holds the files devices' *-file leaves name.
	CredentialsDir string
	// RPCTimeout bounds each gNMI call (default 10 s).
	RPCTimeout time.Duration
	// RetryMin and RetryMax bound the reconnect backoff (200 ms, 10 s).
	RetryMin, RetryMax time.Duration
	// Rollback overrides the tree's commit-confirm-seconds (tests).
	Rollback time.Duration
	// FollowTree takes the posture accord from the tree (the effective
	// level) instead of from the posture step: for a daemon without a
	// posture engine, and tests.
	FollowTree bool
	// Compiler replaces the compiler, mu.Build (tests of a compile result
	// the schema refuses); what it returns is validated all the same.
	Compiler mu.Compiler
	// Notary receives every executed mutation and drift repair (nil:
	// nothing is recorded, and nothing kept for a notary).
	Notary Notary
	// Now is the clock.
	Now func() time.Time
}

// Component is the running underlay. Create it with New, then Start.
type Component struct {
	st  Store
	opt Options
	log *slog.Logger
	in  *mailbox[any]

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a component over st; it does nothing until Start.
func New(st Store, o Options) (*Component, error) {
	if st == nil {
		return nil, errors.New("create underlay: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RPCTimeout <= 0 {
		o.RPCTimeout = 10 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(10*time.Second, o.RetryMin)
	}
	if o.Compiler == nil {
		o.Compiler = mu.Build
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Component{st: st, opt: o, log: o.Logger, in: newMailbox[any]()}
	return c, nil
}

// Start loads the durable records and starts following the tree and the
// devices; it returns once the first state is written.
func (c *Component) Start(ctx context.Context) error {
	l, err := newLoop(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		l.run(ctx)
	}()
	return nil
}

// Close stops the component and its device managers. Pushes in flight
// are abandoned where they stand: a commit-confirmed commit rolls back on
// the device by itself.
func (c *Component) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	return nil
}

// SetAccord makes the component act on a: it re-evaluates every proposal
// and returns once every push a no longer allows has been stopped and
// undone (or ctx ends).
func (c *Component) SetAccord(ctx context.Context, a accord.Accord) error {
	reply := make(chan error, 1)
	c.in.Put(evAccord{a: a, reply: reply})
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("apply underlay posture: %w", context.Cause(ctx))
	}
}

// Step is the component as the posture plan's "underlay" step, in the
// routes stage (with the node's underlay routes and VLAN interfaces).
func (c *Component) Step() posture.Step { return step{c} }

type step struct{ c *Component }

func (step) Name() string         { return "underlay" }
func (step) Stage() posture.Stage { return posture.StageRoutes }
func (s step) Apply(ctx context.Context, t posture.Transition) error {
	return s.c.SetAccord(ctx, t.Accord)
}

// Sync waits until the component has read every tree commit made before
// the call and written the state that follows from it (tests).
func (c *Component) Sync(ctx context.Context) error {
	done := make(chan struct{})
	c.in.Put(evSync{done: done})
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
