package kernel

import (
	"slices"

	"github.com/guildhouse-co/kedge/dataplane/route"
)

// putSet is the keys a Patch puts, for its checks: no key twice, a delete
// of a key put again is no delete, a route the kernel removed is put back.
// The routes intent lists a change's puts in key order; then they are
// their own index, searched by halves, where a map of them was 10 MB (and
// its inserts a tenth of Patch's CPU) for a gRIBI bulk load's 72,000-entry
// batch. Puts out of order are indexed by a map, from the first one out
// of order on. It holds the keys alone (48 B a put), not the normalized
// routes (136 B): Patch normalizes each route again when it plans it.
type putSet struct {
	keys []route.Key // the puts' normalized keys; in key order while m is nil
	m    map[route.Key]struct{}
}

func normKey(n route.Route) route.Key { return route.Key{Table: n.Table, Dst: n.Dst, Metric: n.Metric} }

// putKey is r's normalized key, made without normalizing r's next hops
// (which would copy them): the key has none of their fields.
func putKey(r route.Route) route.Key {
	return normKey(route.Route{Dst: r.Dst, Table: r.Table, Metric: r.Metric}.Normalize())
}

// add adds keys[i], the puts before it having been added, and reports
// false when its key was added already.
func (s *putSet) add(i int) bool {
	k := s.keys[i]
	if s.m == nil {
		if i == 0 {
			return true
		}
		switch c := compareKey(s.keys[i-1], k); {
		case c < 0:
			return true
		case c == 0:
			return false
		}
		s.m = make(map[route.Key]struct{}, len(s.keys))
		for _, pk := range s.keys[:i] {
			s.m[pk] = struct{}{}
		}
	}
	if _, dup := s.m[k]; dup {
		return false
	}
	s.m[k] = struct{}{}
	return true
}

// has reports whether k is put; every put must have been added.
func (s *putSet) has(k route.Key) bool {
	if s.m != nil {
		_, ok := s.m[k]
		return ok
	}
	_, ok := slices.BinarySearchFunc(s.keys, k, compareKey)
	return ok
}
