package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Plan is what Repair does about a damaged log.
type Plan struct {
	// Rewrite is the damaged segment when it keeps records: it is
	// rewritten with the Keep records before the damage, and the
	// original goes aside.
	Rewrite string
	Keep    int
	// Move lists the segments that go aside whole: the damaged one if it
	// keeps nothing, and every later one.
	Move []string
	// Create is an empty segment made for the log to go on in, when no
	// segment is left.
	Create string
}

// Plan says what Repair would do.
func (e *DamageError) Plan() (Plan, error) {
	var p Plan
	if e.present {
		path := filepath.Join(e.dir, Name(e.seg))
		keep, err := e.kept(nil)
		if err != nil {
			return Plan{}, err
		}
		if keep > 0 {
			p.Rewrite, p.Keep = path, keep
		} else {
			p.Move = append(p.Move, path)
		}
	}
	for _, id := range e.later {
		p.Move = append(p.Move, filepath.Join(e.dir, Name(id)))
	}
	if e.recreate {
		p.Create = filepath.Join(e.dir, Name(max(e.seg, next(e.later))))
	}
	return p, nil
}

// kept reads the damaged segment's records before the damage, passing
// each to fn (nil: only count them).
func (e *DamageError) kept(fn func(payload []byte)) (int, error) {
	if !e.present || e.Off <= e.start {
		return 0, nil
	}
	s, err := openSeg(e.dir, e.seg)
	if err != nil {
		return 0, err
	}
	defer s.f.Close()
	if e.legacy {
		s.kind = kindLegacy
	} else {
		s.kind = kindCurrent
	}
	n := 0
	for off := e.start; off < e.Off; {
		p, size, what, why, err := s.read(off)
		if err != nil {
			return 0, err
		}
		if what != foundRecord || off+size > e.Off {
			return 0, fmt.Errorf("repair %s: the record at offset %d changed since the check (%s)", Name(e.seg), off, why)
		}
		if fn != nil {
			fn(p)
		}
		n++
		off += size
	}
	return n, nil
}

// Repair drops every record from the damage on, keeping the originals in
// aside (an existing directory on the same filesystem): the
// damaged segment is rewritten with the records before the damage, in
// the current format and linked to the segment before it (the original
// is hard-linked into aside first), and every later segment is moved
// into aside. Each step leaves a log that the next Replay either accepts
// or reports as damaged again, never one that silently lost records.
func Repair(e *DamageError, aside string) error {
	plan, err := e.Plan()
	if err != nil {
		return err
	}
	if plan.Rewrite != "" {
		if err := rewrite(e, aside); err != nil {
			return err
		}
	}
	for _, path := range plan.Move {
		if err := MoveAside(path, aside); err != nil {
			return err
		}
	}
	if e.recreate {
		l, err := Create(e.dir, max(e.seg, next(e.later)), Link{}, Options{SegmentSize: HeaderSize + RecordHeaderSize + 1, Base: e.seg})
		if err != nil {
			return fmt.Errorf("repair log: %w", err)
		}
		if err := l.Close(); err != nil {
			return err
		}
	}
	if err := syncDir(aside); err != nil {
		return err
	}
	return syncDir(e.dir)
}

// MoveAside moves path into the directory aside, never over a file
// already there.
func MoveAside(path, aside string) error {
	dst := filepath.Join(aside, filepath.Base(path))
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("move %s aside: %s already exists", filepath.Base(path), dst)
	}
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("move %s aside: %w", filepath.Base(path), err)
	}
	return nil
}

// rewrite replaces the damaged segment with a copy of its records before
// the damage.
func rewrite(e *DamageError, aside string) error {
	src := filepath.Join(e.dir, Name(e.seg))
	var body []byte
	off := int64(HeaderSize)
	if _, err := e.kept(func(p []byte) {
		body = appendRecord(body, e.seg, off, p)
		off += int64(RecordHeaderSize + len(p))
	}); err != nil {
		return err
	}
	tmp := src + ".repair"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("repair log: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("repair log: %w", err)
	}
	h := header{id: e.seg, size: HeaderSize + int64(len(body)), prev: e.prev}
	_, err = f.Write(append(h.encode(), body...))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("repair log: write %s: %w", filepath.Base(tmp), err)
	}
	if err := os.Link(src, filepath.Join(aside, filepath.Base(src))); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("repair log: keep the original: %w", err)
	}
	if err := os.Rename(tmp, src); err != nil {
		return fmt.Errorf("repair log: %w", err)
	}
	return nil
}

// next is the number after the highest of ids (0 for none).
func next(ids []uint64) uint64 {
	n := uint64(0)
	for _, id := range ids {
		n = max(n, id+1)
	}
	return n
}
