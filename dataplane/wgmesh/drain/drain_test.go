package drain

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/internal/nsthread"
	"github.com/guildhouse-co/kedge/tests/needs"
)

func TestWireRoundTrip(t *testing.T) {
	m := Message{Type: TypeDrain, Node: "anchor-1", Level: 1, Seq: 1<<63 + 5}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("XDRN"), b[4:]...),
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte{}, b...), 0),
		"type":      append(append(append([]byte{}, b[:5]...), 9), b[6:]...),
	} {
		if _, err := Unmarshal(bad); err == nil {
			t.Errorf("%s: Unmarshal accepted %x", name, bad)
		}
	}
	if _, err := (Message{Node: ""}).Marshal(); err == nil {
		t.Errorf("Marshal accepted an empty node name")
	}
}

func TestTrackerReplayAndClear(t *testing.T) {
	var events []Event
	tr := NewTracker(func(ev Event) { events = append(events, ev) })
	if fresh, _ := tr.record("a", Message{Seq: 10, Level: 2}); !fresh {
		t.Fatal("first notice not fresh")
	}
	if fresh, repeat := tr.record("a", Message{Seq: 10, Level: 2}); fresh || !repeat {
		t.Errorf("same seq: fresh=%v repeat=%v, want a repeat", fresh, repeat)
	}
	if fresh, repeat := tr.record("a", Message{Seq: 9, Level: 1}); fresh || repeat {
		t.Errorf("older seq: fresh=%v repeat=%v, want dropped", fresh, repeat)
	}
	peers := []wgmesh.Peer{{Name: "a"}, {Name: "b"}}
	if got := tr.Filter(peers); len(got) != 1 || got[0].Name != "b" {
		t.Errorf("Filter = %v, want only b", got)
	}
	if !tr.Clear("a") || tr.Clear("a") {
		t.Errorf("Clear should report true once")
	}
	if _, down := tr.Down("a"); down {
		t.Errorf("a still down after Clear")
	}
	// A replay of the old notice after Clear must not put a back down.
	if fresh, repeat := tr.record("a", Message{Seq: 9}); fresh || repeat {
		t.Errorf("replay after Clear accepted")
	}
	if len(events) != 1 || events[0].Peer != "a" || events[0].Level != 2 {
		t.Errorf("events = %+v, want one for a at level 2", events)
	}
}

// loopNetns makes a throwaway namespace with lo up; the drain socket is
// bound to lo there, standing in for the tunnel device.
func loopNetns(t *testing.T) string {
	t.Helper()
	needs.Root(t, "creates a network namespace")
	name := fmt.Sprintf("drain-%05x", rand.IntN(1<<20))
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	h, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		t.Fatalf("restore netns: %v", serr) // thread stays locked and dies with the test
	}
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	defer h.Close()
	t.Cleanup(func() { netns.DeleteNamed(name) })
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return "/var/run/netns/" + name
}

func TestSenderListener(t *testing.T) {
	ns := loopNetns(t)
	lo := netip.MustParseAddr("127.0.0.1")
	port := 20000 + rand.IntN(20000)
	tr := NewTracker(nil)
	ln, err := Listen(ListenerConfig{Device: "lo", Addr: lo, Port: port, Netns: ns, Tracker: tr,
		Lookup: func(a netip.Addr) (string, bool) { return "n0", a == lo }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	send := func(node string, timeout time.Duration) error {
		s, err := NewSender(SenderConfig{Node: node, Device: "lo", Netns: ns, Port: port})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return s.Drain(ctx, 1, map[string]netip.Addr{"peer": lo})["peer"]
	}
	// A notice claiming another node than the source's owner is dropped,
	// unacknowledged.
	if err := send("impostor", 100*time.Millisecond); !errors.Is(err, ErrNoAck) {
		t.Errorf("impostor drain = %v, want ErrNoAck", err)
	}
	if _, down := tr.Down("impostor"); down {
		t.Errorf("impostor recorded")
	}
	if err := send("n0", 2*time.Second); err != nil {
		t.Fatalf("drain from n0: %v", err)
	}
	ev, down := tr.Down("n0")
	if !down || ev.Level != 1 {
		t.Fatalf("n0 not recorded posture-down at level 1: %+v %v", ev, down)
	}
	// A datagram with an older sequence is a replay: not acknowledged.
	th, err := nsthread.Start(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	var c *net.UDPConn
	if err := th.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	old, _ := Message{Type: TypeDrain, Node: "n0", Level: 1, Seq: ev.Seq - 1}.Marshal()
	if _, err := c.WriteToUDPAddrPort(old, netip.AddrPortFrom(lo, uint16(port))); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 64)); err == nil {
		t.Errorf("replayed notice was acknowledged")
	}
}

// A peer that acknowledges a notice more than once (each resend, or a
// duplicating network) must not wedge Drain: the reader used to block
// sending a surplus ACK to a channel nobody read any more, and Drain's
// wait for it never returned (seen as a daemon shutdown hanging mid-drain).
func TestDrainSurvivesDuplicateAcks(t *testing.T) {
	ns := loopNetns(t)
	lo := netip.MustParseAddr("127.0.0.1")
	port := 20000 + rand.IntN(20000)
	th, err := nsthread.Start(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	var peer *net.UDPConn
	if err := th.Do(func() error {
		var err error
		peer, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	go func() { // the peer: every DRAIN gets eight ACKs
		buf := make([]byte, 512)
		for {
			n, from, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m, err := Unmarshal(buf[:n])
			if err != nil || m.Type != TypeDrain {
				continue
			}
			ack, _ := Message{Type: TypeAck, Node: "peer", Seq: m.Seq}.Marshal()
			for range 8 {
				peer.WriteToUDPAddrPort(ack, from)
			}
		}
	}()
	s, err := NewSender(SenderConfig{Node: "n0", Device: "lo", Netns: ns, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- s.Drain(ctx, 2, map[string]netip.Addr{"peer": lo})["peer"]
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("drain %d: %v", i, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("drain %d never returned: its ACK reader is stuck on a surplus ACK", i)
		}
	}
}
