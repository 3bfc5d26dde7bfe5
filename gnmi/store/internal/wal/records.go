package wal

import "fmt"

// Records calls fn with each intact record of segment id, in order, from
// its start until its written part ends (the end of the file, a zeroed
// header, or a record that does not check), without judging what follows
// or the chain of segments: it is for segments Replay no longer covers,
// such as those the store keeps past a snapshot for a consumer of its
// log, and it may read the segment being written (a record not yet
// complete ends the reading). fn's payload is valid only during the call.
func Records(dir string, id uint64, fn func(payload []byte) error) error {
	s, err := openSeg(dir, id)
	if err != nil {
		return err
	}
	defer s.f.Close()
	switch s.kind {
	case kindBadHeader:
		return fmt.Errorf("read log segment %s: %s", Name(id), s.why)
	case kindBlank:
		return nil
	}
	off := s.start()
	for {
		p, n, what, _, err := s.read(off)
		if err != nil {
			return err
		}
		if what != foundRecord {
			return nil
		}
		if err := fn(p); err != nil {
			return err
		}
		off += n
	}
}
