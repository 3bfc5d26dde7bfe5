package pinned

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/internal/bpfsys"
	"github.com/guildhouse-co/kedge/tests/needs"
)

func randSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// requireBPF skips unless the test runs as root on a kernel with what the
// backend needs.
func requireBPF(t testing.TB) {
	t.Helper()
	needs.Root(t, "creates BPF maps, mounts bpffs, attaches to cgroups")
	for _, c := range []struct {
		what string
		err  error
	}{
		{"array maps", features.HaveMapType(ebpf.Array)},
		{"LPM trie maps", features.HaveMapType(ebpf.LPMTrie)},
		{"cgroup skb programs", features.HaveProgramType(ebpf.CGroupSKB)},
	} {
		if errors.Is(c.err, ebpf.ErrNotSupported) {
			needs.Unavailable(t, "kernel lacks %s: %v", c.what, c.err)
		}
		if c.err != nil {
			t.Fatalf("probe %s: %v", c.what, c.err)
		}
	}
}

// testPinDir returns a unique pin directory on bpffs, removed (with every
// pin in it) at cleanup.
func testPinDir(t testing.TB) string {
	t.Helper()
	if err := bpfsys.EnsureBPFFS(bpfmap.DefaultBPFFS); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	dir := filepath.Join(bpfmap.DefaultBPFFS, "kedge-bpfmap-test-"+randSuffix(t))
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove pin dir: %v", err)
		}
	})
	return dir
}

func openBackend(t testing.TB, dir string, opts ...Option) *Backend {
	t.Helper()
	b, err := Open(append([]Option{WithPinDir(dir)}, opts...)...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// recorder is a slog handler that keeps messages, to prove a Set wrote
// nothing.
type recorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

// requireEgress also needs the skb_load_bytes helper for cgroup skb programs.
func requireEgress(t *testing.T) {
	t.Helper()
	requireBPF(t)
	err := features.HaveProgramHelper(ebpf.CGroupSKB, asm.FnSkbLoadBytes)
	if errors.Is(err, ebpf.ErrNotSupported) {
		needs.Unavailable(t, "kernel lacks bpf_skb_load_bytes for cgroup skb programs: %v", err)
	}
	if err != nil {
		t.Fatalf("probe bpf_skb_load_bytes: %v", err)
	}
}

// firstSet is the first Set with a cgroup in a test: on a kernel without
// cgroup bpf_link (before 5.7) the link cannot be pinned, which the test
// reports as a skip, not a failure.
func firstSet(t *testing.T, b *Backend, cfg bpfmap.Config) {
	t.Helper()
	err := b.Set(context.Background(), cfg)
	if errors.Is(err, ebpf.ErrNotSupported) {
		needs.Unavailable(t, "kernel cannot pin cgroup links (needs bpf_link, Linux 5.7+): %v", err)
	}
	if err != nil {
		t.Fatalf("Set(%+v): %v", cfg, err)
	}
}
