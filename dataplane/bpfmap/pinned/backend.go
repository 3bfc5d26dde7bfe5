// Package pinned is the posture BPF backend over cilium/ebpf (see package
// bpfmap for the contract): it keeps the posture level in the pinned
// posture_level map and enforces level 1 with a cgroup/skb egress program:
// at level 1, processes in the configured cgroup may send only to loopback
// and to an allowlist of prefixes. Kernel access goes through
// bpfmap/internal/bpfsys.
package pinned

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/internal/bpfsys"
)

// Option configures Open.
type Option func(*options)

type options struct {
	log    *slog.Logger
	bpffs  string
	pinDir string
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithPinDir sets the directory holding the pins (default DefaultPinDir).
// It must be on a bpf filesystem.
func WithPinDir(dir string) Option { return func(o *options) { o.pinDir = dir } }

// WithBPFFS sets where bpffs is mounted if it is not yet (default
// DefaultBPFFS). Empty disables mounting.
func WithBPFFS(mountpoint string) Option { return func(o *options) { o.bpffs = mountpoint } }

// Backend owns the posture maps and the egress link. Its methods are safe
// for concurrent use.
type Backend struct {
	log *slog.Logger

	mu     sync.Mutex
	maps   *bpfsys.Maps
	logged bool // the egress link state has been logged once
	closed bool
}

// Open mounts bpffs if needed, then creates or adopts the pinned maps. It
// changes no map contents: the level another program wrote stays until Set.
func Open(opts ...Option) (*Backend, error) {
	o := newOptions(opts)
	if err := o.prepare(); err != nil {
		return nil, err
	}
	maps, created, err := bpfsys.OpenMaps(o.pinDir)
	if err != nil {
		return nil, err
	}
	o.log.Info("opened posture maps", "dir", o.pinDir, "created", []string(created))
	return &Backend{log: o.log, maps: maps}, nil
}

// Prepare does what Open does before it opens any map: it mounts bpffs
// if needed and creates the pin directory. The daemon calls it to lock
// the pin directory (a directory flock, as bpffs holds no regular files)
// before the maps are opened.
func Prepare(opts ...Option) error { return newOptions(opts).prepare() }

func newOptions(opts []Option) options {
	o := options{log: slog.New(slog.DiscardHandler), bpffs: bpfmap.DefaultBPFFS, pinDir: bpfmap.DefaultPinDir}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func (o options) prepare() error {
	if o.bpffs != "" && within(o.pinDir, o.bpffs) {
		if err := bpfsys.EnsureBPFFS(o.bpffs); err != nil {
			return err
		}
	}
	return bpfsys.EnsurePinDir(o.pinDir)
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Set makes the kernel match cfg. It compares with what the maps hold, so a
// repeated Set writes nothing. Order: attach the program, add allowlist
// entries, write the level, then delete stale entries and detach; so
// escalating to 1 never drops allowed traffic and the node is never without
// the program it asked for. Failures of independent steps are joined.
func (b *Backend) Set(ctx context.Context, cfg bpfmap.Config) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set posture map: %w", err)
	}
	if cfg.Level < 1 || cfg.Level > 5 {
		return fmt.Errorf("set posture map: level %d: %w", cfg.Level, bpfmap.ErrInvalidLevel)
	}
	want, err := normalize(cfg.Allowlist)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("set posture map: %w", bpfmap.ErrClosed)
	}

	var errs []error
	// The link is checked against the kernel every time (a few syscalls),
	// so a link someone removed is put back by the next Set.
	if cfg.CgroupPath != "" {
		act, err := b.maps.EnsureEgress(cfg.CgroupPath)
		switch {
		case err != nil:
			// Without the program the level cannot be enforced, but the
			// map is shared state other programs read: still write it.
			errs = append(errs, err)
		case act != bpfsys.EgressAdopted || !b.logged:
			b.log.Info("egress program in place", "cgroup", cfg.CgroupPath, "action", act.String())
			b.logged = true
		}
	}

	have, err := b.maps.Allowlist()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	add, del := diff(have, want)
	for _, p := range add {
		if err := b.maps.AddPrefix(p); err != nil {
			errs = append(errs, err)
		}
	}

	cur, err := b.maps.Level()
	switch {
	case err != nil:
		errs = append(errs, err)
	case cur != uint32(cfg.Level):
		if err := b.maps.SetLevel(uint32(cfg.Level)); err != nil {
			errs = append(errs, err)
		} else {
			b.log.Info("posture level written", "from", cur, "to", cfg.Level)
		}
	}

	for _, p := range del {
		if err := b.maps.DeletePrefix(p); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.CgroupPath == "" {
		if err := b.maps.DetachEgress(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// normalize masks, deduplicates and sorts prefixes, rejecting invalid ones.
// IPv4-mapped IPv6 prefixes are stored as IPv4, which is what the packets
// carry.
func normalize(in []netip.Prefix) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("set posture map: invalid allowlist prefix %q", p.String())
		}
		if p.Addr().Is4In6() {
			if p.Bits() < 96 {
				return nil, fmt.Errorf("set posture map: allowlist prefix %s: IPv4-mapped prefix shorter than /96", p)
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, comparePrefix)
	out = slices.Compact(out)
	v4 := 0
	for _, p := range out {
		if p.Addr().Is4() {
			v4++
		}
	}
	if v4 > bpfsys.MaxAllowlist || len(out)-v4 > bpfsys.MaxAllowlist {
		return nil, fmt.Errorf("set posture map: allowlist has %d IPv4 and %d IPv6 prefixes: %w", v4, len(out)-v4, bpfmap.ErrAllowlistFull)
	}
	return out, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// diff returns what to add to have to reach want, and what to delete.
func diff(have, want []netip.Prefix) (add, del []netip.Prefix) {
	in := func(s []netip.Prefix, p netip.Prefix) bool {
		_, ok := slices.BinarySearchFunc(s, p, comparePrefix)
		return ok
	}
	have = slices.Clone(have)
	slices.SortFunc(have, comparePrefix)
	for _, p := range want {
		if !in(have, p) {
			add = append(add, p)
		}
	}
	for _, p := range have {
		if !in(want, p) {
			del = append(del, p)
		}
	}
	return add, del
}

// Level reads the level from the map, whoever wrote it. 0 means nobody has
// written it since the map was created.
func (b *Backend) Level() (uint8, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, fmt.Errorf("read posture level: %w", bpfmap.ErrClosed)
	}
	v, err := b.maps.Level()
	if err != nil {
		return 0, err
	}
	if v > 255 {
		return 0, fmt.Errorf("read posture level: value %d: %w", v, bpfmap.ErrInvalidLevel)
	}
	return uint8(v), nil
}

// Allowlist reads the allowlist maps back, sorted.
func (b *Backend) Allowlist() ([]netip.Prefix, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("read allowlist: %w", bpfmap.ErrClosed)
	}
	return b.maps.Allowlist()
}

// Watch polls the level every interval and sends it whenever it differs
// from the last value sent, starting with the current one. BPF array maps
// have no change notification, and a lookup is one cheap syscall, so
// polling at a short interval (10-100 ms) is the simple, sound choice; the
// engine treats a value it did not write itself as an external posture
// change. Read errors are logged and polling goes on. The channel closes
// when ctx is done.
func (b *Backend) Watch(ctx context.Context, interval time.Duration) <-chan uint8 {
	ch := make(chan uint8, 1)
	go func() {
		defer close(ch)
		t := time.NewTicker(interval)
		defer t.Stop()
		last, sent := uint8(0), false
		for {
			lvl, err := b.Level()
			switch {
			case errors.Is(err, bpfmap.ErrClosed):
				return
			case err != nil:
				b.log.Warn("poll posture level", "err", err)
			case !sent || lvl != last:
				select {
				case ch <- lvl:
					last, sent = lvl, true
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// Close releases file descriptors. The pins stay: the level, the allowlist
// and the enforcement program keep working without the daemon.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	return b.maps.Close()
}

// Cgroup2Mount returns where the cgroup v2 hierarchy is mounted, from
// /proc/mounts, for callers choosing a Config.CgroupPath.
func Cgroup2Mount() (string, error) { return bpfsys.Cgroup2Mount() }

// Egress reports the pinned enforcement link; ok is false if none is pinned.
func (b *Backend) Egress() (st bpfmap.EgressStatus, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bpfmap.EgressStatus{}, false, fmt.Errorf("read egress link: %w", bpfmap.ErrClosed)
	}
	l, ok, err := b.maps.Egress()
	return bpfmap.EgressStatus(l), ok, err
}
