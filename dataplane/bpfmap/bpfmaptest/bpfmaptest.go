// Package bpfmaptest is a recording fake of the bpfmap backend for posture
// engine tests. It keeps every Set call, models the maps (level, allowlist,
// attached cgroup) with the real backend's rules, lets a test play "another
// program wrote the level", and can be told to fail.
package bpfmaptest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
)

// ErrInjected is returned by Set after Fail, unless another error was given.
var ErrInjected = errors.New("bpfmaptest: injected failure")

// State is what the fake's "kernel" holds.
type State struct {
	Level     uint8
	Allowlist []netip.Prefix // masked, sorted, deduplicated
	Cgroup    string         // where the egress program is attached; "" if nowhere
}

// Backend records calls. The zero value is ready: level 0 (never written),
// empty allowlist, no program attached, like freshly created maps.
type Backend struct {
	mu      sync.Mutex
	calls   []bpfmap.Config
	state   State
	writes  int
	failN   int
	failErr error
	closed  bool
}

// Set records a deep copy of cfg and, unless a failure is pending, applies
// it. It rejects levels outside 1..5 like the real backend.
func (b *Backend) Set(ctx context.Context, cfg bpfmap.Config) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cfg.Allowlist = slices.Clone(cfg.Allowlist)
	b.calls = append(b.calls, cfg)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set posture map: %w", err)
	}
	if b.closed {
		return fmt.Errorf("set posture map: %w", bpfmap.ErrClosed)
	}
	if b.failN > 0 {
		b.failN--
		return fmt.Errorf("set posture map: %w", b.failErr)
	}
	if cfg.Level < 1 || cfg.Level > 5 {
		return fmt.Errorf("set posture map: level %d: %w", cfg.Level, bpfmap.ErrInvalidLevel)
	}
	next := State{Level: cfg.Level, Allowlist: normalize(cfg.Allowlist), Cgroup: cfg.CgroupPath}
	if !equal(next, b.state) {
		b.state = next
		b.writes++
	}
	return nil
}

// Level returns the level in the fake map.
func (b *Backend) Level() (uint8, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, fmt.Errorf("read posture level: %w", bpfmap.ErrClosed)
	}
	return b.state.Level, nil
}

// Watch polls Level every interval and sends changes, like the real one.
func (b *Backend) Watch(ctx context.Context, interval time.Duration) <-chan uint8 {
	ch := make(chan uint8, 1)
	go func() {
		defer close(ch)
		t := time.NewTicker(interval)
		defer t.Stop()
		last, sent := uint8(0), false
		for {
			lvl, err := b.Level()
			if err != nil {
				return
			}
			if !sent || lvl != last {
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

// WriteLevel plays another program writing the shared map.
func (b *Backend) WriteLevel(level uint8) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Level = level
}

// Fail makes the next n Set calls fail with err (ErrInjected if nil)
// without changing the state.
func (b *Backend) Fail(n int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	b.failN, b.failErr = n, err
}

// Calls returns copies of every Config passed to Set, in order.
func (b *Backend) Calls() []bpfmap.Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]bpfmap.Config, len(b.calls))
	for i, c := range b.calls {
		c.Allowlist = slices.Clone(c.Allowlist)
		out[i] = c
	}
	return out
}

// State returns what the fake kernel holds.
func (b *Backend) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.state
	s.Allowlist = slices.Clone(s.Allowlist)
	return s
}

// Writes counts the Set calls that changed the state.
func (b *Backend) Writes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.writes
}

// Close marks the fake closed; later calls fail with bpfmap.ErrClosed. The
// state stays, as pins do.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

func normalize(in []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(in))
	for _, p := range in {
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

func equal(a, b State) bool {
	return a.Level == b.Level && a.Cgroup == b.Cgroup && slices.Equal(a.Allowlist, b.Allowlist)
}
