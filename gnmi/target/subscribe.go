package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// Stream behaviour, documented for clients:
//   - Every commit that touches a subscribed path reaches the stream as one
//     Notification carrying all of that commit's matching updates and
//     deletes, with the commit's timestamp; never half a commit.
//   - A slow subscriber never blocks Set: each stream reads the store's
//     change feed at its own pace. The feed keeps a bounded backlog (about
//     a million leaf changes). A stream that falls further behind than
//     that is ended with RESOURCE_EXHAUSTED, rather than silently skipping
//     changes; the client resubscribes and gets a fresh initial sync.
//   - The initial sync (and every POLL and SAMPLE) streams from one
//     snapshot of the tree at the client's pace, in notifications of at
//     most 512 updates, never built whole in memory. A stream queues at
//     most Limits.StreamBuffer notifications; a client that takes none for
//     Limits.SendStall is ended with RESOURCE_EXHAUSTED.
//   - TARGET_DEFINED is ON_CHANGE for every Kedge path.
const (
	syncBatch          = 512              // most updates per initial-sync Notification
	syncBytes          = 24 << 10         // about the most bytes per initial-sync Notification
	minSampleInterval  = time.Millisecond // finer intervals are refused
	defaultSampleEvery = time.Second      // sample_interval 0
)

type subEntry struct {
	pat       *tree.Pattern
	elems     []*gpb.PathElem // as rendered in the signature: no module qualifiers
	mode      gpb.SubscriptionMode
	sample    time.Duration
	suppress  bool
	heartbeat time.Duration
	// last values sent by SAMPLE with suppress_redundant, by path.
	last map[string]string
}

type subscription struct {
	s           *Server
	target      string
	enc         encoder
	entries     []*subEntry
	updatesOnly bool
	// sig identifies what this subscription selects from a commit:
	// streams with equal signatures get byte-identical notifications.
	sig string
}

// Subscribe serves ONCE, POLL and STREAM subscriptions.
func (s *Server) Subscribe(stream gpb.GNMI_SubscribeServer) error {
	if err := s.authRead(stream.Context()); err != nil {
		return err
	}
	req, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	sl := req.GetSubscribe()
	if sl == nil {
		return status.Error(codes.InvalidArgument, "the first SubscribeRequest must carry a SubscriptionList")
	}
	sub, err := s.newSubscription(sl, req)
	if err != nil {
		return err
	}
	q := s.newSender(stream)
	defer q.stop()
	ctx := stream.Context()
	switch sl.GetMode() {
	case gpb.SubscriptionList_ONCE:
		if _, err := sub.initialSync(ctx, q, false); err != nil {
			return err
		}
		return q.flush(ctx)
	case gpb.SubscriptionList_POLL:
		return sub.poll(stream, q)
	case gpb.SubscriptionList_STREAM:
		return sub.stream(stream, q)
	}
	return status.Errorf(codes.InvalidArgument, "unknown subscription list mode %v", sl.GetMode())
}

func (s *Server) newSubscription(sl *gpb.SubscriptionList, req *gpb.SubscribeRequest) (*subscription, error) {
	if err := checkEncoding(sl.GetEncoding()); err != nil {
		return nil, err
	}
	if len(sl.GetUseModels()) > 0 {
		if err := s.checkModels(sl.GetUseModels()); err != nil {
			return nil, err
		}
	}
	sub := &subscription{
		s:           s,
		target:      sl.GetPrefix().GetTarget(),
		enc:         encoder{enc: sl.GetEncoding(), depth: depthOf(req.GetExtension())},
		updatesOnly: sl.GetUpdatesOnly(),
	}
	subs := sl.GetSubscription()
	if len(subs) == 0 {
		subs = []*gpb.Subscription{{Path: &gpb.Path{}}}
	}
	for _, x := range subs {
		elems, err := fullPath(sl.GetPrefix(), x.GetPath())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		pat, err := tree.CompilePattern(s.st.Schema(), elems)
		if err != nil {
			return nil, errStatus(err)
		}
		e := &subEntry{pat: pat, elems: normalize(pat.Elems()), mode: x.GetMode(), suppress: x.GetSuppressRedundant(),
			sample: time.Duration(x.GetSampleInterval()), heartbeat: time.Duration(x.GetHeartbeatInterval())}
		if e.mode == gpb.SubscriptionMode_TARGET_DEFINED {
			e.mode = gpb.SubscriptionMode_ON_CHANGE
		}
		if sl.GetMode() == gpb.SubscriptionList_STREAM {
			if e.mode == gpb.SubscriptionMode_SAMPLE {
				if e.sample == 0 {
					e.sample = defaultSampleEvery
				}
				if e.sample < minSampleInterval {
					return nil, status.Errorf(codes.InvalidArgument, "sample_interval %v is below the minimum %v", e.sample, minSampleInterval)
				}
			}
			if e.heartbeat != 0 && e.heartbeat < minSampleInterval {
				return nil, status.Errorf(codes.InvalidArgument, "heartbeat_interval %v is below the minimum %v", e.heartbeat, minSampleInterval)
			}
		}
		sub.entries = append(sub.entries, e)
	}
	var sig strings.Builder
	fmt.Fprintf(&sig, "%d|%s|%d", sub.enc.enc, sub.target, sub.enc.depth)
	for _, e := range sub.entries {
		if e.mode == gpb.SubscriptionMode_ON_CHANGE {
			sig.WriteString("|" + pathString(e.elems))
		}
	}
	sub.sig = sig.String()
	return sub, nil
}

// normalize strips module qualifiers so patterns compare with rendered
// paths.
func normalize(elems []*gpb.PathElem) []*gpb.PathElem {
	out := make([]*gpb.PathElem, len(elems))
	for i, e := range elems {
		out[i] = &gpb.PathElem{Name: stripModule(e.GetName()), Key: e.GetKey()}
	}
	return out
}

func (sub *subscription) notification(ts int64) *gpb.Notification {
	n := &gpb.Notification{Timestamp: ts}
	if sub.target != "" {
		n.Prefix = &gpb.Path{Target: sub.target}
	}
	return n
}

// current calls fn with an update for every leaf an entry selects in t,
// metered by cost.
func (sub *subscription) current(t *tree.Tree, e *subEntry, cost *readCost, fn func(*gpb.Update) error) error {
	defer cost.endWalk()
	var elems elemCache
	return t.WalkPattern(e.pat, tree.WalkOpts{Visit: cost.visited}, func(m tree.Match) error {
		keep := sub.enc.depthFilter(m)
		if sub.enc.depth == 0 {
			keep = nil
		}
		return eachLeaf(m, keep, &elems, func(path []*gpb.PathElem, n *tree.Node, v tree.Value) error {
			if err := cost.leaf(); err != nil {
				return err
			}
			return fn(&gpb.Update{Path: &gpb.Path{Elem: path}, Val: sub.enc.leafValue(n, v)})
		})
	})
}

// batcher gathers updates into notifications of at most syncBatch
// updates and about syncBytes, and queues each one as it fills, so a sync
// holds one notification at a time whatever the size of the tree. The
// byte bound matters as much: gRPC marshals a message into a pooled
// buffer of the next size up, and past 32 KiB that is 1 MiB, which a
// stuck stream would hold for each message it has in flight.
type batcher struct {
	sub   *subscription
	ctx   context.Context
	q     *sender
	cost  *readCost
	ts    int64
	n     *gpb.Notification
	bytes int
}

func (sub *subscription) batcher(ctx context.Context, q *sender, cost *readCost, ts int64) *batcher {
	return &batcher{sub: sub, ctx: ctx, q: q, cost: cost, ts: ts, n: sub.notification(ts)}
}

func (b *batcher) add(u *gpb.Update) error {
	b.n.Update = append(b.n.Update, u)
	b.bytes += approxSize(u)
	if len(b.n.Update) < syncBatch && b.bytes < syncBytes {
		return nil
	}
	return b.flush()
}

// approxSize estimates an update's encoded size, closely enough to keep a
// notification under its byte bound without marshalling it twice.
func approxSize(u *gpb.Update) int {
	n := 8 // the update's and its path's tags and lengths
	for _, e := range u.GetPath().GetElem() {
		n += 4 + len(e.GetName())
		for k, v := range e.GetKey() {
			n += 6 + len(k) + len(v)
		}
	}
	switch v := u.GetVal().GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		n += 4 + len(v.StringVal)
	case *gpb.TypedValue_JsonIetfVal:
		n += 4 + len(v.JsonIetfVal)
	case *gpb.TypedValue_JsonVal:
		n += 4 + len(v.JsonVal)
	case *gpb.TypedValue_LeaflistVal:
		n += 4 + proto.Size(v.LeaflistVal)
	default:
		n += 12
	}
	return n
}

// flush queues the notification being built (unless empty). Waiting for
// the client must not hold a busy-read slot: the read gives it back and
// takes it again when it goes on.
func (b *batcher) flush() error {
	if len(b.n.Update) == 0 && len(b.n.Delete) == 0 {
		return nil
	}
	n := b.n
	b.n, b.bytes = b.sub.notification(b.ts), 0
	b.cost.release()
	return b.q.send(b.ctx, &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: n}}, len(n.Update))
}

// initialSync streams the current data (unless updates_only) from one
// snapshot, then the sync response, and returns a watcher positioned
// right after that snapshot.
func (sub *subscription) initialSync(ctx context.Context, q *sender, watch bool) (*store.Watcher, error) {
	ts := sub.s.clock.Now().UnixNano()
	cost := sub.s.newCost(ctx, false)
	defer cost.release()
	sync := func(t *tree.Tree, _ uint64) error {
		if sub.updatesOnly {
			return nil
		}
		b := sub.batcher(ctx, q, cost, ts)
		for _, e := range sub.entries {
			if err := sub.current(t, e, cost, b.add); err != nil {
				return err
			}
		}
		return b.flush()
	}
	var w *store.Watcher
	var err error
	if watch {
		w, err = sub.s.st.ReadWatch(sync)
	} else {
		err = sub.s.st.Read(func(t *tree.Tree) error { return sync(t, 0) })
	}
	if err != nil {
		return nil, errStatus(err)
	}
	if err := q.send(ctx, &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_SyncResponse{SyncResponse: true}}, 0); err != nil {
		return nil, err
	}
	return w, nil
}

func (sub *subscription) poll(stream gpb.GNMI_SubscribeServer, q *sender) error {
	ctx := stream.Context()
	if _, err := sub.initialSync(ctx, q, false); err != nil {
		return err
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return q.flush(ctx)
		}
		if err != nil {
			return err
		}
		if req.GetPoll() == nil {
			return status.Error(codes.InvalidArgument, "a POLL subscription accepts only Poll messages")
		}
		if _, err := sub.initialSync(ctx, q, false); err != nil {
			return err
		}
	}
}

// stream serves a STREAM subscription until the client goes away.
func (sub *subscription) stream(stream gpb.GNMI_SubscribeServer, q *sender) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	// A STREAM client sends nothing more; reading detects its half-close
	// or a protocol error.
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return // half-close: keep streaming until the context ends
				}
				recvErr <- err
				return
			}
			if req.GetPoll() != nil || req.GetSubscribe() != nil {
				recvErr <- status.Error(codes.InvalidArgument, "a STREAM subscription accepts no further requests")
				return
			}
		}
	}()
	w, err := sub.initialSync(ctx, q, true)
	if err != nil {
		return err
	}
	timers := sub.startTimers(ctx)
	hasOnChange := false
	for _, e := range sub.entries {
		hasOnChange = hasOnChange || e.mode == gpb.SubscriptionMode_ON_CHANGE
	}
	for {
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case err := <-recvErr:
			return err
		case e := <-timers:
			if err := sub.sendCurrent(ctx, q, e); err != nil {
				return err
			}
		case <-w.Ready():
			for {
				c, ok, err := w.TryNext()
				if errors.Is(err, store.ErrResync) {
					return status.Error(codes.ResourceExhausted, "subscriber fell too far behind the change feed; resubscribe")
				}
				if err != nil {
					return errStatus(err)
				}
				if !ok {
					break
				}
				if !hasOnChange {
					continue
				}
				if err := sub.sendCommit(ctx, q, c); err != nil {
					return err
				}
			}
		}
	}
}

// sendCommit sends one commit's matching changes as one Notification,
// encoded once for all streams with the same selection when the gRPC
// server uses the target's codec.
func (sub *subscription) sendCommit(ctx context.Context, q *sender, c *store.Commit) error {
	if len(c.Changes) == 0 {
		return nil
	}
	r := sub.s.render.get(c)
	if sub.s.shared.Load() {
		msg, err := r.encoded(sub.sig, func() *gpb.SubscribeResponse { return sub.commitResponse(r, c) })
		if err != nil {
			return status.Errorf(codes.Internal, "encode notification: %v", err)
		}
		if msg == nil {
			return nil
		}
		return q.send(ctx, msg, 0)
	}
	resp := sub.commitResponse(r, c)
	if resp == nil {
		return nil
	}
	return q.send(ctx, resp, len(resp.GetUpdate().GetUpdate()))
}

// commitResponse builds the notification of a commit's matching changes,
// or nil when nothing matches.
func (sub *subscription) commitResponse(r *rendered, c *store.Commit) *gpb.SubscribeResponse {
	var upd []*gpb.Update
	n := sub.notification(c.Time.UnixNano())
	for i, ch := range c.Changes {
		p := r.paths[i]
		if !sub.wants(p.Elem) {
			continue
		}
		if ch.Op == tree.OpDelete {
			n.Delete = append(n.Delete, p)
			continue
		}
		if upd == nil {
			upd = r.updates(sub.enc.enc)
		}
		n.Update = append(n.Update, upd[i])
	}
	if len(n.Update) == 0 && len(n.Delete) == 0 {
		return nil
	}
	return &gpb.SubscribeResponse{Response: &gpb.SubscribeResponse_Update{Update: n}}
}

// wants reports whether an ON_CHANGE entry selects the path, honouring
// the depth extension.
func (sub *subscription) wants(path []*gpb.PathElem) bool {
	for _, e := range sub.entries {
		if e.mode != gpb.SubscriptionMode_ON_CHANGE || !e.pat.Prefixes(path) {
			continue
		}
		if d := sub.enc.depth; d > 0 && !hasWildcard(e.elems) && len(path)-len(e.elems) > int(d) {
			continue
		}
		return true
	}
	return false
}

// startTimers drives SAMPLE intervals and heartbeats: each tick names the
// entry whose current values are due.
func (sub *subscription) startTimers(ctx context.Context) <-chan *tickEntry {
	out := make(chan *tickEntry)
	for _, e := range sub.entries {
		if e.mode == gpb.SubscriptionMode_SAMPLE {
			go tick(ctx, out, e, e.sample, false)
		}
		if e.heartbeat > 0 {
			go tick(ctx, out, e, e.heartbeat, true)
		}
	}
	return out
}

type tickEntry struct {
	e         *subEntry
	heartbeat bool
}

func tick(ctx context.Context, out chan<- *tickEntry, e *subEntry, every time.Duration, heartbeat bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			select {
			case out <- &tickEntry{e: e, heartbeat: heartbeat}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// sendCurrent sends an entry's current values for a sample or heartbeat,
// streamed from one snapshot like the initial sync. With
// suppress_redundant a sample sends only values that changed since the
// last one (and deletes for paths that went away); a heartbeat sends
// everything regardless.
func (sub *subscription) sendCurrent(ctx context.Context, q *sender, te *tickEntry) error {
	e := te.e
	suppress := e.mode == gpb.SubscriptionMode_SAMPLE && e.suppress && !te.heartbeat && e.last != nil
	seen := map[string]string{}
	cost := sub.s.newCost(ctx, false)
	defer cost.release()
	b := sub.batcher(ctx, q, cost, sub.s.clock.Now().UnixNano())
	err := sub.s.st.Read(func(t *tree.Tree) error {
		return sub.current(t, e, cost, func(u *gpb.Update) error {
			if e.mode != gpb.SubscriptionMode_SAMPLE {
				return b.add(u)
			}
			key := pathString(u.GetPath().GetElem())
			val := u.GetVal().String()
			seen[key] = val
			if suppress && e.last[key] == val {
				return nil
			}
			return b.add(u)
		})
	})
	if err != nil {
		return errStatus(err)
	}
	if e.mode == gpb.SubscriptionMode_SAMPLE {
		for key := range e.last {
			if _, ok := seen[key]; !ok {
				if elems, perr := tree.ParsePath(key); perr == nil {
					b.n.Delete = append(b.n.Delete, &gpb.Path{Elem: elems})
				}
			}
		}
		e.last = seen
	}
	return b.flush()
}
