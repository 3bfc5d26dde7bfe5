package tree

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"
)

// A bulk Set is one JSON value of 10 MB whose bulk is one array of
// 100,000 list entries, decoded while nothing else in the daemon is
// busy: the decoder splits such an array so that its parts are decoded
// on the other cores at the same time.
//
// Where an element begins cannot be told from the middle of the input
// without scanning it from the start (a '{' may be inside a string), so
// the split is a guess that the serial decoding itself checks: the
// first two elements give the bytes that separate one entry from the
// next and begin it (`},{"prefix":`), and a part starts where those
// bytes are next found past each 1/n of the rest of the input. The part
// before decodes on until its next element begins exactly there (then
// the guess was an element's start, and the part's decoding from there
// is what the serial decoder's would be) or passes it (then the part
// that guessed is dropped and the one before goes on in its place). An
// error is thus the serial decoder's: the first in document order, at
// the same offset.

// splitMinBytes is how much input must be left at an array's start for
// the decoder to split it: below it (2,400 routes) the decoding takes a
// couple of milliseconds, and a small Set pays nothing.
const splitMinBytes = 256 << 10

// splitWindow bounds the search for a part's first element: an array of
// entries that do not repeat their first member is not split.
const splitWindow = 64 << 10

// maxSplitParts bounds the parts whatever the cores.
const maxSplitParts = 8

// maxSplitRoom bounds the elements a part makes room for at its start
// (a 100,000-route Set's half is 50,000); past it the part grows by
// doubling.
const maxSplitRoom = 1 << 18

// splitPart is one part of a split array: its decoder, and what it
// found: its elements, then the guess it reached (next, an index into
// split.at), or the array's end (end, past the ']'), or an error.
type splitPart struct {
	q    jsonParser
	vals []any
	next int
	end  int
	err  error
	done chan struct{}
}

// split is an array being decoded in parts: at[k] is where part k+1
// starts, parts[k] its decoding.
type split struct {
	at    []int
	parts []*splitPart
	stop  atomic.Bool
	wg    sync.WaitGroup
}

// splitting reports whether the array whose first element starts at
// p.i is worth splitting.
func (p *jsonParser) splitting() bool {
	return p.splitMin > 0 && !p.inSplit && len(p.b)-p.i >= p.splitMin &&
		(p.splitParts > 1 || runtime.GOMAXPROCS(0) > 1)
}

// startSplit starts the parts of the array being decoded at depth, its
// first element [end0-?, end0) and its second starting at start1 and
// ending at end1; nil when no part's start is found.
func (p *jsonParser) startSplit(depth, end0, start1, end1 int) *split {
	// The separator and the second element's start up to the end of its
	// first member's name: what every entry's start looks like.
	n := 1
	if p.b[start1] == '{' {
		if c := bytes.IndexByte(p.b[start1:min(end1, start1+64)], ':'); c > 0 {
			n = c + 1
		}
	}
	pat := p.b[end0-1 : start1+n]
	lead := start1 - (end0 - 1) // from a match to the element's start
	parts := p.splitParts
	if parts == 0 {
		parts = min(runtime.GOMAXPROCS(0), maxSplitParts)
	}
	from := end1
	s := &split{}
	for k := 1; k < parts; k++ {
		o := max(from, start1+k*(len(p.b)-start1)/parts)
		if o >= len(p.b) {
			break
		}
		m := bytes.Index(p.b[o:min(len(p.b), o+splitWindow)], pat)
		if m < 0 {
			continue
		}
		at := o + m + lead
		s.at = append(s.at, at)
		from = at + 1
	}
	if len(s.at) == 0 {
		return nil
	}
	s.parts = make([]*splitPart, len(s.at))
	for k, at := range s.at {
		// Room for the part's elements if they are the size of the second,
		// but never more than its bytes could hold (two an element, with
		// the comma) nor than maxSplitRoom: a tiny second element must not
		// make a big array.
		end := len(p.b)
		if k+1 < len(s.at) {
			end = s.at[k+1]
		}
		room := min((end-at)/max(1, end1-start1)*9/8, (end-at)/2+1, maxSplitRoom)
		sp := &splitPart{q: jsonParser{b: p.b, i: at, share: p.share}, vals: make([]any, 0, room), next: -1, done: make(chan struct{})}
		if p.share {
			// Names are a parser's own: the merge makes a plan again
			// where a part begins, once.
			sp.q.names = &jsonNames{}
		}
		s.parts[k] = sp
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer close(sp.done)
			sp.decode(s, depth, k)
		}()
	}
	return s
}

// decode decodes part k's elements, as the serial decoder's array loop
// does, until its next element starts where a later part does, or the
// array ends, or an error.
func (sp *splitPart) decode(s *split, depth, k int) {
	q := &sp.q
	next := k + 1
	for !s.stop.Load() {
		v, err := q.value(depth+1, q.elemName())
		if err != nil {
			sp.err = err
			return
		}
		sp.vals = append(sp.vals, v)
		q.space()
		if q.i >= len(q.b) {
			sp.err = q.errf("unterminated array")
			return
		}
		if q.b[q.i] == ']' {
			sp.end = q.i + 1
			return
		}
		if q.b[q.i] != ',' {
			sp.err = q.errf("expected ',' or ']' in array")
			return
		}
		q.i++
		q.space()
		if next = s.after(next, q.i); next < len(s.at) && s.at[next] == q.i {
			sp.next = next
			return
		}
	}
}

// after returns the index of the first part starting at or after i,
// from index k on.
func (s *split) after(k, i int) int {
	for k < len(s.at) && s.at[k] < i {
		k++
	}
	return k
}

// join takes the array over from part k, whose start the serial
// decoding reached: the parts' elements after elems, following each
// part to the next it reached, to the array's end or an error.
func (p *jsonParser) join(s *split, k int, elems []any) ([]any, error) {
	defer s.end()
	var chain []*splitPart
	n := len(elems)
	for {
		sp := s.parts[k]
		<-sp.done
		chain = append(chain, sp)
		n += len(sp.vals)
		if sp.err != nil {
			return nil, sp.err
		}
		if sp.next < 0 {
			p.i = sp.end
			break
		}
		k = sp.next
	}
	// One copy into an array of the right size.
	a := make([]any, 0, n)
	a = append(a, elems...)
	for _, sp := range chain {
		a = append(a, sp.vals...)
	}
	return a, nil
}

// end stops the parts still decoding and waits for them: none reads the
// input once the array is decoded or has failed.
func (s *split) end() {
	s.stop.Store(true)
	s.wg.Wait()
}
