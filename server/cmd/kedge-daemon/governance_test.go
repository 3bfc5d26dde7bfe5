package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/dataplane/shm/segment"
)

// governance prints what a writer last put in the segment, and fails on a
// segment that is not there.
func TestGovernance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "governance")
	var out, errb bytes.Buffer
	if code := run([]string{"governance", "--shm-path", path}, nil, &out, &errb); code != 1 {
		t.Fatalf("governance of a missing segment: exit %d, %q %q; want 1", code, out.String(), errb.String())
	}
	w, err := segment.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, level := range []uint8{3, 1} {
		if err := w.Set(context.Background(), shm.Config{Level: level, Flags: 0x5}); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if code := run([]string{"governance", "--shm-path", path}, nil, &out, &errb); code != 0 {
			t.Fatalf("governance: exit %d, %s", code, errb.String())
		}
		re := regexp.MustCompile(`^level=` + string('0'+level) + ` sequence=\d*[02468] flags=0x5 written=\d{4}-\d\d-\d\dT\S+Z\n$`)
		if !re.MatchString(out.String()) {
			t.Errorf("after writing level %d: %q, want %v", level, out.String(), re)
		}
	}
}
