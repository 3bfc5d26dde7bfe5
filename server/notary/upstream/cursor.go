package upstream

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// CursorFile is the name of the durable cursor: the last checkpoint
// Quartermaster acknowledged, as its signed note.
const CursorFile = "upstream.cursor"

// ReadCursor returns the last acknowledged checkpoint stored at path
// (ok false when there is none yet). A cursor whose signature does not
// verify is an error: it would hide a rollback.
func ReadCursor(path string, v note.Verifier) (ledger.Checkpoint, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ledger.Checkpoint{}, false, nil
	}
	if err != nil {
		return ledger.Checkpoint{}, false, fmt.Errorf("read upstream cursor: %w", err)
	}
	cp, err := ledger.ParseCheckpoint(b, v)
	if err != nil {
		return ledger.Checkpoint{}, false, fmt.Errorf("read upstream cursor %s: %w", path, err)
	}
	return cp, true, nil
}

// writeCursor replaces the cursor durably (write, sync, rename, sync the
// directory), so a crash leaves the old or the new one.
func writeCursor(path string, cp ledger.Checkpoint) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write upstream cursor: %w", err)
	}
	if _, err := f.Write(cp.Note); err != nil {
		f.Close()
		return fmt.Errorf("write upstream cursor: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync upstream cursor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write upstream cursor: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("install upstream cursor: %w", err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("sync upstream cursor dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync upstream cursor dir: %w", err)
	}
	return nil
}
