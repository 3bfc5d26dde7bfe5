package shellstream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// sessionsJSON returns /kedge/sessions as the tree encodes it, keyed by id.
func sessionsInTree(t testing.TB, st *store.Store) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	err := st.Read(func(tr *tree.Tree) error {
		k := tr.Root().Sub("kedge")
		if k == nil || k.Sub("sessions") == nil {
			return nil
		}
		k.Sub("sessions").Entries("session", func(e *tree.Inst) bool {
			s := e.Sub("state")
			m := map[string]string{}
			for _, leaf := range []string{"peer", "node", "cluster", "local", "tier", "type", "critical", "capabilities",
				"verification", "initiator-posture", "posture-at-handshake", "effective-posture", "status", "close-reason",
				"bytes-in", "bytes-out", "frames-in"} {
				if v := s.Get(leaf); v.IsSet() {
					m[leaf] = fmt.Sprint(v)
				}
			}
			for _, leaf := range []string{"started", "drain-deadline", "closed"} {
				if s.Get(leaf).IsSet() {
					m[leaf] = "set"
				}
			}
			out[e.Keys()[0].Str()] = m
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTreeState(t *testing.T) {
	st := yangtest.Store(t)
	ts, err := NewTreeState(st)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOpts{mutate: func(o *Options) {
		o.State = ts
		o.RetainClosed = time.Minute
		o.MaxClosed = 2
	}})
	h.level(5)
	ctx := context.Background()
	op := h.mustOpen(h.tcp, h.config("/ops/operator", session.Routine, 4))
	op.Send([]byte("abc"))
	recvKind(t, op, "data")
	id := op.Grant.GetSessionId()
	// Counters of sent frames move once Send returns, maybe after the
	// client has the frame.
	waitFor(t, func() bool { h.svc.Flush(ctx); return sessionsInTree(t, st)[id]["bytes-out"] == "3" })
	want := map[string]string{
		"peer": "spiffe://kedge.test/ops/operator", "node": "node-b", "cluster": "lab", "local": "false",
		"tier": "operator", "type": "routine", "critical": "false", "capabilities": "[observe,execute,propose]",
		"verification": "cached", "initiator-posture": "4", "posture-at-handshake": "4", "effective-posture": "4",
		"status": "active", "bytes-in": "3", "bytes-out": "3", "frames-in": "3", "started": "set",
	}
	if d := cmp.Diff(want, sessionsInTree(t, st)[id]); d != "" {
		t.Fatalf("active session in the tree (-want +got):\n%s", d)
	}

	h.level(3) // drains the operator's session
	recvKind(t, op, "drain")
	h.svc.Flush(ctx)
	got := sessionsInTree(t, st)[id]
	if got["status"] != "draining" || got["drain-deadline"] != "set" || got["effective-posture"] != "3" {
		t.Fatalf("draining session in the tree: %v", got)
	}
	h.clock.Advance(30 * time.Second)
	recvKind(t, op, "close")
	waitFor(t, func() bool { h.svc.Flush(ctx); return sessionsInTree(t, st)[id]["status"] == "closed" })
	got = sessionsInTree(t, st)[id]
	if got["closed"] != "set" || got["close-reason"] != "the drain deadline passed" || got["drain-deadline"] != "" {
		t.Fatalf("closed session in the tree: %v", got)
	}

	// Retention: at most MaxClosed closed sessions, none older than
	// RetainClosed.
	var ids []string
	for range 3 {
		cs := h.mustOpen(h.tcp, h.config("/ops/master", session.Monitoring, 5))
		ids = append(ids, cs.Grant.GetSessionId())
		cs.Close()
		recvKind(t, cs, "close")
	}
	waitFor(t, func() bool { h.svc.Flush(ctx); return len(sessionsInTree(t, st)) == 2 })
	tr := sessionsInTree(t, st)
	if _, ok := tr[ids[2]]; !ok {
		t.Errorf("newest closed session missing: %v", tr)
	}
	if _, ok := tr[id]; ok {
		t.Errorf("oldest closed session kept beyond MaxClosed")
	}
	h.clock.Advance(2 * time.Minute)
	waitFor(t, func() bool { h.svc.Flush(ctx); return len(sessionsInTree(t, st)) == 0 })
}

// waitFor polls cond until it holds (10 s at most).
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronising
	}
}
