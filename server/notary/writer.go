package notary

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
)

// item is one thing for the writer: an entry to append, a barrier, or
// both. done, when set, is answered once the writer has reached the item
// (and, with durable, flushed it).
type item struct {
	entry   *qmv1.LogEntry
	transit bool // a sampled transit: may be dropped when the queue is full
	durable bool
	done    chan error
	// push, when set, is the entry's device push key: an entry whose key
	// the log already holds is not appended again (see RecordDevicePush).
	push string
}

// enqueue hands an item to the writer without blocking. A transit that
// finds the queue full is dropped (false).
func (n *Notary) enqueue(it item) bool {
	n.qmu.Lock()
	if n.closed.Load() {
		n.qmu.Unlock()
		if it.done != nil {
			it.done <- errClosed
		}
		return false
	}
	if it.transit && len(n.queue) >= n.o.QueueLen {
		n.qmu.Unlock()
		if n.dropped.Add(1)%1000 == 1 {
			n.log.Warn("notary queue full: session transit not recorded", "dropped", n.dropped.Load())
		}
		n.markDirty()
		return false
	}
	n.queue = append(n.queue, it)
	n.qmu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return true
}

var errClosed = errors.New("notary closed")

// run is the writer: it follows the store's change feed and the queue,
// appends entries and flushes as the fidelity asks.
func (n *Notary) run(ctx context.Context, w *store.Watcher) {
	var timer <-chan time.Time
	var waiting []item // answered after a flush
	var reached []item // answered once this round's flush policy ran
	for {
		w = n.drainFeed(ctx, w)
		batch := n.takeQueue()
		for _, it := range batch {
			err := n.take(it)
			switch {
			case it.done == nil:
			case err != nil:
				it.done <- err // never appended: no flush makes it durable
			case it.durable:
				waiting = append(waiting, it)
			default:
				reached = append(reached, it)
			}
		}
		f := *n.fid.Load()
		pending := n.led.PendingEntries()
		switch {
		case pending == 0:
			timer = nil
		case f.Flush != accord.FlushBatched || len(waiting) > 0 || pending >= n.o.BatchEntries:
			n.flush()
			timer = nil
		case timer == nil:
			timer = n.o.After(n.o.BatchInterval)
		}
		if len(waiting) > 0 {
			n.flush()
			for _, it := range waiting {
				it.done <- n.flushErr()
			}
			waiting = waiting[:0]
		}
		for _, it := range reached {
			it.done <- nil
		}
		reached = reached[:0]
		select {
		case <-ctx.Done():
			n.drainFeed(context.Background(), w)
			for _, it := range n.takeQueue() {
				err := n.take(it)
				switch {
				case it.done == nil:
				case err != nil:
					it.done <- err
				default:
					waiting = append(waiting, it)
				}
			}
			n.flush()
			for _, it := range waiting {
				it.done <- n.flushErr()
			}
			n.qmu.Lock()
			for _, it := range n.queue { // enqueued after the last take
				if it.done != nil {
					it.done <- errClosed
				}
			}
			n.queue = nil
			n.qmu.Unlock()
			return
		case <-ready(w):
		case <-n.wake:
		case <-timer:
			n.flush()
			timer = nil
		}
	}
}

// take appends an item's entry, unless it is a device push the log
// already holds (appended earlier, durable or about to be).
func (n *Notary) take(it item) error {
	if it.entry == nil {
		return nil
	}
	if it.push != "" {
		if _, dup := n.pushes[it.push]; dup {
			return nil
		}
	}
	if err := n.append(it.entry); err != nil {
		return err
	}
	if it.push != "" {
		n.pushes[it.push] = struct{}{}
	}
	return nil
}

func (n *Notary) takeQueue() []item {
	n.qmu.Lock()
	defer n.qmu.Unlock()
	q := n.queue
	n.queue = nil
	return q
}

// drainFeed records every config commit that is ready. A watcher that
// fell behind is replaced: the commits it lost are caught up from the
// store's log.
func (n *Notary) drainFeed(ctx context.Context, w *store.Watcher) *store.Watcher {
	for w != nil {
		c, ok, err := w.TryNext()
		if errors.Is(err, store.ErrResync) {
			n.log.Error("notary fell behind the change feed; catching up from the store's log")
			nw, rerr := n.o.Store.ReadWatch(func(t *tree.Tree, seq uint64) error { n.readConfig(t); return nil })
			if rerr != nil {
				n.log.Error("notary: re-read the tree", "err", rerr)
				return w
			}
			if cerr := n.catchUp(nw.Pos() - 1); cerr != nil {
				n.log.Error("notary: catch up after falling behind", "err", cerr)
			}
			w = nw
			continue
		}
		if errors.Is(err, store.ErrClosed) {
			return nil // the store is gone: nothing more to follow
		}
		if err != nil || !ok {
			return w
		}
		if c.State {
			continue
		}
		configChanged := false
		for _, ch := range c.Changes {
			p := ch.Node.Path
			if strings.HasPrefix(p, notaryConfigPrefix) || strings.HasPrefix(p, systemConfigPrefix) {
				configChanged = true
				break
			}
		}
		if configChanged {
			_ = n.o.Store.Read(func(t *tree.Tree) error { n.readConfig(t); return nil })
		}
		n.recordCommit(c)
		if f := *n.fid.Load(); f.Flush == accord.FlushEveryRecord {
			n.flush()
		}
	}
	return nil
}

// ready is the watcher's wake-up channel, or nil (never ready) once the
// store closed.
func ready(w *store.Watcher) <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.Ready()
}

// recordCommit appends the mutation artifact of a live config commit. It
// streams the commit's config changes into the artifact: a bulk commit's
// 600,000 leaves cost no Change, path string or hash slice each.
func (n *Notary) recordCommit(c *store.Commit) {
	if c.Seq <= n.lastSeq.Load() {
		return // already recorded (caught up from the store's log)
	}
	f := n.Fidelity()
	if m, a := n.commitArtifact(c, f); a != nil {
		n.appendArtifact(m, f, a)
	}
}

// commitArtifact makes the mutation artifact of a commit's config changes
// at fidelity f (nil when it has none).
func (n *Notary) commitArtifact(c *store.Commit, f notarymodel.Fidelity) (notarymodel.Mutation, *qmv1.NetworkMutationArtifact) {
	m := notarymodel.Mutation{Seq: c.Seq, Time: c.Time}
	count := 0
	for _, ch := range c.Changes {
		if ch.Node.Config {
			count++
		}
	}
	if count == 0 {
		return m, nil
	}
	w, level, olds, err := notarymodel.ReadAnnotation(c.Annotation)
	if err == nil && olds.Len() != count {
		err = fmt.Errorf("%d old values for %d changes", olds.Len(), count)
	}
	var a *qmv1.NetworkMutationArtifact
	if err == nil {
		m.Writer, m.Level = w, level
		a, err = buildCommit(m, c, count, f, &olds)
	}
	if err != nil {
		n.unannotated(&m, err)
		a, _ = buildCommit(m, c, count, f, nil)
	}
	return m, a
}

// buildCommit makes the artifact of a commit's count config changes, with
// their old values from olds (none when nil). Consecutive leaves of one
// instance share its rendered path.
func buildCommit(m notarymodel.Mutation, c *store.Commit, count int, f notarymodel.Fidelity,
	olds *notarymodel.OldValues) (*qmv1.NetworkMutationArtifact, error) {
	b := notarymodel.NewMutationBuilder(m, count, f)
	var paths tree.PathMemo
	var path, before []byte
	var in tree.Ident
	prefix := -1 // the length of in's path in path
	for _, ch := range c.Changes {
		if !ch.Node.Config {
			continue
		}
		if prefix < 0 || ch.In != in {
			path = paths.AppendInst(path[:0], ch.In)
			if len(path) == 1 {
				path = path[:0] // the root: its leaves are "/name"
			}
			in, prefix = ch.In, len(path)
		}
		path = append(append(path[:prefix], '/'), ch.Node.Name...)
		if olds != nil {
			var err error
			if before, err = olds.Next(); err != nil {
				return nil, err
			}
		}
		b.Add(path, ch.Op == tree.OpDelete, before, ch.Val)
	}
	if olds != nil {
		if err := olds.End(); err != nil {
			return nil, err
		}
	}
	return b.Artifact(), nil
}

func (n *Notary) appendMutation(m notarymodel.Mutation) {
	f := n.Fidelity()
	n.appendArtifact(m, f, notarymodel.BuildMutation(m, f))
}

func (n *Notary) appendArtifact(m notarymodel.Mutation, f notarymodel.Fidelity, a *qmv1.NetworkMutationArtifact) {
	e := &qmv1.LogEntry{PostureLevel: uint32(m.Level), Fidelity: f.Proto(), EventUnixNano: m.Time.UnixNano(),
		Artifact: &qmv1.LogEntry_NetworkMutation{NetworkMutation: a}}
	n.append(e)
	n.lastSeq.Store(m.Seq)
}

// append stamps an entry with its index, time and node and adds it to the
// open group; at every-record fidelity it flushes at once. An entry it
// could not add is logged and its error returned.
func (n *Notary) append(e *qmv1.LogEntry) error {
	e.Index = uint64(n.led.Next())
	e.RecordedUnixNano = n.o.Now().UnixNano()
	e.Node = n.o.Node
	e.Cluster = *n.cluster.Load()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		n.log.Error("notary: encode entry", "err", err)
		return fmt.Errorf("encode notary entry: %w", err)
	}
	before := n.led.Size()
	if _, err := n.led.Append(b); err != nil {
		n.log.Error("notary: append entry", "err", err)
		return err
	}
	n.pendMeta = append(n.pendMeta, meta{typ: uint8(notarymodel.Type(e)), level: uint8(e.GetPostureLevel()), when: e.GetEventUnixNano()})
	if n.led.Size() != before {
		n.flushed() // Append flushed a full group by itself
	}
	if f := n.Fidelity(); f.Flush == accord.FlushEveryRecord && !n.catchingUp {
		n.flush()
	}
	return nil
}

// flush makes every appended entry durable under a new checkpoint.
func (n *Notary) flush() {
	if n.led.PendingEntries() == 0 {
		return
	}
	if _, err := n.led.Flush(); err != nil {
		n.log.Error("notary: flush log", "err", err)
		return
	}
	n.flushed()
}

func (n *Notary) flushErr() error {
	if n.led.PendingEntries() > 0 {
		return fmt.Errorf("flush notary log: %d entries not durable", n.led.PendingEntries())
	}
	return nil
}

// flushed publishes the entries that became durable.
func (n *Notary) flushed() {
	size := n.led.Size()
	n.imu.Lock()
	k := int(size) - len(n.idx)
	k = min(k, len(n.pendMeta))
	n.idx = append(n.idx, n.pendMeta[:k]...)
	n.pendMeta = append(n.pendMeta[:0], n.pendMeta[k:]...)
	close(n.grew)
	n.grew = make(chan struct{})
	n.imu.Unlock()
	n.lastFlush.Store(n.o.Now().UnixNano())
	if n.o.CommitLog != nil {
		// Every mutation appended so far is durable now: the store may
		// drop its log records up to the last one.
		if s := n.lastSeq.Load(); s > n.retained {
			n.o.CommitLog.Retain(s, markNote(size))
			n.retained = s
		}
	}
	if n.up != nil {
		n.up.Notify()
	}
	n.markDirty()
}
