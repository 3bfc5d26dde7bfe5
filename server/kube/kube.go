package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	v1 "github.com/guildhouse-co/kedge/server/kube/api/v1alpha1"
)

// Store is what the component needs of the node's tree store
// (*store.Store).
type Store interface {
	Read(fn func(t *tree.Tree) error) error
	Watch() *store.Watcher
	Commit(ctx context.Context, ops []store.Op) (*store.Commit, error)
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// DefaultPostureObject is the name of the KedgeClusterPosture a daemon
// follows unless told otherwise.
const DefaultPostureObject = "cluster"

// Options configure a Component.
type Options struct {
	// Config reaches the API server (rest.InClusterConfig, or a
	// kubeconfig's).
	Config *rest.Config
	// NodeName is this node's name: its KedgeNode's and its Node's.
	NodeName string
	// PostureObject names the KedgeClusterPosture to follow
	// (default DefaultPostureObject).
	PostureObject string
	// Endpoint, if set, is the address peers reach this node at (host or
	// host:port), over the Node's annotation and addresses.
	Endpoint string
	// Resync is how often the informers replay their caches and the
	// component re-checks everything (default 30 s).
	Resync time.Duration
	// RetryMin and RetryMax bound the backoff after a failed round
	// (defaults 200 ms and 10 s).
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
	// Now is the clock of the timestamps the component writes (tests).
	Now func() time.Time
}

// Component is the cluster engine of one node. Create it with New, call
// Start once and Close when done.
type Component struct {
	st  Store
	o   Options
	log *slog.Logger
	api *clients

	nodes, postures, pods, node, namespaces cache.SharedIndexInformer

	kick      chan struct{} // the mirror loop's
	pubKick   chan struct{} // the publisher loop's
	connected atomic.Bool
	heard     atomic.Int64  // unix ns the API last answered
	rounds    atomic.Uint64 // completed mirror rounds (tests)

	// Owned by the mirror loop.
	lastState  stateRecord
	wroteState bool
	lastHeard  int64 // the last-sync written
	// Owned by the publisher loop.
	lastNode *v1.KedgeNodeStatus // last status applied

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type stateRecord struct {
	endpoint  string
	level     uint8
	object    string
	connected bool
}

// New checks the options and builds the API clients; it contacts nothing.
func New(st Store, o Options) (*Component, error) {
	if st == nil {
		return nil, errors.New("create kube component: no store")
	}
	if o.Config == nil {
		return nil, errors.New("create kube component: no API configuration")
	}
	if o.NodeName == "" {
		return nil, errors.New("create kube component: no node name")
	}
	if o.PostureObject == "" {
		o.PostureObject = DefaultPostureObject
	}
	if o.Resync <= 0 {
		o.Resync = 30 * time.Second
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 200 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(10*time.Second, o.RetryMin)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	api, err := newClients(o.Config)
	if err != nil {
		return nil, err
	}
	c := &Component{st: st, o: o, log: o.Logger, api: api, kick: make(chan struct{}, 1), pubKick: make(chan struct{}, 1)}
	inf := func(lw cache.ListerWatcher, obj runtime.Object) cache.SharedIndexInformer {
		return cache.NewSharedIndexInformer(gated(lw, api.core), obj, o.Resync, cache.Indexers{})
	}
	c.nodes = inf(api.kedgeNodesLW(), &v1.KedgeNode{})
	c.postures = inf(api.posturesLW(o.PostureObject), &v1.KedgeClusterPosture{})
	c.pods = inf(api.podsLW(o.NodeName), &corev1.Pod{})
	c.node = inf(api.nodeLW(o.NodeName), &corev1.Node{})
	c.namespaces = inf(api.namespacesLW(), &corev1.Namespace{})
	return c, nil
}

func (c *Component) informers() []cache.SharedIndexInformer {
	return []cache.SharedIndexInformer{c.nodes, c.postures, c.pods, c.node, c.namespaces}
}

// Start runs the informers and the sync loop until Close. It returns at
// once: an unreachable API is retried in the background, never an error
// (the node runs on what its tree holds).
func (c *Component) Start(ctx context.Context) error {
	if c.cancel != nil {
		return errors.New("start kube component: already started")
	}
	// client-go logs through klog; give it the daemon's logger.
	ctx = klog.NewContext(ctx, logr.FromSlogHandler(c.log.With("component", "kube-client").Handler()))
	ctx, c.cancel = context.WithCancel(ctx)
	h := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.seen() },
		UpdateFunc: func(old, cur any) {
			// An informer's periodic resync replays its cache as
			// updates of unchanged objects: no sign the API is there
			// (it did just that with the API down, flipping connected
			// back to true every resync period).
			if sameVersion(old, cur) {
				c.Kick()
				return
			}
			c.seen()
		},
		DeleteFunc: func(any) { c.seen() },
	}
	for _, inf := range c.informers() {
		if _, err := inf.AddEventHandler(h); err != nil {
			return fmt.Errorf("start kube component: %w", err)
		}
		if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			c.setConnected(false)
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}); err != nil {
			return fmt.Errorf("start kube component: %w", err)
		}
		c.wg.Go(func() { inf.RunWithContext(ctx) })
	}
	w := c.st.Watch()
	c.wg.Go(func() { c.followTree(ctx, w) })
	c.wg.Go(func() { c.loop(ctx, "mirror", c.kick, nil, c.mirror, func() { c.rounds.Add(1) }) })
	c.wg.Go(func() { c.loop(ctx, "publish", c.pubKick, c.probe, c.publishRound, nil) })
	return nil
}

// Close stops the informers and the loop and waits for them. The tree
// keeps what the component wrote.
func (c *Component) Close() error {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
	return nil
}

// Synced reports whether every informer has listed at least once.
func (c *Component) Synced() bool {
	for _, inf := range c.informers() {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// Connected reports whether the API answered last time the component
// asked.
func (c *Component) Connected() bool { return c.connected.Load() }

// Rounds is how many mirror rounds have completed (tests).
func (c *Component) Rounds() uint64 { return c.rounds.Load() }

// sameVersion reports whether an update carries the object it replaces,
// unchanged (a resync from the informer's cache).
func sameVersion(old, cur any) bool {
	a, errA := meta.Accessor(old)
	b, errB := meta.Accessor(cur)
	return errA == nil && errB == nil && a.GetResourceVersion() != "" && a.GetResourceVersion() == b.GetResourceVersion()
}

func (c *Component) seen() {
	c.setConnected(true)
	c.Kick()
}

func (c *Component) setConnected(ok bool) {
	if ok {
		c.heard.Store(c.o.Now().UnixNano())
	}
	if c.connected.Swap(ok) != ok {
		c.Kick()
	}
}

// Kick asks both loops for a round soon.
func (c *Component) Kick() {
	for _, k := range []chan struct{}{c.kick, c.pubKick} {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// followTree kicks the loop when a commit changes something the component
// reads from the tree.
func (c *Component) followTree(ctx context.Context, w *store.Watcher) {
	for {
		cm, err := w.Next(ctx)
		if errors.Is(err, store.ErrResync) {
			w = c.st.Watch()
			c.Kick()
			continue
		}
		if err != nil {
			return // ctx done or store closed
		}
		for _, ch := range cm.Changes {
			if watched(ch.Node.Path) {
				c.Kick()
				break
			}
		}
	}
}

func watched(path string) bool {
	for _, p := range watchedPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// loop runs round on every kick and every resync period, and retries a
// failed round with capped exponential backoff. Two loops run: the mirror
// (cluster → tree: local commits only, the latency path of a posture
// change) and the publisher (tree → API: network writes, which may be
// slow or failing without holding up the mirror).
func (c *Component) loop(ctx context.Context, name string, kick <-chan struct{}, onTick func(context.Context),
	round func(context.Context) error, done func()) {
	tick := time.NewTicker(c.o.Resync)
	defer tick.Stop()
	backoff := time.Duration(0)
	var retry <-chan time.Time
	var retryTimer *time.Timer
	for {
		select {
		case <-ctx.Done():
			if retryTimer != nil {
				retryTimer.Stop()
			}
			return
		case <-kick:
		case <-tick.C:
			if onTick != nil {
				onTick(ctx)
			}
		case <-retry:
			retry, retryTimer = nil, nil
		}
		err := round(ctx)
		if done != nil {
			done()
		}
		if err == nil {
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		backoff = min(max(2*backoff, c.o.RetryMin), c.o.RetryMax)
		c.log.Warn("kube "+name+" failed; retrying", "err", err, "in", backoff)
		if retryTimer == nil {
			retryTimer = time.NewTimer(backoff)
			retry = retryTimer.C
		}
	}
}

// probe asks the API server whether it is there (readyz is open to every
// client): informers only notice an outage when a watch breaks.
func (c *Component) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := c.api.core.Get().AbsPath("/readyz").Do(ctx).Error()
	c.setConnected(err == nil)
}
