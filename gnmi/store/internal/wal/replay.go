package wal

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ErrDamaged: the log is damaged before its end. Errors matching it are
// *DamageError.
var ErrDamaged = errors.New("write-ahead log damaged")

// DamageError says where the log is damaged and what recovery (Repair)
// would drop: every record from that spot on, in that segment and in
// every later one. Replaying records after a gap would build a tree that
// never existed, so nothing after the damage is kept.
type DamageError struct {
	Path   string // the damaged segment, or where a missing one belongs
	Off    int64  // where its intact records end
	Reason string
	// Dropped counts the valid records recovery would drop.
	Dropped int
	// Unknown: bytes are missing (a truncated or deleted segment, or a
	// damaged old-format one), so more may be lost than Dropped counts.
	Unknown bool

	dir     string
	seg     uint64
	present bool
	legacy  bool
	start   int64 // where seg's records start
	prev    Link  // the newest segment before seg holding records
	later   []uint64
	// recreate: no segment is left, so Repair makes an empty one for
	// the log to go on in (else the next Replay finds the same damage).
	recreate bool
}

func (e *DamageError) Error() string {
	return fmt.Sprintf("write-ahead log damaged: %s at offset %d: %s", e.Path, e.Off, e.Reason)
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamageError) Is(target error) bool { return target == ErrDamaged }

// Torn is a record torn by a crash at the end of the newest segment. It
// was never acknowledged; Replay drops it.
type Torn struct {
	Path   string
	Off    int64
	Reason string
}

// Result is what Replay found.
type Result struct {
	// Next is the number for the next segment (above every file there).
	Next uint64
	// Prev is the newest segment holding records and where they end: the
	// next segment's header links to it.
	Prev    Link
	Records int
	Torn    *Torn
	// Obsolete lists segments to remove once the next one exists: those
	// the snapshot covers and those holding no records.
	Obsolete []uint64
	// Trim lists segments whose files extend past their records' end:
	// once the next segment exists, they may be cut there.
	Trim []Link
}

// kind of segment file.
type kind int

const (
	kindCurrent kind = iota // this format, with a valid header
	kindLegacy              // before segment headers
	kindBlank               // no header: zeros (a creation cut short, or an empty old segment)
	kindBadHeader
)

type seg struct {
	id   uint64
	path string
	kind kind
	hdr  header
	why  string // for kindBadHeader
	f    *os.File
	r    *reader
}

func (s *seg) start() int64 {
	if s.kind == kindLegacy {
		return 0
	}
	return HeaderSize
}

func (s *seg) read(off int64) ([]byte, int64, found, string, error) {
	if s.kind == kindLegacy {
		return s.r.legacyRecord(off)
	}
	return s.r.record(off)
}

// Replay reads segments first and up of dir in order and calls apply
// with every record of the log, then returns what it found; it changes
// no file. With snapshot set (a snapshot covers the segments below
// first), at least one segment from first on must exist: the log always
// has a segment being written. On damage before the end of the log it
// stops applying and returns a *DamageError, calling dropped with each
// valid record that recovery would drop. Either callback's payload is
// valid only during the call.
func Replay(dir string, first uint64, snapshot bool, apply, dropped func(payload []byte) error) (*Result, error) {
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	res := &Result{Next: first}
	if len(all) > 0 {
		res.Next = max(first, all[len(all)-1]+1)
	}
	var segs []*seg
	for _, id := range all {
		if id < first {
			res.Obsolete = append(res.Obsolete, id)
			continue
		}
		s, err := openSeg(dir, id)
		if err != nil {
			closeSegs(segs)
			return nil, err
		}
		segs = append(segs, s)
	}
	defer func() { closeSegs(segs) }()

	// What the headers promise about the segments before them.
	expect := map[uint64]int64{}     // a segment's records end exactly here
	mustBeEmpty := map[uint64]bool{} // a successor skipped it: no records
	var pending []*DamageError       // chain breaks, found at their position below
	present := map[uint64]*seg{}
	for _, s := range segs {
		present[s.id] = s
	}
	newest := -1 // the newest segment that is not blank
	for i, s := range segs {
		if s.kind != kindBlank {
			newest = i
		}
		if s.kind == kindLegacy {
			// Old-format segments come before every current one.
			for _, o := range segs[:i] {
				if o.kind == kindCurrent {
					s.kind, s.why = kindBadHeader, "no segment header (an old-format segment after "+Name(o.id)+")"
				}
			}
		}
		if s.kind != kindCurrent {
			continue
		}
		if s.hdr.base > first {
			s.kind, s.why = kindBadHeader, fmt.Sprintf("it was made after a snapshot covering the segments below %d, but the snapshot there covers only those below %d (tree.db replaced by an older copy, or removed?)", s.hdr.base, first)
			continue
		}
		p := s.hdr.prev
		if p.End == 0 || p.ID < first {
			for _, o := range segs[:i] {
				mustBeEmpty[o.id] = true
			}
			continue
		}
		if p.ID >= s.id {
			s.kind, s.why = kindBadHeader, fmt.Sprintf("bad segment header: it links to segment %d, which is not older", p.ID)
			continue
		}
		if _, ok := present[p.ID]; !ok {
			pending = append(pending, &DamageError{Path: filepath.Join(dir, Name(p.ID)), seg: p.ID,
				Reason: fmt.Sprintf("the segment is missing (%s says it held records up to offset %d)", Name(s.id), p.End), Unknown: true})
			continue
		}
		if e, ok := expect[p.ID]; ok && e != p.End {
			s.kind, s.why = kindBadHeader, fmt.Sprintf("bad segment header: it says %s ends at %d, an earlier segment's header says %d", Name(p.ID), p.End, e)
			continue
		}
		expect[p.ID] = p.End
		for _, o := range segs[:i] {
			if o.id > p.ID {
				mustBeEmpty[o.id] = true
			}
		}
	}

	slices.SortFunc(pending, func(a, b *DamageError) int { return cmp.Compare(a.seg, b.seg) })

	// Visit segments and missing ones in order; the first damage wins.
	var dmg *DamageError
	last := Link{} // the newest segment holding records so far
	drop := func(p []byte) error {
		dmg.Dropped++
		return dropped(p)
	}
	for i, s := range segs {
		for len(pending) > 0 && pending[0].seg < s.id {
			if dmg == nil {
				dmg = pending[0]
				dmg.prev = last
			}
			pending = pending[1:]
		}
		if dmg != nil {
			dmg.later = append(dmg.later, s.id)
			if err := countAll(s, drop, &dmg.Unknown); err != nil {
				return nil, err
			}
			continue
		}
		end, d, torn, err := check(s, i == newest, expect, mustBeEmpty, apply, &res.Records)
		if err != nil {
			return nil, err
		}
		if d != nil {
			dmg = d
			dmg.prev = last
			if d.present {
				if err := countFrom(s, d.Off, drop, &d.Unknown); err != nil {
					return nil, err
				}
			}
			continue
		}
		if torn != nil {
			res.Torn = torn
		}
		if end > s.start() {
			last = Link{ID: s.id, End: end}
			if st, err := s.f.Stat(); err == nil && st.Size() > end {
				res.Trim = append(res.Trim, last)
			}
		} else {
			res.Obsolete = append(res.Obsolete, s.id)
		}
	}
	if dmg == nil && len(pending) > 0 {
		dmg = pending[0]
		dmg.prev = last
	}
	if dmg == nil && snapshot && newest < 0 {
		dmg = &DamageError{Path: filepath.Join(dir, Name(first)), seg: first, Unknown: true, recreate: true,
			Reason: "the segment is missing: the snapshot says the log goes on in it, and no segment from it on is there"}
		for _, s := range segs {
			dmg.later = append(dmg.later, s.id) // blank ones
		}
	}
	if dmg != nil {
		dmg.dir = dir
		return nil, dmg
	}
	res.Prev = last
	slices.Sort(res.Obsolete)
	return res, nil
}

func openSeg(dir string, id uint64) (*seg, error) {
	s := &seg{id: id, path: filepath.Join(dir, Name(id))}
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("open log segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat log segment: %w", err)
	}
	s.f, s.r = f, newReader(f, id, st.Size())
	head, err := s.r.bytes(0, int(min(st.Size(), HeaderSize)))
	if err != nil {
		f.Close()
		return nil, err
	}
	h, herr := decodeHeader(head)
	switch {
	case herr == nil && h.id != id:
		s.kind, s.why = kindBadHeader, fmt.Sprintf("bad segment header: it names segment %d", h.id)
	case herr == nil:
		s.kind, s.hdr = kindCurrent, h
	case isZero(head):
		s.kind = kindBlank
	default:
		if _, _, what, _, err := s.r.legacyRecord(0); err != nil {
			f.Close()
			return nil, err
		} else if what == foundRecord && !strings.HasPrefix(string(head), magic) {
			s.kind = kindLegacy
		} else {
			s.kind, s.why = kindBadHeader, "bad segment header: neither a header nor an old-format record ("+herr.Error()+")"
		}
	}
	return s, nil
}

func closeSegs(segs []*seg) {
	for _, s := range segs {
		s.f.Close()
	}
}

// check reads one segment, applying its records, and returns where they
// end, or the damage, or the torn record at the end of the newest
// segment.
func check(s *seg, newest bool, expect map[uint64]int64, mustBeEmpty map[uint64]bool,
	apply func([]byte) error, records *int) (int64, *DamageError, *Torn, error) {
	damage := func(off int64, why string) *DamageError {
		return &DamageError{Path: s.path, Off: off, Reason: why, seg: s.id, present: true,
			legacy: s.kind == kindLegacy, start: s.start()}
	}
	switch s.kind {
	case kindBadHeader:
		return 0, damage(0, s.why), nil, nil
	case kindBlank:
		// A creation cut short holds zeros; a valid record anywhere
		// means the header itself was zeroed.
		at, _, err := s.r.next(HeaderSize)
		if err != nil {
			return 0, nil, nil, err
		}
		if at >= 0 {
			return 0, damage(0, fmt.Sprintf("the segment header is zeroed but a record follows at offset %d", at)), nil, nil
		}
		return 0, nil, nil, nil
	}
	want, chained := expect[s.id]
	// The newest segment keeps the size it was made with: only a
	// finished segment is ever cut back.
	resized := s.kind == kindCurrent && newest && s.r.size != s.hdr.size
	off := s.start()
	for {
		if chained && off == want {
			return off, nil, nil, nil
		}
		p, n, what, why, err := s.read(off)
		if err != nil {
			return 0, nil, nil, err
		}
		if what == foundRecord {
			if mustBeEmpty[s.id] {
				return 0, damage(off, "a record in a segment that a later segment's header says holds none"), nil, nil
			}
			if chained && off+n > want {
				return 0, damage(off, fmt.Sprintf("a record crosses offset %d, where the next segment's header says this one ends", want)), nil, nil
			}
			if err := apply(p); err != nil {
				return 0, nil, nil, fmt.Errorf("log segment %s at offset %d: %w", Name(s.id), off, err)
			}
			*records++
			off += n
			continue
		}
		// The written part ends here, cleanly or not.
		if resized {
			d := damage(off, fmt.Sprintf("the file is %d bytes but was created with %d", s.r.size, s.hdr.size))
			d.Unknown = s.r.size < s.hdr.size
			return 0, d, nil, nil
		}
		if chained {
			if what == foundBad {
				d := damage(off, why)
				d.Unknown = s.r.size < want // cut short: what was there is gone
				return 0, d, nil, nil
			}
			d := damage(off, fmt.Sprintf("the records end at offset %d but the next segment's header says %d", off, want))
			d.Unknown = true
			return 0, d, nil, nil
		}
		return finish(s, off, what, why, newest, damage)
	}
}

// finish judges where a segment's records end when no successor says
// where that must be: a finished segment must end cleanly; the newest
// may end in a record torn by a crash, but only if nothing valid follows.
func finish(s *seg, off int64, what found, why string, newest bool,
	damage func(int64, string) *DamageError) (int64, *DamageError, *Torn, error) {
	if what == foundEOF {
		return off, nil, nil, nil
	}
	if s.kind == kindLegacy {
		return finishLegacy(s, off, what, why, newest, damage)
	}
	at, data, err := s.r.next(off + 1)
	if err != nil {
		return 0, nil, nil, err
	}
	if at >= 0 {
		if what == foundZero {
			why = "a zeroed record header"
		}
		return 0, damage(off, fmt.Sprintf("%s, and a valid record follows at offset %d", why, at)), nil, nil
	}
	if what == foundZero {
		// The end of the written part, unless data follows the zeroed
		// header: then a crash wrote a record's later sectors but not
		// its first (newest segment), or the segment is damaged.
		if !data {
			return off, nil, nil, nil
		}
		why = "a zeroed record header followed by data"
	}
	if !newest {
		return 0, damage(off, why+" in a finished segment"), nil, nil
	}
	return off, nil, &Torn{Path: s.path, Off: off, Reason: why}, nil
}

// finishLegacy judges the end of an old-format segment, which has no
// record offsets to search for: whatever follows the records must be
// zeros, except the bytes of a torn final record in the newest one.
func finishLegacy(s *seg, off int64, what found, why string, newest bool,
	damage func(int64, string) *DamageError) (int64, *DamageError, *Torn, error) {
	rest := off
	if what == foundBad && newest {
		if h, err := s.r.bytes(off, int(min(s.r.size-off, legacyHeader))); err == nil && len(h) == legacyHeader {
			if n := int64(le32(h)); n > 0 && off+legacyHeader+n <= s.r.size {
				rest = off + legacyHeader + n // the torn record's own bytes
			}
		}
		if rest == off {
			return 0, damage(off, why), nil, nil
		}
	}
	zero, err := s.r.zeroFrom(rest)
	if err != nil {
		return 0, nil, nil, err
	}
	switch {
	case !zero && what == foundZero:
		return 0, damage(off, "a zeroed record header followed by data"), nil, nil
	case !zero:
		return 0, damage(off, why+", followed by data"), nil, nil
	case what == foundBad && !newest:
		return 0, damage(off, why+" in a finished segment"), nil, nil
	case what == foundBad:
		return off, nil, &Torn{Path: s.path, Off: off, Reason: why}, nil
	}
	return off, nil, nil, nil
}

// countFrom passes every valid record after off to fn: the records after
// a damaged spot, found by searching for the next record after each bad
// one.
func countFrom(s *seg, off int64, fn func([]byte) error, unknown *bool) error {
	if s.kind == kindLegacy {
		*unknown = true // no way to find records after a bad spot
		return nil
	}
	// A current segment, or one whose header is damaged or zeroed: any
	// records in it are in the current format.
	off = max(off, HeaderSize)
	for {
		p, n, what, _, err := s.read(off)
		if err != nil {
			return err
		}
		switch what {
		case foundRecord:
			if err := fn(p); err != nil {
				return err
			}
			off += n
			continue
		case foundEOF:
			return nil
		}
		at, _, err := s.r.next(off + 1)
		if err != nil || at < 0 {
			return err
		}
		off = at
	}
}

// countAll passes every valid record of a segment after the damage to fn.
func countAll(s *seg, fn func([]byte) error, unknown *bool) error {
	switch s.kind {
	case kindLegacy:
		off := int64(0)
		for {
			p, n, what, _, err := s.r.legacyRecord(off)
			if err != nil {
				return err
			}
			if what != foundRecord {
				if what == foundBad {
					*unknown = true
				}
				return nil
			}
			if err := fn(p); err != nil {
				return err
			}
			off += n
		}
	}
	return countFrom(s, HeaderSize, fn, unknown)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
