package ledger

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Report is what Verify found.
type Report struct {
	Origin      string
	Entries     int64
	Checkpoints int
	// Last is the last checkpoint in the log.
	Last Checkpoint
	// TornBytes is the size of a torn final write Open would drop (not an
	// error: it was never acknowledged).
	TornBytes int64
	// Against is the outside checkpoint the log was checked against.
	Against *Checkpoint
}

// Verify checks a ledger directory offline without changing it: every
// frame's checksum, every checkpoint's signature, and that the entries
// hash to every checkpoint (the hashes file is not trusted: every hash is
// recomputed). With against (a signed checkpoint from elsewhere, such as
// the last one Quartermaster acknowledged), it also checks that the log
// extends it: a shorter log wraps ErrRolledBack, a different history
// ErrFork.
func Verify(dir string, v note.Verifier, against []byte) (Report, error) {
	path := filepath.Join(dir, LogFile)
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("verify notary log: %w", err)
	}
	defer f.Close()
	var hashes memHashes
	rep := Report{}
	res, err := scanLog(path, f, visitor{
		entry: func(i int64, p []byte) error { return hashes.add(i, p) },
		checkpoint: func(size int64, msg []byte) error {
			cp, err := ParseCheckpoint(msg, v)
			if err != nil {
				return fmt.Errorf("verify notary log %s: checkpoint %d (size %d): %w", path, rep.Checkpoints, size, err)
			}
			h, err := tlog.TreeHash(size, &hashes)
			if err != nil {
				return fmt.Errorf("verify notary log: %w", err)
			}
			if h != cp.Hash {
				return fmt.Errorf("verify notary log %s: %w: the first %d entries hash to %s, checkpoint %d signed %s",
					path, ErrTampered, size, h, rep.Checkpoints, cp.Hash)
			}
			rep.Checkpoints++
			rep.Last = cp
			return nil
		},
	})
	if err != nil {
		return rep, err
	}
	if res.empty {
		return rep, fmt.Errorf("verify notary log %s: empty file", path)
	}
	if res.origin != v.Name() {
		return rep, fmt.Errorf("verify notary log %s: it belongs to %q, the key is %q", path, res.origin, v.Name())
	}
	rep.Origin = res.origin
	rep.Entries = int64(len(res.offsets))
	hashes = hashes[:tlog.StoredHashCount(rep.Entries)]
	if res.torn {
		rep.TornBytes = res.tornTo - res.end
	}
	if against != nil {
		cp, err := ParseCheckpoint(against, v)
		if err != nil {
			return rep, fmt.Errorf("verify against checkpoint: %w", err)
		}
		rep.Against = &cp
		if cp.Size > rep.Entries {
			return rep, fmt.Errorf("verify notary log %s: %w: it holds %d entries, the checkpoint covers %d",
				path, ErrRolledBack, rep.Entries, cp.Size)
		}
		h, err := tlog.TreeHash(cp.Size, &hashes)
		if err != nil {
			return rep, fmt.Errorf("verify notary log: %w", err)
		}
		if h != cp.Hash {
			return rep, fmt.Errorf("verify notary log %s: %w: its first %d entries hash to %s, the checkpoint signed %s",
				path, ErrFork, cp.Size, h, cp.Hash)
		}
	}
	return rep, nil
}
