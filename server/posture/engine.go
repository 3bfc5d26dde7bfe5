package posture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// The config the engine follows: the intended level and the accord
// overrides (a trailing slash: their subtrees, not siblings that share a
// name's start).
var inputPrefixes = []string{
	kedgepath.Root().Kedge().Posture().Config().SchemaPath() + "/",
	kedgepath.Root().Kedge().Posture().Cluster().Config().SchemaPath() + "/",
	kedgepath.Root().Kedge().Accords().SchemaPath() + "/",
}

// LevelSource is another writer of the posture level: the pinned BPF map
// that the shell's eBPF programs and the governance daemon share.
// bpfmap.Backend satisfies it. Level is called from the engine's goroutine
// only; 0 means nothing was written.
type LevelSource interface {
	Level() (uint8, error)
}

// Store is what the engine needs of the tree store (*store.Store).
type Store interface {
	MetaStore
	Read(fn func(t *tree.Tree) error) error
	ReadWatch(fn func(t *tree.Tree, seq uint64) error) (*store.Watcher, error)
	CommitState(ctx context.Context, ops []store.Op) (*store.Commit, error)
	CommitOperational(ctx context.Context, ops []store.Op) (*store.Commit, error)
}

// Options configure an Engine. Only Steps is usually needed.
type Options struct {
	Logger *slog.Logger
	// Steps are the plan's steps in any order; BuildPlan orders them.
	Steps []Step
	// LevelSource, when set, is polled every PollInterval (default 50 ms).
	LevelSource  LevelSource
	PollInterval time.Duration
	// RetryMin and RetryMax bound the backoff between re-runs of a plan
	// with failed steps (defaults 100 ms and 30 s).
	RetryMin, RetryMax time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// OnReport, if set, is called after every transition (tests, metrics).
	OnReport func(Report)
	// OnReady, if set, is called once Run has converged at start and
	// published the effective level: reconcilers that read the level
	// from the tree wait for it.
	OnReady func()
}

// Engine runs posture transitions. Create it with New and call Run once.
type Engine struct {
	st    Store
	log   *slog.Logger
	opt   Options
	steps []Step
	now   func() time.Time

	// Owned by Run's goroutine.
	applied       applied
	hasApply      bool // applied came from meta or a completed plan
	cfgLevel      uint8
	clusterLevel  uint8 // /kedge/posture/cluster/config/level; 0: none
	overrides     accord.Overrides
	accords       []accord.Accord
	appliedAccord accord.Accord // the accord the last plan applied
	lastSteps     int           // step entries in last-transition, to delete extras
	lastSeen      uint8         // the level source's value at the last poll
	source        string        // what decided the level of the last evaluation
	pending       *inflight     // the plan in flight or to retry
	snap          *snapshot     // taken before the first escalation, until restored
	backoff       time.Duration

	processed atomic.Uint64 // read by any goroutine; see Processed
}

// New returns an engine over st. It reads nothing until Run.
func New(st Store, o Options) (*Engine, error) {
	if st == nil {
		return nil, errors.New("create posture engine: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(30*time.Second, o.RetryMin)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	names := map[string]bool{}
	for _, s := range o.Steps {
		if s == nil {
			return nil, errors.New("create posture engine: nil step")
		}
		if names[s.Name()] {
			return nil, fmt.Errorf("create posture engine: duplicate step name %q", s.Name())
		}
		names[s.Name()] = true
	}
	return &Engine{st: st, log: o.Logger, opt: o, steps: o.Steps, now: o.Now, cfgLevel: accord.MaxLevel}, nil
}

// Run restores the engine's records, resumes an interrupted transition,
// converges the steps to the effective level, then follows the tree and
// the level source until ctx is done (it then returns nil). It returns an
// error only when the store fails.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.restore(); err != nil {
		return err
	}
	w, err := e.readTree()
	if err != nil {
		return err
	}
	if err := e.publishAccords(ctx); err != nil {
		return err
	}
	published := e.accords
	external, foreign := e.pollSource()
	eff, _ := e.effective(external)
	var resumedTo uint8
	if p := e.pending; p != nil {
		// A plan aiming for a level no longer in effect (the map now holds
		// a stricter one) is not replayed: its steps would apply the old
		// level for a moment. The plan to the effective level replaces it.
		if p.To == eff {
			e.log.Info("resuming interrupted posture transition", "seq", p.Seq, "from", p.From, "to", p.To)
			e.execute(ctx, p.From, p.To, p.Seq, true)
			resumedTo = p.To
		} else {
			e.log.Info("superseding an interrupted posture transition: its level is no longer in effect",
				"seq", p.Seq, "from", p.From, "to", p.To, "effective", eff)
		}
	}
	// Converge at start even when nothing changed (unless the resumed plan
	// just did): a backend may have lost its state (a fresh shm segment, a
	// new BPF pin) while we were down.
	e.evaluate(ctx, external, resumedTo != eff || (foreign && e.ownsMap()))
	e.processed.Store(w.Pos() - 1)
	if e.opt.OnReady != nil {
		e.opt.OnReady()
	}

	poll := time.NewTicker(e.opt.PollInterval)
	defer poll.Stop()
	var retry <-chan time.Time
	var retryTimer *time.Timer
	for {
		if e.pending != nil && retry == nil {
			retryTimer = time.NewTimer(e.backoff)
			retry = retryTimer.C
		}
		select {
		case <-ctx.Done():
			if retryTimer != nil {
				retryTimer.Stop()
			}
			return nil
		case <-w.Ready():
			changed, nw, err := e.drain(ctx, w)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			w = nw
			if changed {
				if !slices.EqualFunc(published, e.accords, accord.Accord.Equal) {
					if err := e.publishAccords(ctx); err != nil && ctx.Err() == nil {
						e.log.Warn("publish accords", "err", err)
					}
					published = e.accords
				}
				e.evaluate(ctx, external, false)
			}
			e.processed.Store(w.Pos() - 1)
		case <-poll.C:
			if lvl, foreign := e.pollSource(); foreign {
				// Even when the request does not change the effective
				// level, the map must show the effective level again:
				// the shell's programs enforce what it holds.
				external = lvl
				e.evaluate(ctx, external, e.ownsMap())
			}
		case <-retry:
			retry, retryTimer = nil, nil
			if p := e.pending; p != nil {
				e.execute(ctx, p.From, p.To, p.Seq, true)
				e.evaluate(ctx, external, false)
			}
		}
	}
}

// Processed returns the sequence number of the last store commit whose
// effect on the posture the engine has applied: after a config commit with
// sequence n, Processed() >= n means the engine acted on it (readiness
// checks, tests).
func (e *Engine) Processed() uint64 { return e.processed.Load() }

// drain reads every commit that is ready and reports whether one changed
// the intended level or the accord overrides; on ErrResync it re-reads the
// tree and returns a new watcher.
func (e *Engine) drain(ctx context.Context, w *store.Watcher) (bool, *store.Watcher, error) {
	changed := false
	for {
		select {
		case <-w.Ready():
		default:
			if changed {
				// Re-read rather than interpret the changes: the tree is
				// the truth, and one read covers a whole burst.
				err := e.st.Read(func(t *tree.Tree) error { e.load(t); return nil })
				return changed, w, err
			}
			return false, w, nil
		}
		c, err := w.Next(ctx)
		if errors.Is(err, store.ErrResync) {
			e.log.Warn("posture engine fell behind the change feed; re-reading the tree")
			nw, err := e.readTree()
			return true, nw, err
		}
		if err != nil {
			return changed, w, err
		}
		if c.State {
			continue // our own state and other reconcilers': never an input
		}
		if c.Touches(inputPrefixes) {
			changed = true
		}
	}
}
