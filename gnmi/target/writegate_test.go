package target

import (
	"context"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
)

// bigRead is the cost of a read past busyAfter that holds its slot.
func bigRead(ctx context.Context, g *writeGate) *readCost {
	c := &readCost{ctx: ctx, busy: make(chan struct{}, 1), gate: g, lim: Limits{}.withDefaults(), work: busyAfter}
	c.busy <- struct{}{}
	c.held = true
	return c
}

// TestBigReadStepsAsideForSet: while a Set is in flight a big read waits
// at its budget check until the Set ends, or maxWritePause at most (a
// stream of Sets never stops it), and its caller's end still ends it.
func TestBigReadStepsAsideForSet(t *testing.T) {
	g := newWriteGate()
	if err := bigRead(context.Background(), g).check(); err != nil {
		t.Fatalf("no Set in flight: %v", err)
	}

	g.begin()
	start := time.Now()
	if err := bigRead(context.Background(), g).check(); err != nil {
		t.Fatalf("Set in flight: %v", err)
	}
	if took := time.Since(start); took < maxWritePause {
		t.Errorf("a big read went on after %v with a Set in flight, want a wait of %v", took, maxWritePause)
	}

	done := make(chan error, 1)
	go func() { done <- bigRead(context.Background(), g).check() }()
	g.end()
	if err := <-done; err != nil {
		t.Fatalf("Set ended: %v", err)
	}

	g.begin()
	defer g.end()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	idle, _ := g.writing()
	var err error
	// The pause may also have run out if this goroutine was descheduled
	// for maxWritePause: then the read went on, and the next wait ends.
	for range 100 {
		if err = bigRead(ctx, g).stepAside(idle); err != nil {
			break
		}
	}
	if status.Code(err) != codes.Canceled {
		t.Fatalf("caller gone: got %v, want CANCELED", err)
	}
	if _, writing := g.writing(); !writing {
		t.Fatal("the gate forgot the Set in flight")
	}
}

// gateSpy is an authorizer that records, from inside a Set's commit,
// whether the target's gate saw the Set in flight.
type gateSpy struct {
	allow
	srv *Server
	saw bool
}

func (s *gateSpy) WriteChanges(context.Context, store.Proposed) error {
	_, s.saw = s.srv.gate.writing()
	return nil
}

// TestSetHoldsWriteGate: the gate counts a Set from before its commit
// until it returns, and is idle again after.
func TestSetHoldsWriteGate(t *testing.T) {
	spy := &gateSpy{}
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: spy})
	spy.srv = e.srv
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config/cluster"), Val: sval("c1")}}})
	if !spy.saw {
		t.Error("a big read would not have stepped aside during the commit")
	}
	if _, writing := e.srv.gate.writing(); writing {
		t.Error("the gate still counts a Set that returned")
	}
}
