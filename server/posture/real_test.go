package posture

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/pinned"
	"github.com/guildhouse-co/kedge/dataplane/shm/segment"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// realState is what the real backends hold, read the way their consumers
// read it: the VPP plugin through a shm Reader, the shell programs through
// the pinned map.
type realState struct {
	ShmLevel  uint8
	ShmFlags  uint32
	BPFLevel  uint8
	Allowlist []netip.Prefix
}

func readReal(t *testing.T, r *segment.Reader, b *pinned.Backend) realState {
	t.Helper()
	s, err := r.Poll()
	if err != nil {
		t.Fatal(err)
	}
	lvl, err := b.Level()
	if err != nil {
		t.Fatal(err)
	}
	al, err := b.Allowlist()
	if err != nil {
		t.Fatal(err)
	}
	return realState{ShmLevel: s.Level, ShmFlags: s.Flags, BPFLevel: lvl, Allowlist: al}
}

// TestRealShmAndBPFRoundTrip runs 5→1→5 on the real governance segment
// (a file under the test's temp dir) and the real pinned BPF maps (root
// only), with the map also serving as the engine's level source, and
// checks that the end state is exactly the start state.
func TestRealShmAndBPFRoundTrip(t *testing.T) {
	needs.Root(t, "creates pinned BPF maps")
	seg := filepath.Join(t.TempDir(), "governance")
	w, err := segment.Open(seg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	reader, err := segment.OpenReader(seg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })

	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	pins := filepath.Join(bpfmap.DefaultBPFFS, "kedge-posture-test-"+hex.EncodeToString(suffix[:]))
	b, err := pinned.Open(pinned.WithPinDir(pins))
	if err != nil {
		needs.Unavailable(t, "BPF maps unavailable on this kernel: %v", err)
	}
	t.Cleanup(func() {
		b.Close()
		if err := os.RemoveAll(pins); err != nil {
			t.Errorf("remove pins: %v", err)
		}
	})
	base := bpfmap.Config{Allowlist: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16")}}

	st := openStore(t)
	steps := []Step{ShmStep(w), BPFMapStep(b, base)}
	rep := &reports{}
	start(t, st, Options{Steps: steps, LevelSource: b, OnReport: rep.add})
	waitFor(t, "start-up at 5", func() bool { return len(rep.all()) == 1 && effectiveLevel(st) == 5 })
	before := readReal(t, reader, b)
	if before.ShmLevel != 5 || before.BPFLevel != 5 || before.ShmFlags != 1 {
		t.Fatalf("start state %+v, want level 5 (flags 1: standard flows) in both", before)
	}

	setLevel(t, st, 1)
	waitFor(t, "level 1", func() bool { return effectiveLevel(st) == 1 && len(rep.all()) == 2 })
	if at1 := readReal(t, reader, b); at1.ShmLevel != 1 || at1.BPFLevel != 1 || at1.ShmFlags != 5 {
		t.Fatalf("at level 1: %+v, want level 1 (flags 5: allowlist-only)", at1)
	}
	setLevel(t, st, 5)
	waitFor(t, "level 5", func() bool { return effectiveLevel(st) == 5 && len(rep.all()) == 3 })
	after := readReal(t, reader, b)
	if after.ShmLevel != before.ShmLevel || after.ShmFlags != before.ShmFlags ||
		after.BPFLevel != before.BPFLevel || !slices.Equal(after.Allowlist, before.Allowlist) {
		t.Errorf("after 5→1→5: %+v, want the start state %+v", after, before)
	}
	for _, r := range rep.all() {
		if r.Result != ResultOK {
			t.Errorf("transition %d→%d: %s %+v", r.From, r.To, r.Result, r.Steps)
		}
	}
	// The engine's own map writes were never taken for external requests.
	if s := postureState(st, "source").Str(); s != SourceConfig {
		t.Errorf("source %q, want config", s)
	}
}
