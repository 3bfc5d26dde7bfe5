package underlay

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// Events on the component's mailbox.
type (
	// evAccord sets the accord (the posture step); reply gets nil once
	// every push it forbids is stopped.
	evAccord struct {
		a     accord.Accord
		reply chan error
	}
	// evCheck is a device manager's look at its device.
	evCheck struct {
		device    string
		gen       uint64
		at        time.Time
		reachable bool
		watch     string
		err       error
		drift     []string
		noDrift   bool // compared and found no drift (drift is nil too when not compared)
	}
	// evPush is a finished push.
	evPush struct {
		device string
		gen    uint64
		job    *pushJob
		res    pushResult
		at     time.Time
	}
	// evSync asks for done to be closed once the loop is caught up.
	evSync struct{ done chan struct{} }
	// evRetryRepair: a failed repair's backoff is over.
	evRetryRepair struct{ device string }
)

// Mutation statuses (typedef mutation-status), as the durable records
// keep them.
const (
	stProposed  = string(kedgepath.MutationStatusProposed)
	stApproved  = string(kedgepath.MutationStatusApproved)
	stExecuting = string(kedgepath.MutationStatusExecuting)
	stExecuted  = string(kedgepath.MutationStatusExecuted)
	stFailed    = string(kedgepath.MutationStatusFailed)
	stDenied    = string(kedgepath.MutationStatusDenied)
)

// loop is the component's state, owned by its run goroutine.
type loop struct {
	c   *Component
	ctx context.Context

	// The accord acted on. stepLevel is what the posture step set (0:
	// not yet); the tree's configured level may only tighten it early.
	acc       accord.Accord
	haveAcc   bool
	stepLevel uint8
	stepAcc   accord.Accord
	early     uint8 // a configured level stricter than the step's, applied ahead of it

	intent    mu.Intent
	intentSeq uint64
	recs      map[string]*record
	devs      map[string]*devState
	nextSeq   uint64
	gen       uint64
	repairs   uint64
	waiters   []*waiter
	unnotary  []string // executed mutations the notary does not have yet
	// unrepaired are drift repairs the notary does not have yet.
	unrepaired []pendingRepair
	appeared   []string // proposal ids in the order their commits made them

	dirtyRoot bool
	dirtyRecs map[string]bool
	dirtyDevs map[string]bool
	lastCheck time.Time
}

// waiter is a SetAccord waiting for the pushes it stopped.
type waiter struct {
	reply chan error
	recs  []string // mutations that were executing and are now forbidden
	devs  []string // devices whose repair was stopped
}

// devState is one device as the component knows it.
type devState struct {
	cfg     mu.Device
	man     *devman
	stop    context.CancelFunc
	done    chan struct{}
	exec    mu.Executed // durable
	execVer uint64      // counts changes of exec in this run
	applied uint64      // durable
	target  *oc.Device  // compiled exec (nil when exec is empty)

	busy          string // the mutation pushing to it, or repairBusy
	repairCancel  context.CancelCauseFunc
	repairBackoff time.Duration // after failed repairs
	repairAfter   time.Time     // no repair before
	reachable     bool
	contacted     bool
	watch         string
	lastErr       string
	lastPush      time.Time
	lastSync      time.Time
	failed        bool
	drift         []string
	driftSince    time.Time
}

const repairBusy = "\x00repair"

func newLoop(c *Component) (*loop, error) {
	return &loop{c: c, recs: map[string]*record{}, devs: map[string]*devState{},
		dirtyRecs: map[string]bool{}, dirtyDevs: map[string]bool{}, dirtyRoot: true}, nil
}

// configPrefixes are the config subtrees whose changes matter here;
// statePrefix is the state the accord follows in FollowTree mode.
var (
	configPrefixes = []string{kedgepath.Root().Kedge().Underlay().SchemaPath(), kedgepath.Root().Kedge().Accords().SchemaPath(),
		kedgepath.Root().Kedge().Posture().Config().SchemaPath()}
	statePrefix    = kedgepath.Root().Kedge().Posture().State().EffectiveLevel().SchemaPath()
	proposalIDPath = kedgepath.Root().Kedge().Underlay().Mutations().MutationAny().Config().Id().SchemaPath()
)

func (l *loop) run(ctx context.Context) {
	l.ctx = ctx
	defer l.stopDevices()
	if err := l.loadIndex(); err != nil {
		l.c.log.Error("underlay records unreadable; starting without them", "err", err)
	}
	var w *store.Watcher
	var err error
	if w, err = l.readTree(); err != nil {
		l.c.log.Error("underlay stopped: read tree", "err", err)
		return
	}
	for {
		l.flush()
		select {
		case <-ctx.Done():
			return
		case <-w.Ready():
			if w, err = l.drain(w); err != nil {
				if ctx.Err() == nil {
					l.c.log.Error("underlay stopped: read change feed", "err", err)
				}
				return
			}
		case <-l.c.in.Ready():
			for _, ev := range l.c.in.Take() {
				switch ev := ev.(type) {
				case evAccord:
					l.onAccord(ev)
				case evCheck:
					l.onCheck(ev)
				case evPush:
					l.onPush(ev)
				case evRetryRepair:
					l.maybeRepair(ev.device)
				case evSync:
					if w, err = l.drain(w); err != nil {
						return
					}
					l.flush()
					close(ev.done)
				}
			}
		}
	}
}

// drain reads every ready commit and re-reads the tree once if one
// mattered.
func (l *loop) drain(w *store.Watcher) (*store.Watcher, error) {
	relevant := false
	for {
		c, ok, err := w.TryNext()
		if errors.Is(err, store.ErrResync) {
			return l.readTree()
		}
		if err != nil {
			return w, err
		}
		if !ok {
			break
		}
		relevant = relevant || l.relevant(c)
		l.noteProposals(c)
	}
	if !relevant {
		return w, nil
	}
	return l.readTree()
}

// noteProposals remembers the order in which proposals appear, so
// several read in one batch still queue in the order they were made.
func (l *loop) noteProposals(c *store.Commit) {
	if c.State || !hasProposalID(c) {
		return
	}
	for _, ch := range c.Changes {
		if ch.Node.Path != proposalIDPath || ch.In.IsZero() || ch.In.Parent().IsZero() {
			continue
		}
		if k := ch.In.Parent().Keys(); len(k) == 1 {
			l.appeared = append(l.appeared, k[0].Str())
		}
	}
}

// hasProposalID reports whether c writes a proposal's id, from its
// distinct schema nodes: a commit of 100,000 routes is not gone through
// change by change to find none.
func hasProposalID(c *store.Commit) bool {
	for _, n := range c.Nodes() {
		if n.Path == proposalIDPath {
			return true
		}
	}
	return false
}

func (l *loop) relevant(c *store.Commit) bool {
	prefixes := configPrefixes
	if c.State {
		if !l.c.opt.FollowTree {
			return false
		}
		prefixes = []string{statePrefix}
	}
	return c.Touches(prefixes)
}

// readTree reads the intent, the proposals and the accord, and returns a
// watcher positioned right after what it read.
func (l *loop) readTree() (*store.Watcher, error) {
	var in mu.Intent
	var props []mu.Proposal
	var cur accord.Accord
	var cfgLevel uint8
	var overrides accord.Overrides
	w, err := l.c.st.ReadWatch(func(t *tree.Tree, seq uint64) error {
		in, props = mu.FromTree(t)
		l.intentSeq = seq
		cur = accord.Current(t)
		cfgLevel = configLevel(t)
		overrides = accord.OverridesFromTree(t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.intent = in
	l.syncDevices()
	l.syncRecords(props)
	switch {
	case l.c.opt.FollowTree:
		l.applyAccord(cur)
	case l.stepLevel != 0:
		// Between steps only a stricter configured level counts: tighten
		// now, loosen only when the plan's step says so.
		if l.early == 0 || cfgLevel < l.early {
			if cfgLevel < l.stepLevel {
				l.early = cfgLevel
			}
		}
		if l.early != 0 {
			a, _ := accord.Effective(l.early, overrides) // a valid level
			l.applyAccord(a)
		} else {
			l.applyAccord(l.stepAcc)
		}
	}
	l.evaluate()
	return w, nil
}

func configLevel(t *tree.Tree) uint8 {
	if lv, ok := kedgetree.Of(t).Kedge().Posture().Config().Level(); ok && accord.Valid(lv) {
		return lv
	}
	return accord.MaxLevel
}

func (l *loop) onAccord(ev evAccord) {
	l.stepLevel, l.stepAcc, l.early = ev.a.Level, ev.a, 0
	l.applyAccord(ev.a)
	l.evaluate()
	w := &waiter{reply: ev.reply}
	for id, r := range l.recs {
		if r.executing && r.aborting {
			w.recs = append(w.recs, id)
		}
	}
	for name, d := range l.devs {
		if d.busy == repairBusy && d.repairCancel == nil {
			w.devs = append(w.devs, name)
		}
	}
	l.waiters = append(l.waiters, w)
}

// applyAccord switches to a and stops what a forbids: pushes of mutations
// it does not let execute, and drift repairs below level 4.
func (l *loop) applyAccord(a accord.Accord) {
	if l.haveAcc && l.acc.Equal(a) {
		return
	}
	first := !l.haveAcc
	l.acc, l.haveAcc = a, true
	l.dirtyRoot = true
	if !first {
		l.c.log.Info("underlay posture", "level", a.Level, "frozen", mu.Frozen(a), "compiler_frozen", a.CompilerFrozen,
			"tiers", a.UnderlayMutationTiers, "repairs", mu.Repairs(a))
	}
	for _, d := range l.devs {
		d.man.in.Put(setInterval(l.interval()))
		if d.busy == repairBusy && d.repairCancel != nil && !mu.Repairs(a) {
			d.repairCancel(errors.New("posture level " + strconv.Itoa(int(a.Level)) + ": drift is reported, not repaired"))
			d.repairCancel = nil
		}
	}
	for _, r := range l.recs {
		if !r.executing || r.aborting {
			continue
		}
		if g := mu.Gate(a, r.cfg, true); !g.Execute {
			r.aborting = true
			r.abortWhy = g.Reason
			r.cancel(errors.New(g.Reason))
		}
	}
	// A level that repairs again repairs what drifted meanwhile.
	if mu.Repairs(a) {
		for name := range l.devs {
			l.maybeRepair(name)
		}
	}
}

// interval is the polling interval of the accord.
func (l *loop) interval() time.Duration {
	if !l.haveAcc || l.acc.UnderlayDriftMillis == 0 {
		return 30 * time.Second
	}
	return time.Duration(l.acc.UnderlayDriftMillis) * time.Millisecond
}

func setInterval(d time.Duration) func(*devman) { return func(m *devman) { m.interval = d } }

// syncDevices starts, restarts (changed config) and stops device managers
// to match the intent.
func (l *loop) syncDevices() {
	want := map[string]mu.Device{}
	for _, d := range l.intent.Devices {
		want[d.Name] = d
	}
	for name, d := range l.devs {
		if _, ok := want[name]; !ok {
			l.stopDevice(d)
			delete(l.devs, name)
			l.dropDevice(name)
			l.dirtyRoot = true
		}
	}
	for name, cfg := range want {
		d := l.devs[name]
		if d != nil && d.cfg == cfg {
			continue
		}
		if d == nil {
			d = &devState{}
			l.loadDevice(name, d)
			l.devs[name] = d
		} else {
			l.stopDevice(d)
		}
		d.cfg = cfg
		d.contacted, d.reachable, d.lastErr = false, false, ""
		l.startDevice(d)
		l.dirtyDevs[name] = true
	}
}

func (l *loop) startDevice(d *devState) {
	l.gen++
	ctx, cancel := context.WithCancel(l.ctx)
	m := newDevman(l.c, d.cfg, l.gen, d.target, l.interval())
	m.ctx = ctx
	d.man, d.stop, d.done = m, cancel, make(chan struct{})
	done := d.done
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	// A push in flight to an old manager ends with it; its result comes
	// from a stale generation and counts as unreachable (onPush).
}

func (l *loop) stopDevice(d *devState) {
	if d.stop != nil {
		d.stop()
		<-d.done
		d.stop = nil
	}
}

func (l *loop) stopDevices() {
	for _, d := range l.devs {
		l.stopDevice(d)
	}
	for _, w := range l.waiters {
		w.reply <- errors.New("underlay stopped")
	}
	l.waiters = nil
}

func (l *loop) onCheck(ev evCheck) {
	d := l.devs[ev.device]
	if d == nil || d.man == nil || d.man.gen != ev.gen {
		return
	}
	l.dirtyDevs[ev.device] = true
	l.dirtyRoot = true
	d.contacted = true
	d.watch = ev.watch
	if ev.err != nil {
		d.reachable = false
		d.lastErr = ev.err.Error()
		return
	}
	d.reachable = true
	d.lastSync = ev.at
	l.lastCheck = ev.at
	if !ev.noDrift && ev.drift == nil {
		return // reached, not compared
	}
	if d.busy != "" && d.busy != repairBusy {
		return // a push is changing it: not drift
	}
	if len(ev.drift) == 0 {
		if len(d.drift) > 0 {
			l.c.log.Info("device back in sync", "device", ev.device)
		}
		d.drift, d.driftSince = nil, time.Time{}
		if !d.failed {
			d.lastErr = ""
		}
		return
	}
	if len(d.drift) == 0 {
		d.driftSince = ev.at
		l.c.log.Warn("device drifted", "device", ev.device, "paths", ev.drift, "level", l.acc.Level, "repair", mu.Repairs(l.acc))
	}
	d.drift = slices.Clone(ev.drift)
	l.maybeRepair(ev.device)
}
