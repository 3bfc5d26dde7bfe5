package mesh

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh/drain"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/host"
)

// fakeClock is a Clock the test moves by hand; timers fire inside Advance.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{at: c.now.Add(d), f: f})
}

// Advance moves the clock and runs the timers that came due, in this
// goroutine.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t.f)
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// fakePlatform hosts fake devices and records the DRAIN notices sent,
// in order with the backend's Sets (events).
type fakePlatform struct {
	mu      sync.Mutex
	events  *[]string
	hosted  []*fakeDevice
	hostErr error
	drained []map[string]netip.Addr
	ack     map[string]bool // peers that acknowledge a DRAIN
	listens []drain.ListenerConfig
}

func (p *fakePlatform) platform() Platform {
	return Platform{
		HostDevice: func(c host.Config) (Device, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.hostErr != nil {
				return nil, p.hostErr
			}
			d := &fakeDevice{name: c.Name, done: make(chan struct{})}
			p.hosted = append(p.hosted, d)
			return d, nil
		},
		NewSender: func(drain.SenderConfig) (Sender, error) { return fakeSender{p}, nil },
		Listen: func(c drain.ListenerConfig) (io.Closer, error) {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.listens = append(p.listens, c)
			return io.NopCloser(nil), nil
		},
	}
}

type fakeSender struct{ p *fakePlatform }

func (s fakeSender) Drain(_ context.Context, level uint8, targets map[string]netip.Addr) map[string]error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.drained = append(s.p.drained, targets)
	out := map[string]error{}
	for name := range targets {
		*s.p.events = append(*s.p.events, "drain "+name)
		if !s.p.ack[name] {
			out[name] = errors.New("no acknowledgement")
		} else {
			out[name] = nil
		}
	}
	return out
}

func (fakeSender) Close() error { return nil }

type fakeDevice struct {
	name   string
	done   chan struct{}
	once   sync.Once
	closed bool
}

func (d *fakeDevice) Name() string          { return d.name }
func (d *fakeDevice) Done() <-chan struct{} { return d.done }
func (d *fakeDevice) Close() error {
	d.closed = true
	d.once.Do(func() { close(d.done) })
	return nil
}

// die makes the device stop on its own (the embedded wireguard-go died).
func (d *fakeDevice) die() { d.once.Do(func() { close(d.done) }) }
