package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed tree head: the log's origin, its size and root
// hash, and when it was signed.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
	Time   time.Time
	// Note is the signed note as stored and shipped.
	Note []byte
}

// checkpointBody formats the note text: origin, size, base64 root hash
// (the C2SP tlog-checkpoint lines), then a "time" extension line.
func checkpointBody(origin string, size int64, h tlog.Hash, at time.Time) string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %d\n", origin, size, base64.StdEncoding.EncodeToString(h[:]), at.UnixNano())
}

// SignCheckpoint signs a checkpoint for a tree.
func SignCheckpoint(s note.Signer, size int64, h tlog.Hash, at time.Time) (Checkpoint, error) {
	body := checkpointBody(s.Name(), size, h, at)
	msg, err := note.Sign(&note.Note{Text: body}, s)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return Checkpoint{Origin: s.Name(), Size: size, Hash: h, Time: time.Unix(0, at.UnixNano()), Note: msg}, nil
}

// ParseCheckpoint verifies a signed checkpoint with v and decodes it. A
// signature that does not verify, or a note signed by another key, wraps
// ErrTampered.
func ParseCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var inv *note.InvalidSignatureError
		var unv *note.UnverifiedNoteError
		if errors.As(err, &inv) || errors.As(err, &unv) {
			return Checkpoint{}, fmt.Errorf("verify checkpoint: %w: %w", ErrTampered, err)
		}
		return Checkpoint{}, fmt.Errorf("parse checkpoint: %w", err)
	}
	c, err := parseBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: origin %q is not the key's name %q", c.Origin, v.Name())
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

// ParseUnverified decodes a checkpoint's body without checking its
// signature (for reporting what a refused note claims).
func ParseUnverified(msg []byte) (Checkpoint, error) {
	i := bytes.Index(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, errors.New("parse checkpoint: no signature block")
	}
	c, err := parseBody(string(msg[:i+1]))
	c.Note = bytes.Clone(msg)
	return c, err
}

func parseBody(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return Checkpoint{}, errors.New("parse checkpoint: fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: bad tree size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("parse checkpoint: bad root hash %q", lines[2])
	}
	c := Checkpoint{Origin: lines[0], Size: size}
	copy(c.Hash[:], raw)
	for _, ext := range lines[3:] {
		if v, ok := strings.CutPrefix(ext, "time "); ok {
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Checkpoint{}, fmt.Errorf("parse checkpoint: bad time %q", v)
			}
			c.Time = time.Unix(0, ns)
		}
	}
	return c, nil
}
