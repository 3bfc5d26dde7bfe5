package routes

import (
	"github.com/guildhouse-co/kedge/internal/maproom"
	"github.com/guildhouse-co/kedge/models/intent"
)

// stateRecord is the status and reason the state writer last committed
// per entry. Route entries and gRIBI IP entries, nearly all of a big
// table, are kept apart under a small key with a pointer to their value,
// which for a status without a reason is one shared per status: a map
// slot of 32-40 B instead of the 88 of a stateKey and its stateVal. At
// 100,000 routes the slots were 10-15 MB, depending on where the map's
// growth stopped; a gRIBI bulk load of 100,000 entries allocated 24 MB
// growing the map of whole keys. Pods, next hops and groups, far fewer,
// keep the whole key.
type stateRecord struct {
	routes map[routeID]*stateVal
	aft    map[aftID]*stateVal
	other  map[stateKey]stateVal
	// aftRoom is how many entries aft was made for or has held,
	// whichever is more (see reserveAFT).
	aftRoom maproom.Room
	// reasoned says, per map (recordRoutes, recordAFT, recordOther),
	// whether a value with a reason was ever set in it: while none was,
	// an entry without state is written without looking up what it
	// had (see stateWriter.put).
	reasoned [3]bool
}

// The maps of a stateRecord, indexing its reasoned.
const (
	recordRoutes = iota
	recordAFT
	recordOther
)

// routeID is a /kedge/routes entry's keys.
type routeID struct {
	prefix string
	table  uint32
}

// aftID is a /kedge/aft IP entry's list and prefix.
type aftID struct {
	kind   intent.AFTKind
	prefix string
}

// newStateRecord returns an empty record with room for n route entries.
func newStateRecord(n int) *stateRecord {
	return &stateRecord{routes: make(map[routeID]*stateVal, n), aft: map[aftID]*stateVal{}, other: map[stateKey]stateVal{}}
}

func (r *stateRecord) len() int { return len(r.routes) + len(r.aft) + len(r.other) }

// reserveAFT makes room for n more IP entries at once when that at
// least doubles them (a bulk load's batch: 72,000 entries into 28,000)
// and the map never held as many. Grown an entry at a time, the map
// allocated about twice its final size on the way (13 MB over a
// 100,000-entry load) and rehashed every entry at each step.
func (r *stateRecord) reserveAFT(n int) { r.aft = maproom.Reserve(r.aft, &r.aftRoom, n) }

// isRoute reports whether k names a /kedge/routes entry.
func isRoute(k stateKey) bool { return !k.pod && k.aft == 0 }

// isAFTIP reports whether k names a /kedge/aft IP entry.
func isAFTIP(k stateKey) bool { return k.aft == intent.AFTIPv4 || k.aft == intent.AFTIPv6 }

// mapOf returns which of r's maps holds k.
func mapOf(k stateKey) int {
	switch {
	case isRoute(k):
		return recordRoutes
	case isAFTIP(k):
		return recordAFT
	}
	return recordOther
}

// mayHaveReason reports whether what was last committed for k may have
// a reason: false when no value with a reason was set in k's map.
func (r *stateRecord) mayHaveReason(k stateKey) bool { return r.reasoned[mapOf(k)] }

// get returns what was last committed for k, and whether anything was.
func (r *stateRecord) get(k stateKey) (stateVal, bool) {
	var v *stateVal
	switch {
	case isRoute(k):
		v = r.routes[routeID{k.a, k.table}]
	case isAFTIP(k):
		v = r.aft[aftID{k.aft, k.a}]
	default:
		v, ok := r.other[k]
		return v, ok
	}
	if v == nil {
		return stateVal{}, false
	}
	return *v, true
}

// set records v as committed for k.
func (r *stateRecord) set(k stateKey, v stateVal) {
	if v.reason != "" {
		r.reasoned[mapOf(k)] = true
	}
	switch {
	case isRoute(k):
		r.routes[routeID{k.a, k.table}] = shareVal(v)
	case isAFTIP(k):
		r.aft[aftID{k.aft, k.a}] = shareVal(v)
		r.aftRoom.Held(len(r.aft))
	default:
		r.other[k] = v
	}
}

// The values without a reason that route entries share.
var (
	plainInstalled = stateVal{status: statusInstalled}
	plainWithheld  = stateVal{status: statusWithheld}
	plainFailed    = stateVal{status: statusFailed}
	plainPending   = stateVal{status: statusPending}
)

// shareVal returns a pointer to v, shared with every entry holding the
// same status when v has no reason. Callers never write through it. The
// copy is made apart (new), not by taking v's address: that moved v to
// the heap on every call, shared or not (an allocation per entry set).
func shareVal(v stateVal) *stateVal {
	if v.reason == "" {
		switch v.status {
		case statusInstalled:
			return &plainInstalled
		case statusWithheld:
			return &plainWithheld
		case statusFailed:
			return &plainFailed
		case statusPending:
			return &plainPending
		}
	}
	p := new(stateVal)
	*p = v
	return p
}
