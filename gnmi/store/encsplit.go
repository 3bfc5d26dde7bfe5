package store

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// A bulk commit's log record (100,000 routes, 500,000 changes, 12 MB)
// is encoded while the commit holds the store and nothing else in the
// daemon is busy, so its changes are encoded in parts, one a core, and
// the parts' bytes joined. Each part starts at a group's start (a config
// change to another instance than the config change before it), where
// the serial encoder starts a group too, and front-codes its first path
// against that previous instance's path, as the serial encoder would:
// the record is byte for byte the same.

// splitEncodeMin is the fewest changes encoded in parts: below it (about
// 4,000 routes) the encoding takes a few milliseconds.
const splitEncodeMin = 20000

// encodeParts is how many parts n changes are encoded in.
func encodeParts(n int) int {
	if n < splitEncodeMin {
		return 1
	}
	return min(runtime.GOMAXPROCS(0), 8)
}

// addAllSplit encodes changes as addAll does, in parts (at most; fewer
// when groups are few) on as many goroutines, this one encoding the
// first, on an encoder that add has left nothing pending in.
//
// Each part writes into its own region of the buffer's spare room, as
// much as changeBytes a change, and the parts are moved together after:
// a bulk record is not allocated twice. A part that outgrows its region
// writes into a buffer of its own, and then the parts are joined into a
// new one.
func (e *encoder) addAllSplit(changes []tree.Change, parts int) {
	starts := groupStarts(changes, parts)
	if len(starts) == 0 {
		e.addAll(changes)
		return
	}
	full := e.buf[:cap(e.buf)]
	base := len(e.buf)
	// region returns where the room for change i starts.
	region := func(i int) int { return min(base+i*changeBytes, len(full)) }
	rest := make([]*encoder, len(starts))
	var wg sync.WaitGroup
	for k, at := range starts {
		end := len(changes)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		p := &encoder{buf: full[region(at):region(at):region(end)]}
		// The previous group's instance is the last config change's
		// before the part.
		for i := at - 1; i >= 0; i-- {
			if changes[i].Node.Config {
				p.prev = p.paths.AppendInst(nil, changes[i].In)
				break
			}
		}
		rest[k] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.addAll(changes[at:end])
		}()
	}
	e.buf = full[:base:region(starts[0])]
	e.addAll(changes[:starts[0]])
	wg.Wait()
	inPlace := inside(e.buf, full, 0)
	n := len(e.buf)
	for k, p := range rest {
		inPlace = inPlace && inside(p.buf, full, region(starts[k]))
		n += len(p.buf)
	}
	if inPlace {
		// Each part moves down to where the one before it ends, never
		// past where the next begins.
		e.buf = full[:len(e.buf)]
		for _, p := range rest {
			e.buf = append(e.buf, p.buf...)
		}
	} else {
		// With the room the caller left past the changes' estimate.
		spare := max(0, len(full)-base-len(changes)*changeBytes)
		out := append(make([]byte, 0, n+spare), e.buf...)
		for _, p := range rest {
			out = append(out, p.buf...)
		}
		e.buf = out
	}
	e.prev = append(e.prev[:0], rest[len(rest)-1].prev...)
}

// inside reports whether b is still the region of full that starts at
// off (a part that outgrew it has another array).
func inside(b, full []byte, off int) bool {
	return cap(b) == 0 || unsafe.SliceData(b) == unsafe.SliceData(full[off:])
}

// groupStarts returns where parts 2 to n of changes start: the first
// group start at or after each 1/n of them, where a group starts at a
// config change whose instance is not the previous config change's.
func groupStarts(changes []tree.Change, n int) []int {
	var starts []int
	from := 1
	for k := 1; k < n; k++ {
		i := max(from, k*len(changes)/n)
		last := lastConfigIn(changes[:i])
		for ; i < len(changes); i++ {
			if c := changes[i]; c.Node.Config {
				if c.In != last {
					break
				}
			}
		}
		if i >= len(changes) {
			break
		}
		starts = append(starts, i)
		from = i + 1
	}
	return starts
}

// lastConfigIn is the instance of the last config change of changes, or
// the zero Ident.
func lastConfigIn(changes []tree.Change) tree.Ident {
	for i := len(changes) - 1; i >= 0; i-- {
		if changes[i].Node.Config {
			return changes[i].In
		}
	}
	return tree.Ident{}
}
