package notary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
	"github.com/guildhouse-co/kedge/server/notary/upstream"
)

// Store is what the notary needs of the tree store (*store.Store).
type Store interface {
	Read(fn func(t *tree.Tree) error) error
	ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error)
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// Options configure a Notary. Dir, Node and Store are required.
type Options struct {
	// Dir holds the key, the log and the upstream cursor.
	Dir    string
	Node   string
	Store  Store
	Logger *slog.Logger
	// Now is the clock of records and checkpoints; After the batching
	// timer (tests).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// BatchInterval and BatchEntries bound a batch in batched mode
	// (defaults 1 s and 512).
	BatchInterval time.Duration
	BatchEntries  int
	// QueueLen bounds the transits, transitions and snapshots waiting for
	// the writer (default 65536); transits beyond it are dropped.
	QueueLen int
	// CommitLog, when set, is the store's log of config commits (usually
	// Store itself, opened with KeepLog and the Annotator's hook): the
	// notary catches up from it at start and releases what it holds.
	CommitLog CommitLog
	// Annotator, when set, is the store's annotation hook; the posture
	// step keeps its level current.
	Annotator *Annotator
	// Upstream is the connection to Quartermaster (nil: not shipped) and
	// Endpoint its address, for the state.
	Upstream      grpc.ClientConnInterface
	Endpoint      string
	UpstreamClock upstream.Clock
	RetryMin      time.Duration
	RetryMax      time.Duration
	// KernelRoutes, when set, lists the routes the kernel holds, for the
	// forensic snapshot.
	KernelRoutes func(ctx context.Context) ([]string, error)
}

// Notary is the component. Open it, Start it once, Close it.
type Notary struct {
	o    Options
	log  *slog.Logger
	keys Keys
	led  *ledger.Ledger
	up   *upstream.Client

	fid           atomic.Pointer[notarymodel.Fidelity]
	appliedAccord atomic.Pointer[accord.Accord] // set by the posture step
	level         atomic.Uint32                 // the level the posture step applied
	override      atomic.Pointer[uint8]         // sampling-percent-override, nil when unset
	cluster       atomic.Pointer[string]

	// The queue of items for the writer.
	qmu     sync.Mutex
	queue   []item
	wake    chan struct{} // signalled when the queue grows
	dropped atomic.Uint64

	// Sessions being recorded end to end.
	smu     sync.Mutex
	sampled map[string]struct{}

	// Durable entries' metadata for queries, and the last mutation
	// recorded.
	imu      sync.RWMutex
	idx      []meta
	pendMeta []meta // the writer's: entries appended, not yet durable
	lastSeq  atomic.Uint64
	grew     chan struct{} // closed and replaced at every flush

	// pushes holds the key (models/notary.PushKey) of every device push
	// the log holds or the writer appended: the writer's, filled from the
	// log at open.
	pushes map[string]struct{}

	lastFlush atomic.Int64
	warnedAnn atomic.Bool
	// The writer's: catching up (one flush at the end), and the last
	// retention mark given to the store.
	catchingUp bool
	retained   uint64
	dirty      chan struct{} // the state needs publishing
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	closed     atomic.Bool
	started    bool
}

// meta is what a query filters on.
type meta struct {
	typ   uint8 // qmv1.ArtifactType
	level uint8
	when  int64 // event time, ns
}

// Open opens (creating) the notary in o.Dir: the key, the upstream cursor
// and the log, which must extend the cursor (ledger.ErrRolledBack
// otherwise).
func Open(o Options) (*Notary, error) {
	if o.Dir == "" || o.Node == "" || o.Store == nil {
		return nil, errors.New("open notary: dir, node and store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = time.Second
	}
	if o.BatchEntries <= 0 {
		o.BatchEntries = 512
	}
	if o.QueueLen <= 0 {
		o.QueueLen = 65536
	}
	n := &Notary{o: o, log: o.Logger, wake: make(chan struct{}, 1), sampled: map[string]struct{}{},
		grew: make(chan struct{}), dirty: make(chan struct{}, 1), pushes: map[string]struct{}{}}
	var err error
	if n.keys, err = LoadOrCreateKey(o.Dir, Origin(o.Node)); err != nil {
		return nil, err
	}
	logDir := filepath.Join(o.Dir, "log")
	cursorPath := filepath.Join(o.Dir, upstream.CursorFile)
	cursor, _, err := upstream.ReadCursor(cursorPath, n.keys.Verifier)
	if err != nil {
		return nil, err
	}
	minSize := cursor.Size
	if o.CommitLog != nil {
		_, note := o.CommitLog.Retained()
		minSize = max(minSize, markSize(note))
	}
	n.led, err = ledger.Open(logDir, ledger.Options{Verifier: n.keys.Verifier, Signer: n.keys.Signer,
		MinSize: minSize, Logger: o.Logger, Now: o.Now})
	if err != nil {
		return nil, err
	}
	if err := n.loadIndex(); err != nil {
		n.led.Close()
		return nil, err
	}
	// Until the posture step applies the real accord, record as strictly
	// as the strictest level does.
	strict, _ := accord.Default(accord.MinLevel)
	f := notarymodel.FidelityOf(strict, nil)
	n.fid.Store(&f)
	empty := ""
	n.cluster.Store(&empty)
	if o.Upstream != nil {
		n.up, err = upstream.New(upstream.Options{Log: n.led, Conn: o.Upstream,
			Hello:      upstream.Hello{Node: o.Node, VerifierKey: n.keys.VerifierKey},
			CursorPath: cursorPath, Cursor: cursor, Logger: o.Logger.With("component", "notary-upstream"),
			Clock: o.UpstreamClock, RetryMin: o.RetryMin, RetryMax: o.RetryMax,
			OnStatus: func(upstream.Status) { n.markDirty() }})
		if err != nil {
			n.led.Close()
			return nil, err
		}
	}
	o.Logger.Info("notary log", "dir", logDir, "origin", n.led.Origin(), "entries", n.led.Size(),
		"verifier_key", n.keys.VerifierKey, "upstream", o.Endpoint)
	return n, nil
}

// Start catches up with the store's log, then runs the writer, the state
// publisher and the upstream client until Close.
func (n *Notary) Start(ctx context.Context) error {
	if n.started {
		return errors.New("start notary: already started")
	}
	n.started = true
	ctx, n.cancel = context.WithCancel(ctx)
	w, err := n.o.Store.ReadWatch(func(t *tree.Tree, seq uint64) error {
		n.readConfig(t)
		return nil
	})
	if err != nil {
		return fmt.Errorf("start notary: %w", err)
	}
	if err := n.catchUp(w.Pos() - 1); err != nil {
		return fmt.Errorf("start notary: %w", err)
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.run(ctx, w)
	}()
	go func() {
		defer n.wg.Done()
		n.publishLoop(ctx)
	}()
	if n.up != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.up.Run(ctx)
		}()
		n.up.Notify()
	}
	n.markDirty()
	return nil
}

// Close stops the notary: the writer flushes what it holds, then the log
// closes.
func (n *Notary) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return nil
	}
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	return n.led.Close()
}

// Ledger is the log, for the query service and verification.
func (n *Notary) Ledger() *ledger.Ledger { return n.led }

// VerifierKey is the encoded note verifier key of the log's checkpoints.
func (n *Notary) VerifierKey() string { return n.keys.VerifierKey }

// Fidelity returns the fidelity applied now.
func (n *Notary) Fidelity() notarymodel.Fidelity { return *n.fid.Load() }

// UpstreamStatus returns the upstream client's progress (State
// "disabled" without one).
func (n *Notary) UpstreamStatus() upstream.Status {
	if n.up == nil {
		return upstream.Status{State: "disabled"}
	}
	return n.up.Status()
}

// Dropped is how many transits a full queue dropped.
func (n *Notary) Dropped() uint64 { return n.dropped.Load() }

// Grew returns a channel closed at the next flush (tests wait on it).
func (n *Notary) Grew() <-chan struct{} {
	n.imu.RLock()
	defer n.imu.RUnlock()
	return n.grew
}
