// Package maproom grows a Go map once for a bulk batch instead of an
// entry at a time. Grown entry by entry, a map of 100,000 entries
// allocates about twice its final size on the way and rehashes every
// entry at each doubling; the route cache, the gRIBI RIB and the AFT
// intent cache each take a batch of that size in a bulk load.
package maproom

import "maps"

// Min is the smallest batch Reserve makes room for: below it, growing
// costs little.
const Min = 1024

// Room is a map's room: how many entries it was made for or has held,
// whichever is more (a map keeps its room when entries leave it).
type Room int

// Held records that m holds n entries now.
func (r *Room) Held(n int) { *r = max(*r, Room(n)) }

// Reserve returns m, or a copy of it made with room for n more entries
// when that at least doubles it (a bulk load's batch) and m never had
// that room: a smaller batch grows the map as it goes.
func Reserve[K comparable, V any](m map[K]V, r *Room, n int) map[K]V {
	if n < Min || n < len(m) || Room(len(m)+n) <= *r {
		return m
	}
	c := make(map[K]V, len(m)+n)
	maps.Copy(c, m)
	*r = Room(len(m) + n)
	return c
}
