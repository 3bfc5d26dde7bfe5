package target

import (
	"context"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// bigGet walks all 1,000 peers' public keys: far past busyAfter.
var bigGet = &gpb.GetRequest{Path: []*gpb.Path{deepPath(1, "public-key")}, Encoding: gpb.Encoding_PROTO}

// sendEnv is a target with one busy-read slot whose bound on a response's
// hold fires only when the test says (stallClock).
func sendEnv(t *testing.T, lim Limits) (*env, *stallClock) {
	t.Helper()
	clk := &stallClock{waited: make(chan struct{}, 1)}
	lim.BusyReads = 1
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Clock: clk, Limits: lim})
	loadPeers(t, e.st, 1000)
	return e, clk
}

// takeSlot waits for the server's only busy-read slot and holds it; it
// fails the test if the slot stays taken (a leak), instead of hanging.
func takeSlot(t *testing.T, s *Server) {
	t.Helper()
	select {
	case s.busy <- struct{}{}:
	case <-time.After(time.Minute):
		t.Fatal("the busy-read slot was never given back")
	}
}

// TestGetKeepsSlotUntilSent: a big Get written as wire bytes keeps its
// busy-read slot after it returns, until gRPC frees the response's
// buffers (the transport has written them); freeing them gives it back
// once, and only then.
func TestGetKeepsSlotUntilSent(t *testing.T) {
	e, _ := sendEnv(t, Limits{})
	_, wire, err := e.srv.get(context.Background(), bigGet, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.srv.busy); n != 1 {
		t.Fatalf("%d slots held after the response was encoded, want 1 until it is sent", n)
	}
	bufs, err := sharedCodec{}.Marshal(wire)
	if err != nil {
		t.Fatal(err)
	}
	bufs.Ref() // the transport's reference
	bufs.Free()
	if n := len(e.srv.busy); n != 1 {
		t.Fatalf("%d slots held while the transport still has the response, want 1", n)
	}
	bufs.Free()
	if n := len(e.srv.busy); n != 0 {
		t.Fatalf("%d slots held once the response was sent, want 0", n)
	}

	// A small Get takes no slot and has none to give back.
	small := &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=peer7]")}, Encoding: gpb.Encoding_PROTO}
	takeSlot(t, e.srv)
	_, wire, err = e.srv.get(context.Background(), small, true)
	if err != nil {
		t.Fatal(err)
	}
	wire.bufs.Free()
	if n := len(e.srv.busy); n != 1 {
		t.Fatalf("a small Get's response changed the slots held to %d, want the test's 1", n)
	}
	<-e.srv.busy
}

// TestUnsentResponseSlotIsBounded: a response the transport never frees
// (a client that does not read) gives its slot back after maxSendHold,
// and freeing it later gives back nothing more.
func TestUnsentResponseSlotIsBounded(t *testing.T) {
	e, clk := sendEnv(t, Limits{})
	_, wire, err := e.srv.get(context.Background(), bigGet, true)
	if err != nil {
		t.Fatal(err)
	}
	clk.fire()
	takeSlot(t, e.srv)
	wire.bufs.Free()
	if n := len(e.srv.busy); n != 1 {
		t.Fatalf("freeing a response past its bound changed the slots held to %d, want the test's 1", n)
	}
	<-e.srv.busy
}

// TestFailedGetGivesSlotBack: a big Get that fails after taking its slot
// (over budget, deadline, canceled) gives the slot back as it returns.
func TestFailedGetGivesSlotBack(t *testing.T) {
	// A leaf budget the read outgrows after it took its slot (at its
	// first budget check) and short of bigGet's 2,001 keys.
	e, _ := sendEnv(t, Limits{GetLeaves: 1500})
	if _, _, err := e.srv.get(context.Background(), bigGet, true); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over budget: got %v, want RESOURCE_EXHAUSTED", err)
	}
	if n := len(e.srv.busy); n != 0 {
		t.Fatalf("over budget: %d slots held after the Get failed", n)
	}
	for _, code := range []codes.Code{codes.DeadlineExceeded, codes.Canceled} {
		ctx := &endsOnSlot{Context: context.Background(), srv: e.srv, err: context.DeadlineExceeded}
		if code == codes.Canceled {
			ctx.err = context.Canceled
		}
		if _, _, err := e.srv.get(ctx, bigGet, true); status.Code(err) != code {
			t.Fatalf("got %v, want %v", err, code)
		}
		if !ctx.ended {
			t.Fatalf("%v: the Get ended before it took the slot", code)
		}
		if n := len(e.srv.busy); n != 0 {
			t.Fatalf("%v: %d slots held after the Get failed", code, n)
		}
	}
}

// endsOnSlot is a context that ends (with err) at the first look after
// its server's busy-read slot was taken: a read's deadline or its
// caller's cancel falling while it holds the slot.
type endsOnSlot struct {
	context.Context
	srv   *Server
	err   error
	ended bool
}

func (c *endsOnSlot) Err() error {
	if !c.ended && len(c.srv.busy) > 0 {
		c.ended = true
	}
	if c.ended {
		return c.err
	}
	return nil
}

// TestGetsThroughGRPCGiveSlotsBack: big Gets through gRPC, one after the
// other on a single slot, each get their turn: the transport frees every
// response and its slot with it (the bound never fires here).
func TestGetsThroughGRPCGiveSlotsBack(t *testing.T) {
	e, _ := sendEnv(t, Limits{})
	for range 5 {
		resp, err := e.get(bigGet)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.GetNotification()[0].GetUpdate()); n < 1000 {
			t.Fatalf("%d public keys, want the 1,000 peers'", n)
		}
	}
	takeSlot(t, e.srv)
	<-e.srv.busy
}
