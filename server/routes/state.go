package routes

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/dataplane/route"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/intent"
)

// Route and pod statuses (the enums of kedge-routes and kedge-pods, which
// share their names).
const (
	statusInstalled = string(kedgepath.RouteStatusInstalled)
	statusWithheld  = string(kedgepath.RouteStatusWithheld)
	statusFailed    = string(kedgepath.RouteStatusFailed)
	statusPending   = string(kedgepath.RouteStatusPending)
	statusActive    = string(kedgepath.PodStatusActive)
)

// stateKey names a /kedge/routes, /kedge/pods or /kedge/aft entry.
type stateKey struct {
	pod   bool
	a, b  string // prefix and "" for a route; container-id and ifname for a pod
	table uint32
	// aft names a /kedge/aft entry: a is an IP entry's prefix, id a next
	// hop's index or a group's id.
	aft intent.AFTKind
	id  uint64
}

type stateVal struct{ status, reason string }

// podAgg folds a pod's routes into the pod's status.
type podAgg struct {
	installed          int
	withheld, failed   string // first reason of each
	nWithheld, nFailed int
}

// fail counts one failed route of the pod, keeping the first reason.
func (p *podAgg) fail(reason string) {
	if p.nFailed == 0 {
		p.failed = reason
	}
	p.nFailed++
}

// withhold counts one withheld route of the pod, keeping the first reason.
func (p *podAgg) withhold(reason string) {
	if p.nWithheld == 0 {
		p.withheld = reason
	}
	p.nWithheld++
}

// podAggs are the pods' aggregates of one state commit, kept from one
// commit to the next with their map: made anew, they were about a tenth
// of what a pod ADD allocated at 1,000 pods.
type podAggs struct {
	at   map[intent.PodKey]int
	aggs []podAgg
}

// reset empties the aggregates and returns their lookup, which makes a
// pod's aggregate when it has none. The pointer it returns is valid until
// its next call (the aggregates move when they grow).
func (ps *podAggs) reset() func(intent.PodKey) *podAgg {
	if cap(ps.aggs) > 4096 && len(ps.aggs) < cap(ps.aggs)/4 {
		ps.at, ps.aggs = nil, nil // the last commit had far fewer pods: let the buffers go
	}
	if ps.at == nil {
		ps.at = map[intent.PodKey]int{}
	}
	clear(ps.at)
	clear(ps.aggs) // no reason strings kept alive
	ps.aggs = ps.aggs[:0]
	return func(k intent.PodKey) *podAgg {
		i, ok := ps.at[k]
		if !ok {
			i = len(ps.aggs)
			ps.aggs = append(ps.aggs, podAgg{})
			ps.at[k] = i
		}
		return &ps.aggs[i]
	}
}

// stateWriter builds one state commit: ops for the entries whose status
// or reason differs from what was last committed (or that have no state
// yet). It is one of the route reconciler's three speed-ups, each behind
// one seam (models/intent's RouteCache, dataplane/route/kernel's fast
// plan, this): after a one-route change into 100,000 routes it writes one
// entry's state instead of rewriting all, and walks the last write
// alongside the routes rather than looking each entry up (state build 33
// → 7 ms per one-route Set when that went in; BenchmarkRouteSingleInto100k
// in tests/ shows it end to end). It updates written in place to what the tree holds once they are
// committed (the caller drops written when the commit fails): one map
// lookup for an unchanged entry, which at 100,000 routes is most of them.
// Entries that left the set stay in written; they are harmless (a
// re-created entry has no state yet, so it is written again) and dropped
// when written outgrows the set.
type stateWriter struct {
	written *stateRecord
	ops     []store.Op
	n       int // entries put
	ew      stateWrites
}

func (w *stateWriter) put(k stateKey, v stateVal, stated bool) {
	w.n++
	// What was written before matters only to an entry with state, or
	// for its reason. An entry without state whose map never held a
	// reason (a bulk load's new entries) is not looked up: that was half
	// of the writer's map work for 100,000 new gRIBI entries
	// (BenchmarkAFTState/new).
	var old stateVal
	known := false
	if stated || w.written.mayHaveReason(k) {
		old, known = w.written.get(k)
	}
	if stated && known && old == v {
		return
	}
	w.written.set(k, v)
	// The reason leaf is written when there is one, and deleted when the
	// entry may still hold an old one: it has state this writer does not
	// know, or this writer wrote a reason, whether or not the intent saw
	// that state yet (a change's state is committed beside the next
	// reconcile, whose intent may be read before it lands: commitLater).
	dropReason := v.reason == "" && (stated && !known || known && old.reason != "")
	if k.aft != 0 {
		w.aftOp(k, v, dropReason)
		return
	}
	if k.pod {
		st := kedgepath.Root().Kedge().Pods().Pod(k.a, k.b).State()
		w.ops = append(w.ops, store.Update(st.Status(), kedgepath.PodStatus(v.status)))
		if v.reason != "" {
			w.ops = append(w.ops, store.Update(st.Reason(), v.reason))
		} else if dropReason {
			w.ops = append(w.ops, store.Delete(st.Reason()))
		}
		return
	}
	w.routeOp(k, v, dropReason)
}

// stateOps returns the state operations that bring the tree's route and
// pod status in line with s and the backend's st, updating a.written to
// what the tree will hold after them. It runs in one pass over the
// routes, since at 100,000 routes every extra map or pass shows in the
// reconcile time.
func (a *applier) stateOps(s intent.RouteSet, st route.Status) []store.Op {
	if a.written == nil {
		a.written = newStateRecord(len(s.Config.Routes) + len(s.Withheld) + len(s.Invalid))
	}
	w := &stateWriter{written: a.written}
	agg := a.pods.reset()
	statusKnown := len(st.Routes) == len(s.Config.Routes)
	// The routes come in the intent's order, as they did last time:
	// walking the last Set's entries alongside, an entry equal to its
	// counterpart there (same origin, status and reason, state present)
	// needs no map lookup at all.
	prev, marks := a.marks, a.spareMarks[:0]
	if a.written.len() == 0 {
		prev = nil
	}
	j := 0
	for i := range s.Config.Routes {
		o := s.Origins[i]
		v := stateVal{status: statusPending, reason: "not applied yet"}
		if statusKnown {
			v = stateVal{status: statusInstalled}
			if rs := st.Routes[i]; rs.State != route.StateInstalled {
				v = stateVal{status: statusFailed, reason: "unknown outcome"}
				if rs.Err != nil {
					v.reason = rs.Err.Error()
				}
			}
		}
		if o.IsOverlay() {
			continue // no /kedge/routes entry; the peer's state is the mesh's
		}
		if o.IsAFT() {
			w.put(aftKey(o.AFT), v, o.Stated)
			continue
		}
		if o.IsPod() {
			if p := agg(o.Pod); v.status == statusInstalled {
				p.installed++
			} else {
				p.fail(v.reason)
			}
			continue
		}
		m := stateMark{dst: s.Config.Routes[i].Dst, prefix: o.Prefix, table: o.Table, v: v}
		for j < len(prev) && prev[j].before(m) {
			j++
		}
		marks = append(marks, m)
		if o.Stated && j < len(prev) && prev[j] == m {
			j++
			w.n++
			continue
		}
		w.put(routeKey(o), v, o.Stated)
	}
	clear(a.marks) // the spare must not keep reason strings alive
	a.spareMarks, a.marks = a.marks[:0], marks
	a.restOps(w, s, agg)
	if a.written.len() > 2*w.n+1024 {
		// Mostly entries that are gone: start over, which writes every
		// entry's state once more (states already right are rewritten
		// unchanged and publish nothing).
		a.written = nil
	}
	return w.ops
}

// deltaStateOps is stateOps for a change set (s.Delta, st the Patch's
// outcome): the state of the route entries it names and of every pod,
// appended to ops. It is the state writer's part of the incremental
// route path: a one-route change writes that entry's state without a
// look at the others. The routes list's marks no longer say what the
// tree holds, so the next whole set looks every entry up in written
// instead.
func (a *applier) deltaStateOps(ops []store.Op, s intent.RouteSet, st route.Status) []store.Op {
	w := &stateWriter{written: a.written, ops: slices.Grow(ops, deltaOpsHint(s))}
	nAFT := 0
	for _, o := range s.Delta.PutOrigins {
		if o.IsAFT() {
			nAFT++
		}
	}
	w.written.reserveAFT(nAFT)
	agg := a.pods.reset()
	a.marks, a.spareMarks = nil, nil // about 90 B a route each, and stale now
	statusKnown := len(st.Routes) == len(s.Delta.Patch.Put) && st.Patched
	for i, o := range s.Delta.PutOrigins {
		v := stateVal{status: statusPending, reason: "not applied yet"}
		if statusKnown {
			v = stateVal{status: statusInstalled}
			if rs := st.Routes[i]; rs.State != route.StateInstalled {
				v = stateVal{status: statusFailed, reason: "unknown outcome"}
				if rs.Err != nil {
					v.reason = rs.Err.Error()
				}
			}
		}
		switch {
		case o.IsOverlay():
		case o.IsPod():
			if p := agg(o.Pod); v.status == statusInstalled {
				p.installed++
			} else {
				p.fail(v.reason)
			}
		case o.IsAFT():
			w.put(aftKey(o.AFT), v, o.Stated)
		default:
			w.put(routeKey(o), v, o.Stated)
		}
	}
	for _, o := range s.Delta.Installed {
		if o.IsPod() {
			agg(o.Pod).installed++
		}
	}
	a.restOps(w, s, agg)
	return w.ops
}

// deltaOpsHint is about how many operations deltaStateOps writes for s:
// one per entry it names (a gRIBI entry's is one; a route's with a reason
// two), and one more for the programmed sequence the applier writes
// after them. Made room for at once, a bulk load's 100,000 operations are
// not copied into ever bigger slices on the way.
func deltaOpsHint(s intent.RouteSet) int {
	return len(s.Delta.PutOrigins) + len(s.Withheld) + len(s.AFT) + len(s.Invalid) + 1
}

// restOps adds the state of s's withheld and invalid entries and of its
// pods, once their routes are folded into agg.
func (a *applier) restOps(w *stateWriter, s intent.RouteSet, agg func(intent.PodKey) *podAgg) {
	for _, wh := range s.Withheld {
		if wh.Origin.IsOverlay() {
			continue
		}
		if wh.Origin.IsPod() {
			agg(wh.Origin.Pod).withhold(wh.Reason)
			continue
		}
		if wh.Origin.IsAFT() {
			w.put(aftKey(wh.Origin.AFT), stateVal{statusWithheld, wh.Reason}, wh.Origin.Stated)
			continue
		}
		w.put(routeKey(wh.Origin), stateVal{statusWithheld, wh.Reason}, wh.Origin.Stated)
	}
	for _, st := range s.AFT {
		w.put(aftKey(st.Key), stateVal{st.Status, st.Reason}, st.Stated)
	}
	for _, inv := range s.Invalid {
		if inv.Origin.IsPod() {
			agg(inv.Origin.Pod).fail(inv.Reason)
			continue
		}
		w.put(routeKey(inv.Origin), stateVal{statusFailed, inv.Reason}, inv.Origin.Stated)
	}
	for _, ref := range s.Pods {
		p := agg(ref.Key)
		var v stateVal
		switch {
		case p.nFailed > 0:
			v = stateVal{statusFailed, p.failed}
		case p.installed > 0 && p.nWithheld > 0:
			v = stateVal{statusActive, strconv.Itoa(p.nWithheld) + " of its routes withheld: " + p.withheld}
		case p.installed > 0:
			v = stateVal{status: statusActive}
		default:
			v = stateVal{statusWithheld, p.withheld}
		}
		w.put(podStateKey(ref.Key), v, ref.Stated)
	}
	for _, ref := range s.PodsPending {
		w.put(podStateKey(ref.Key), stateVal{statusPending, ref.Reason}, ref.Stated)
	}
}

func routeKey(o intent.Origin) stateKey { return stateKey{a: o.Prefix, table: o.Table} }

// stateMark is one /kedge/routes entry of the routes list as the last
// state commit left it, in the intent's order.
type stateMark struct {
	dst    netip.Prefix
	prefix string
	table  uint32
	v      stateVal
}

// before orders marks as the routes intent orders routes: table (0 is
// the main table), address (IPv4 first), prefix length, then the key.
func (m stateMark) before(o stateMark) bool {
	mt, ot := cmp.Or(m.table, 254), cmp.Or(o.table, 254)
	if mt != ot {
		return mt < ot
	}
	if c := m.dst.Addr().Compare(o.dst.Addr()); c != 0 {
		return c < 0
	}
	if m.dst.Bits() != o.dst.Bits() {
		return m.dst.Bits() < o.dst.Bits()
	}
	return m.prefix < o.prefix
}

func podStateKey(k intent.PodKey) stateKey {
	return stateKey{pod: true, a: k.ContainerID, b: k.IfName}
}

func aftKey(k intent.AFTKey) stateKey { return stateKey{aft: k.Kind, a: k.Prefix, id: k.ID} }

// The /kedge/aft lists whose entries' state the writer writes, and their
// entries' state containers relative to the entry, built once.
var (
	aftV4Entries = kedgepath.Root().Kedge().Aft().Ipv4Entries()
	aftV6Entries = kedgepath.Root().Kedge().Aft().Ipv6Entries()
	aftGroups    = kedgepath.Root().Kedge().Aft().NextHopGroups()
	aftHops      = kedgepath.Root().Kedge().Aft().NextHops()

	aftV4State    = aftV4Entries.Ipv4EntryBelow().State()
	aftV6State    = aftV6Entries.Ipv6EntryBelow().State()
	aftGroupState = aftGroups.NextHopGroupBelow().State()
	aftHopState   = aftHops.NextHopBelow().State()
)

// The /kedge/routes list and its entries' state container relative to
// the entry, built once.
var (
	routeList  = kedgepath.Root().Kedge().Routes()
	routeState = routeList.RouteBelow().State()
)

// routeOp adds the operation writing a /kedge/routes entry's status and
// reason, one store.Keyed operation as aftOp's are: a path with a key map
// for each leaf cost 7 allocations a route and 0.4 KB
// (BenchmarkRouteStateNew).
func (w *stateWriter) routeOp(k stateKey, v stateVal, dropReason bool) {
	r := routeList.RouteRef(k.a, k.table)
	w.ops = append(w.ops, entryStateOp(&w.ew, w.ew.routeEntryKey(&r), w.ew.routeStatusVal(kedgepath.RouteStatus(v.status)),
		routeState.Status(), routeState.Reason, v, dropReason))
}

// aftOp adds the operation writing a /kedge/aft entry's status (the
// routes' statuses share their names with aft-status) and reason: one
// store.Keyed operation, so the commit finds the entry once for both
// leaves instead of once per leaf from the root, by its typed key rather
// than a path with a key map. A bulk load writes 100,000 entries' status,
// so what each costs counts: only the leaf paths written are used, and
// the status values are shared (see stateWrites).
func (w *stateWriter) aftOp(k stateKey, v stateVal, dropReason bool) {
	var op store.Op
	switch k.aft {
	case intent.AFTIPv4:
		r := aftV4Entries.Ipv4EntryRef(k.a)
		op = aftEntryOp(&w.ew, k.aft, w.ew.ipEntryKey(&r), aftV4State.Status(), aftV4State.Reason, v, dropReason)
	case intent.AFTIPv6:
		r := aftV6Entries.Ipv6EntryRef(k.a)
		op = aftEntryOp(&w.ew, k.aft, w.ew.ipEntryKey(&r), aftV6State.Status(), aftV6State.Reason, v, dropReason)
	case intent.AFTNextHopGroup:
		r := aftGroups.NextHopGroupRef(k.id)
		op = aftEntryOp(&w.ew, k.aft, store.EntryKeyOf(&r), aftGroupState.Status(), aftGroupState.Reason, v, dropReason)
	default:
		r := aftHops.NextHopRef(k.id)
		op = aftEntryOp(&w.ew, k.aft, store.EntryKeyOf(&r), aftHopState.Status(), aftHopState.Reason, v, dropReason)
	}
	w.ops = append(w.ops, op)
}

// aftEntryOp is the operation on the entry key names writing status to its
// status leaf and its reason (status and reason relative to the entry;
// reason builds the leaf's path: only when it is written or deleted). It
// has the effect of store.Keyed(r, store.Set(status, v.status),
// reasonOp(reason(), v.reason)), which TestAFTStateEntryOps holds it to
// (as the per-leaf writes), with its leaf writes taken from aw.
func aftEntryOp[S store.SplitLeaf[kedgepath.AftStatus], R store.SplitLeaf[string]](aw *stateWrites, kind intent.AFTKind,
	key *tree.EntryKey, status S, reason func() R, v stateVal, dropReason bool) store.Op {
	return entryStateOp(aw, key, statusVal(aw, kind, kedgepath.AftStatus(v.status), status), status, reason, v, dropReason)
}

// entryStateOp is aftEntryOp's operation for any list whose entries have
// a status and a reason, with the status leaf's value given (val).
func entryStateOp[S store.SplitPath, R store.SplitLeaf[string]](aw *stateWrites, key *tree.EntryKey, val *gpb.TypedValue,
	status S, reason func() R, v stateVal, dropReason bool) store.Op {
	n := 1
	if v.reason != "" || dropReason {
		n = 2
	}
	ws := aw.Take(n)
	ws[0] = tree.EntryWrite{Val: val}
	ws[0].Path, ws[0].Relative = store.KeyedLeafPath(status)
	if n == 2 {
		rp := reason()
		ws[1].Path, ws[1].Relative = store.KeyedLeafPath(rp)
		if v.reason == "" {
			ws[1].Delete = true
		} else {
			ws[1].Val = rp.Val(v.reason)
		}
	}
	return store.Op{Kind: store.OpEntry, Key: key, Leaves: ws}
}

// stateWrites hands out the leaf writes and keys of one state commit's
// /kedge/aft and /kedge/routes entry operations from chunks rather than
// one allocation per entry, and keeps the last status value of each
// list, which the entries of a bulk load, nearly all of one status,
// share (the tree decodes a value and keeps none of it).
type stateWrites struct {
	tree.EntryWrites
	keys      keySlab[ipKey]        // ipEntryKey's
	routeKeys keySlab[routeTreeKey] // routeEntryKey's
	last      [5]struct {
		status kedgepath.AftStatus
		val    *gpb.TypedValue
	}
	lastRoute struct {
		status kedgepath.RouteStatus
		val    *gpb.TypedValue
	}
}

// routeTreeKey is a /kedge/routes entry's tree key and its two values.
type routeTreeKey struct {
	k   tree.EntryKey
	val [2]tree.Value
}

// routeEntryKey returns the tree's key of the /kedge/routes entry r
// names (prefix and table), the one store.EntryKeyOf returns
// (TestRouteStateEntryOps holds the operations to the per-leaf writes),
// from a chunk, as ipEntryKey does.
func (aw *stateWrites) routeEntryKey(r *kedgepath.EntryRef) *tree.EntryKey {
	if r.NumKeys() != 2 || r.Key(0).Kind != kedgepath.KeyText || r.Key(1).Kind != kedgepath.KeyUint {
		return store.EntryKeyOf(r)
	}
	rk := aw.routeKeys.take()
	rk.val = [2]tree.Value{tree.String(r.Key(0).Text), tree.Uint(r.Key(1).Uint)}
	rk.k = tree.EntryKey{Parent: r.Parent(), List: r.List(), Names: r.KeyNames(), Keys: rk.val[:]}
	return &rk.k
}

// routeStatusVal is routeState's status value for status, shared with
// the entries written before it with the same status.
func (aw *stateWrites) routeStatusVal(status kedgepath.RouteStatus) *gpb.TypedValue {
	l := &aw.lastRoute
	if l.val == nil || l.status != status {
		l.status, l.val = status, routeState.Status().Val(status)
	}
	return l.val
}

// ipKey is an IP entry's tree key and its one value.
type ipKey struct {
	k   tree.EntryKey
	val [1]tree.Value
}

// keyChunk is how many entry keys a chunk holds at most.
const keyChunk = 512

// keySlab hands out entry keys from chunks that start small and double
// up to keyChunk: a bulk load's 100,000 keys take a few hundred
// allocations, a one-route Set's state one small one (a whole chunk was
// 61 KB of a one-route Set's 125).
type keySlab[T any] struct {
	free []T
	size int // the last chunk's
}

func (s *keySlab[T]) take() *T {
	if len(s.free) == 0 {
		s.size = min(max(2*s.size, 4), keyChunk)
		s.free = make([]T, s.size)
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// ipEntryKey returns the tree's key of the IP entry r names, the one
// store.EntryKeyOf returns (TestAFTStateEntryOps holds the operations to
// the per-leaf writes), from a chunk: EntryKeyOf allocates each key
// apart, 100,000 times for a bulk load's state. An IP entry's one key is
// its prefix, text.
func (aw *stateWrites) ipEntryKey(r *kedgepath.EntryRef) *tree.EntryKey {
	if r.NumKeys() != 1 || r.Key(0).Kind != kedgepath.KeyText {
		return store.EntryKeyOf(r)
	}
	ik := aw.keys.take()
	ik.val[0] = tree.String(r.Key(0).Text)
	ik.k = tree.EntryKey{Parent: r.Parent(), List: r.List(), Names: r.KeyNames(), Keys: ik.val[:]}
	return &ik.k
}

// statusVal returns leaf p's value for status, shared with the entries of
// the same list written before it with the same status.
func statusVal[S store.Leaf[kedgepath.AftStatus]](aw *stateWrites, kind intent.AFTKind, status kedgepath.AftStatus, p S) *gpb.TypedValue {
	if int(kind) >= len(aw.last) {
		return p.Val(status)
	}
	l := &aw.last[kind]
	if l.val == nil || l.status != status {
		l.status, l.val = status, p.Val(status)
	}
	return l.val
}
