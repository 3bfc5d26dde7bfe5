package drain

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
)

// Event says a peer announced a posture-driven teardown.
type Event struct {
	Peer  string
	Level uint8
	Seq   uint64
	At    time.Time
}

// Tracker is the set of peers that are posture-down. The listener fills it;
// the daemon reads it into the tree and clears a peer when a de-escalation
// (a gNMI Set on this node's tree) says it may be reconnected. It is safe for
// concurrent use.
type Tracker struct {
	mu       sync.Mutex
	down     map[string]Event
	lastSeq  map[string]uint64 // kept across Clear, so old notices stay replays
	onChange func(Event)
	now      func() time.Time
}

// NewTracker returns an empty tracker; onChange (may be nil) is called, outside
// the lock, for every new posture-down record.
func NewTracker(onChange func(Event)) *Tracker {
	return &Tracker{down: map[string]Event{}, lastSeq: map[string]uint64{}, onChange: onChange, now: time.Now}
}

// record stores a DRAIN from peer. It reports false for a replay (a
// sequence not newer than the last one seen) and whether it is a repeat of
// the last one (to be acknowledged again, without a new event).
func (t *Tracker) record(peer string, m Message) (fresh, repeat bool) {
	t.mu.Lock()
	last, seen := t.lastSeq[peer]
	switch {
	case seen && m.Seq == last:
		t.mu.Unlock()
		return false, true
	case seen && m.Seq < last:
		t.mu.Unlock()
		return false, false
	}
	t.lastSeq[peer] = m.Seq
	ev := Event{Peer: peer, Level: m.Level, Seq: m.Seq, At: t.now()}
	t.down[peer] = ev
	t.mu.Unlock()
	if t.onChange != nil {
		t.onChange(ev)
	}
	return true, false
}

// Down reports whether peer is posture-down, and the notice that made it so.
func (t *Tracker) Down(peer string) (Event, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ev, ok := t.down[peer]
	return ev, ok
}

// All lists posture-down peers sorted by name.
func (t *Tracker) All() []Event {
	t.mu.Lock()
	out := make([]Event, 0, len(t.down))
	for _, ev := range t.down {
		out = append(out, ev)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b Event) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}

// Clear lifts posture-down for peer, so it may be reconnected. It reports
// whether the peer was down.
func (t *Tracker) Clear(peer string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.down[peer]
	delete(t.down, peer)
	return ok
}

// Filter returns peers without the posture-down ones: what a cloud anchor
// hands to wgmesh.Backend.Set so it does not reconnect to a node that drained
// itself. A plain failure is not here and keeps being retried by WireGuard.
func (t *Tracker) Filter(peers []wgmesh.Peer) []wgmesh.Peer {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]wgmesh.Peer, 0, len(peers))
	for _, p := range peers {
		if _, down := t.down[p.Name]; !down {
			out = append(out, p)
		}
	}
	return out
}
