package routes

// stateRecord is the status and reason the state writer last committed
// per entry. Route entries, nearly all of a big table, are kept apart
// under a 24-byte key with a pointer to their value, which for a status
// without a reason is one shared per status: a map slot of 32 B instead
// of the 88 of a stateKey and its stateVal. At 100,000 routes the slots
// were 10-15 MB, depending on where the map's growth stopped. Pods and
// gRIBI entries, far fewer, keep the whole key.
type stateRecord struct {
	routes map[routeID]*stateVal
	other  map[stateKey]stateVal
}

// routeID is a /kedge/routes entry's keys.
type routeID struct {
	prefix string
	table  uint32
}

// newStateRecord returns an empty record with room for n route entries.
func newStateRecord(n int) *stateRecord {
	return &stateRecord{routes: make(map[routeID]*stateVal, n), other: map[stateKey]stateVal{}}
}

func (r *stateRecord) len() int { return len(r.routes) + len(r.other) }

// isRoute reports whether k names a /kedge/routes entry.
func isRoute(k stateKey) bool { return !k.pod && k.aft == 0 }

// get returns what was last committed for k, and whether anything was.
func (r *stateRecord) get(k stateKey) (stateVal, bool) {
	if !isRoute(k) {
		v, ok := r.other[k]
		return v, ok
	}
	if v := r.routes[routeID{k.a, k.table}]; v != nil {
		return *v, true
	}
	return stateVal{}, false
}

// set records v as committed for k.
func (r *stateRecord) set(k stateKey, v stateVal) {
	if !isRoute(k) {
		r.other[k] = v
		return
	}
	r.routes[routeID{k.a, k.table}] = shareVal(v)
}

// The values without a reason that route entries share.
var (
	plainInstalled = stateVal{status: statusInstalled}
	plainWithheld  = stateVal{status: statusWithheld}
	plainFailed    = stateVal{status: statusFailed}
	plainPending   = stateVal{status: statusPending}
)

// shareVal returns a pointer to v, shared with every entry holding the
// same status when v has no reason. Callers never write through it.
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
	return &v
}
