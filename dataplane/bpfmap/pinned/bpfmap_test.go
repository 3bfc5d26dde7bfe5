package pinned

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/internal/bpfsys"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// snapshot is what the maps hold, for comparisons.
type snapshot struct {
	Level     uint8
	Allowlist []netip.Prefix
}

func snap(t *testing.T, b *Backend) snapshot {
	t.Helper()
	lvl, err := b.Level()
	if err != nil {
		t.Fatal(err)
	}
	al, err := b.Allowlist()
	if err != nil {
		t.Fatal(err)
	}
	return snapshot{lvl, al}
}

var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestOpenCreatesThenAdopts(t *testing.T) {
	requireBPF(t)
	dir := testPinDir(t)
	b := openBackend(t, dir)
	for _, name := range []string{bpfsys.PinLevel, bpfsys.PinAllow4, bpfsys.PinAllow6} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("pin %s: %v", name, err)
		}
	}
	if got := snap(t, b); got.Level != 0 || len(got.Allowlist) != 0 {
		t.Errorf("fresh maps = %+v, want level 0 and no allowlist", got)
	}
	cfg := bpfmap.Config{Level: 3, Allowlist: pfx("10.9.0.0/16", "fd00:9::/48")}
	if err := b.Set(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// A restarted daemon adopts the pins and changes nothing by opening.
	b2 := openBackend(t, dir)
	want := snapshot{3, cfg.Allowlist}
	if diff := cmp.Diff(want, snap(t, b2), cmpPrefix); diff != "" {
		t.Errorf("adopted maps differ (-want +got):\n%s", diff)
	}
}

func TestOpenRefusesWrongSpec(t *testing.T) {
	requireBPF(t)
	cases := []struct {
		name string
		pin  string
		spec ebpf.MapSpec
	}{
		{"level as hash", bpfsys.PinLevel, ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1}},
		{"level u64 value", bpfsys.PinLevel, ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}},
		{"level two entries", bpfsys.PinLevel, ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 2}},
		{"allow4 as array", bpfsys.PinAllow4, ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 1, MaxEntries: 1024}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := testPinDir(t)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			m, err := ebpf.NewMap(&tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Pin(filepath.Join(dir, tc.pin)); err != nil {
				t.Fatal(err)
			}
			b, err := Open(WithPinDir(dir))
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, bpfmap.ErrSpecMismatch) {
				t.Fatalf("Open = %v, want ErrSpecMismatch", err)
			}
			// The foreign pin is still there, still the same map.
			again, err := ebpf.LoadPinnedMap(filepath.Join(dir, tc.pin), nil)
			if err != nil {
				t.Fatalf("foreign pin gone: %v", err)
			}
			defer again.Close()
			if again.Type() != tc.spec.Type || again.MaxEntries() != tc.spec.MaxEntries {
				t.Errorf("foreign pin changed: %v/%d", again.Type(), again.MaxEntries())
			}
		})
	}
}

func TestSetValidates(t *testing.T) {
	requireBPF(t)
	b := openBackend(t, testPinDir(t))
	ctx := context.Background()
	for _, lvl := range []uint8{0, 6} {
		if err := b.Set(ctx, bpfmap.Config{Level: lvl}); !errors.Is(err, bpfmap.ErrInvalidLevel) {
			t.Errorf("Set(level %d) = %v, want ErrInvalidLevel", lvl, err)
		}
	}
	if err := b.Set(ctx, bpfmap.Config{Level: 5, Allowlist: []netip.Prefix{{}}}); err == nil {
		t.Error("Set with an invalid prefix succeeded")
	}
	if err := b.Set(ctx, bpfmap.Config{Level: 5, CgroupPath: t.TempDir()}); !errors.Is(err, bpfmap.ErrNotCgroup2) {
		t.Errorf("Set with a non-cgroup directory = %v, want ErrNotCgroup2", err)
	}
	// The level is still written when the program cannot be attached: the
	// map is shared state.
	if lvl, err := b.Level(); err != nil || lvl != 5 {
		t.Errorf("Level() = %d, %v; want 5", lvl, err)
	}
}

func TestSetIdempotent(t *testing.T) {
	requireBPF(t)
	rec := &recorder{}
	b := openBackend(t, testPinDir(t), WithLogger(slog.New(rec)))
	ctx := context.Background()
	cfg := bpfmap.Config{Level: 2, Allowlist: pfx("10.1.2.3/16", "10.1.0.0/16", "192.0.2.0/24", "2001:db8::/32")}
	if err := b.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	first := snap(t, b)
	want := snapshot{2, pfx("10.1.0.0/16", "192.0.2.0/24", "2001:db8::/32")}
	if diff := cmp.Diff(want, first, cmpPrefix); diff != "" {
		t.Errorf("after Set (-want +got):\n%s", diff)
	}
	rec.take()
	if err := b.Set(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if msgs := rec.take(); len(msgs) != 0 {
		t.Errorf("second identical Set logged writes: %q", msgs)
	}
	if diff := cmp.Diff(first, snap(t, b), cmpPrefix); diff != "" {
		t.Errorf("second Set changed the maps (-first +now):\n%s", diff)
	}
}

// Test5To1To5 shows that escalating and coming back restores the exact
// starting map contents.
func Test5To1To5(t *testing.T) {
	requireBPF(t)
	b := openBackend(t, testPinDir(t))
	ctx := context.Background()
	normal := bpfmap.Config{Level: 5, Allowlist: pfx("10.20.0.0/16", "10.30.1.0/24", "fd00:20::/64")}
	lockdown := bpfmap.Config{Level: 1, Allowlist: pfx("10.30.1.0/24", "10.99.0.1/32", "fd00:99::/64")}

	if err := b.Set(ctx, normal); err != nil {
		t.Fatal(err)
	}
	start := snap(t, b)
	if err := b.Set(ctx, lockdown); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snapshot{1, lockdown.Allowlist}, snap(t, b), cmpPrefix); diff != "" {
		t.Errorf("at level 1 (-want +got):\n%s", diff)
	}
	if err := b.Set(ctx, normal); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(start, snap(t, b), cmpPrefix); diff != "" {
		t.Errorf("5→1→5 did not restore the start (-start +end):\n%s", diff)
	}
}

// TestWatchSeesForeignWrites has another program (here: the test, through
// its own descriptor to the pin) write the level.
func TestWatchSeesForeignWrites(t *testing.T) {
	requireBPF(t)
	dir := testPinDir(t)
	b := openBackend(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Set(ctx, bpfmap.Config{Level: 5}); err != nil {
		t.Fatal(err)
	}
	foreign, err := ebpf.LoadPinnedMap(filepath.Join(dir, bpfsys.PinLevel), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()

	ch := b.Watch(ctx, 2*time.Millisecond)
	next := func() uint8 {
		select {
		case v := <-ch:
			return v
		case <-ctx.Done():
			t.Fatal("no level from Watch before the deadline")
		}
		return 0
	}
	if v := next(); v != 5 {
		t.Fatalf("first Watch value = %d, want 5", v)
	}
	for _, lvl := range []uint32{3, 1} {
		if err := foreign.Update(uint32(0), lvl, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		if v := next(); uint32(v) != lvl {
			t.Fatalf("Watch = %d, want %d", v, lvl)
		}
	}
	cancel()
	for range ch {
	}
}

func TestNormalizeAndDiff(t *testing.T) {
	got, err := normalize(pfx("10.0.0.7/8", "::ffff:192.0.2.1/120", "10.0.0.0/8", "2001:db8::1/32"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pfx("10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"), got, cmpPrefix); diff != "" {
		t.Errorf("normalize (-want +got):\n%s", diff)
	}
	var many []netip.Prefix
	for i := range 1025 {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	if _, err := normalize(many); !errors.Is(err, bpfmap.ErrAllowlistFull) {
		t.Errorf("normalize(1025 IPv4 prefixes) = %v, want ErrAllowlistFull", err)
	}
	if _, err := normalize(many[:1024]); err != nil {
		t.Errorf("normalize(1024 IPv4 prefixes) = %v", err)
	}
	if _, err := normalize(pfx("::ffff:0:0/80")); err == nil {
		t.Error("normalize accepted a mapped prefix shorter than /96")
	}
	add, del := diff(pfx("10.0.0.0/8", "192.0.2.0/24"), pfx("10.0.0.0/8", "198.51.100.0/24"))
	if diff := cmp.Diff(pfx("198.51.100.0/24"), add, cmpPrefix); diff != "" {
		t.Errorf("add (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(pfx("192.0.2.0/24"), del, cmpPrefix); diff != "" {
		t.Errorf("del (-want +got):\n%s", diff)
	}
}
