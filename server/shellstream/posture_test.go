package shellstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/session"
)

// TestLevelAdmission checks the handshake at each level for remote and
// loopback initiators.
func TestLevelAdmission(t *testing.T) {
	h := newHarness(t, harnessOpts{})

	h.level(3) // PROPOSE revoked below master
	cs := h.mustOpen(h.tcp, h.config("/ops/operator", session.Operator, 5))
	if d := cmp.Diff([]pb.Capability{pb.Capability_CAPABILITY_OBSERVE, pb.Capability_CAPABILITY_EXECUTE}, cs.Grant.GetCapabilities()); d != "" {
		t.Errorf("level 3 operator capabilities: %s", d)
	}
	cs.Close()
	cs = h.mustOpen(h.tcp, h.config("/ops/master", session.Operator, 5))
	if len(cs.Grant.GetCapabilities()) != 3 {
		t.Errorf("level 3 master capabilities %v, want the full grant", cs.Grant.GetCapabilities())
	}
	cs.Close()

	h.level(2) // critical only, refused at ATTEST-VERIFY
	for _, typ := range session.Types {
		cfg := h.config("/ops/master", typ, 5)
		if !typ.Critical() {
			// The refusal comes after CHALLENGE and ATTEST-VERIFY.
			_, err := h.open(h.tcp, cfg)
			d := denied(t, err, pb.DenyReason_DENY_REASON_POSTURE)
			if d.EffectiveLevel != 2 {
				t.Errorf("%s: deny at level %d", typ, d.EffectiveLevel)
			}
			continue
		}
		h.mustOpen(h.tcp, cfg).Close()
	}

	h.level(1) // no remote ATTEST-INIT; loopback console management only
	s := rawStream(t, h)
	n := make([]byte, 32)
	copy(n, "level-one-remote-nonce-xxxxxxxxx")
	s.Send(initFrame(h.config("/ops/master", session.Management, 5), n))
	f, err := s.Recv()
	if err != nil || f.GetDeny().GetReason() != pb.DenyReason_DENY_REASON_POSTURE {
		t.Fatalf("level 1 remote: first frame %v (%v), want DENY posture before any challenge", f, err)
	}
	cs = h.mustOpen(h.cc, h.config("/ops/master", session.Management, 5)) // unix socket
	if cs.Grant.GetEffectiveLevel() != 1 || cs.Grant.GetVerification() != pb.VerificationMode_VERIFICATION_MODE_REVERIFIED {
		t.Errorf("level 1 local grant %v", cs.Grant)
	}
	cs.Close()
	_, err = h.open(h.cc, h.config("/ops/master", session.Incident, 5))
	denied(t, err, pb.DenyReason_DENY_REASON_POSTURE)
}

// TestTransitions walks live sessions through 5 -> 3 -> 2 -> 5: at 3 the
// lower tiers' sessions are drained with a deadline and torn down when it
// passes while master's continue at level 3; at 2 the non-critical ones
// are terminated at once; relaxing keeps the survivors and tells them.
func TestTransitions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(5)
	open := func(path string, typ session.Type) *ClientSession {
		return h.mustOpen(h.tcp, h.config(path, typ, 5))
	}
	masterOps := open("/ops/master", session.Operator)
	masterMgmt := open("/ops/master", session.Management)
	opRoutine := open("/ops/operator", session.Routine)
	opIncident := open("/ops/operator", session.Incident)
	observerMon := open("/ops/observer", session.Monitoring)

	start := h.clock.Now()
	out := h.level(3)
	if out != (Outcome{Kept: 3, Drained: 2}) {
		t.Fatalf("5->3 outcome %+v, want 3 kept (master x2, observer) and 2 drained", out)
	}
	for _, cs := range []*ClientSession{opRoutine, opIncident} {
		d := recvKind(t, cs, "drain").GetDrain()
		if got := d.GetDeadline().AsTime(); !got.Equal(start.Add(30*time.Second)) || d.GetEffectiveLevel() != 3 {
			t.Errorf("drain %v, want deadline start+30s at level 3", d)
		}
	}
	for _, cs := range []*ClientSession{masterOps, masterMgmt, observerMon} {
		if pc := recvKind(t, cs, "posture-change").GetPostureChange(); pc.GetPostureLevel() != 3 {
			t.Errorf("posture change %v", pc)
		}
	}
	// Draining sessions keep relaying until the deadline.
	if err := opRoutine.Send([]byte("in-flight")); err != nil {
		t.Fatal(err)
	}
	if got := recvKind(t, opRoutine, "data").GetData().GetPayload(); string(got) != "in-flight" {
		t.Errorf("draining echo %q", got)
	}
	states := map[string]State{}
	for _, s := range h.svc.Live() {
		states[s.ID] = s
	}
	if s := states[opRoutine.Grant.GetSessionId()]; s.Status != StatusDraining || !s.DrainDeadline.Equal(start.Add(30*time.Second)) {
		t.Errorf("draining state %+v", s)
	}
	// The incident session closes by itself before the deadline.
	opIncident.Close()
	if c := recvKind(t, opIncident, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_NORMAL {
		t.Errorf("incident close %v", c)
	}
	h.clock.Advance(30 * time.Second)
	if c := recvKind(t, opRoutine, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_DRAIN_TIMEOUT {
		t.Errorf("routine close %v", c)
	}
	// CLOSE is sent before the teardown completes; wait for it.
	waitFor(t, func() bool { return len(h.svc.Live()) == 3 })

	out = h.level(2)
	if out != (Outcome{Kept: 2, Terminated: 1}) {
		t.Fatalf("3->2 outcome %+v, want master's management and the observer's monitoring kept, master's operator session terminated", out)
	}
	d := recvKind(t, masterOps, "drain").GetDrain()
	if !d.GetDeadline().AsTime().Equal(h.clock.Now()) {
		t.Errorf("abrupt drain deadline %v, want now", d.GetDeadline().AsTime())
	}
	if c := recvKind(t, masterOps, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_POSTURE {
		t.Errorf("operator-type close %v", c)
	}
	if len(h.svc.Live()) != 2 {
		t.Errorf("live after 3->2: %d, want 2 (ApplyLevel waits for the teardown)", len(h.svc.Live()))
	}

	for _, cs := range []*ClientSession{masterMgmt, observerMon} {
		if pc := recvKind(t, cs, "posture-change").GetPostureChange(); pc.GetPostureLevel() != 2 {
			t.Errorf("3->2 posture change %v", pc)
		}
	}

	h.level(5)
	for _, cs := range []*ClientSession{masterMgmt, observerMon} {
		if pc := recvKind(t, cs, "posture-change").GetPostureChange(); pc.GetPostureLevel() != 5 {
			t.Errorf("relax posture change %v", pc)
		}
	}
	for _, s := range h.svc.Live() {
		if s.EffectivePosture != 5 || s.PostureAtHandshake != 5 || s.Status != StatusActive {
			t.Errorf("after relaxing: %+v", s)
		}
	}
	evs := h.rec.waitFor(t, opRoutine.Grant.GetSessionId(), EventClose)
	var kinds []EventKind
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if d := cmp.Diff([]EventKind{EventOpen, EventGrant, EventDrain, EventClose}, kinds); d != "" {
		t.Errorf("routine session transits: %s", d)
	}
	if last := evs[len(evs)-1]; last.PostureLevel != 3 || last.Peer == "" || last.Tier != "operator" {
		t.Errorf("close transit %+v", last)
	}
}

// TestStricterPostureWins: a level-3 initiator on a level-5 node is
// governed by level 3 (re-verified, narrowed) while the node's other
// sessions stay at 5; when it announces 2 its non-critical session ends,
// and when the node relaxes it stays at the initiator's level.
func TestStricterPostureWins(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(5)
	calls := h.wl.ValidateCalls()
	homelab := h.mustOpen(h.tcp, h.config("/kedge/node-b", session.Operator, 3))
	g := homelab.Grant
	if g.GetEffectiveLevel() != 3 || g.GetVerification() != pb.VerificationMode_VERIFICATION_MODE_REVERIFIED || len(g.GetCapabilities()) != 2 {
		t.Errorf("level-3 initiator grant %v", g)
	}
	if h.wl.ValidateCalls() != calls+1 {
		t.Errorf("level-3 initiator not re-verified")
	}
	local := h.mustOpen(h.tcp, h.config("/ops/operator", session.Operator, 5))
	if local.Grant.GetEffectiveLevel() != 5 || len(local.Grant.GetCapabilities()) != 3 {
		t.Errorf("level-5 initiator grant %v", local.Grant)
	}
	// The initiator escalates to 2: its operator session is terminated.
	if err := homelab.Announce(2); err != nil {
		t.Fatal(err)
	}
	recvKind(t, homelab, "drain")
	if c := recvKind(t, homelab, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_POSTURE {
		t.Errorf("close %v", c)
	}
	// A critical session from it survives 2 and follows its relaxation.
	mgmt := h.mustOpen(h.tcp, h.config("/kedge/node-b", session.Management, 2))
	if mgmt.Grant.GetEffectiveLevel() != 2 {
		t.Errorf("grant %v", mgmt.Grant)
	}
	mgmt.Announce(4)
	if pc := recvKind(t, mgmt, "posture-change").GetPostureChange(); pc.GetPostureLevel() != 4 {
		t.Errorf("posture change %v", pc)
	}
	for _, s := range h.svc.Live() {
		if s.ID == local.Grant.GetSessionId() && s.EffectivePosture != 5 {
			t.Errorf("the other session moved: %+v", s)
		}
	}
	// The node escalates to 3: the homelab session is governed by 3 now.
	h.level(3)
	if pc := recvKind(t, mgmt, "posture-change").GetPostureChange(); pc.GetPostureLevel() != 3 {
		t.Errorf("posture change %v", pc)
	}
}

// TestFrameHeadersAtLevelOne: at level 1 transits carry the session's
// frame headers (never payloads); above it they do not.
func TestFrameHeadersAtLevelOne(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(1)
	cs := h.mustOpen(h.cc, h.config("/ops/master", session.Management, 5))
	cs.Send([]byte("hello"))
	recvKind(t, cs, "data")
	cs.Close()
	recvKind(t, cs, "close")
	evs := h.rec.waitFor(t, cs.Grant.GetSessionId(), EventClose)
	var all []FrameHeader
	for _, e := range evs {
		all = append(all, e.FrameHeaders...)
	}
	var kinds []string
	for _, f := range all {
		dir := "out"
		if f.Inbound {
			dir = "in"
		}
		kinds = append(kinds, dir+":"+f.Kind)
	}
	want := []string{"in:attest-init", "out:challenge", "in:attest-verify", "out:grant", "in:data", "out:data", "in:close", "out:close"}
	if d := cmp.Diff(want, kinds); d != "" {
		t.Errorf("frame headers at level 1 (-want +got):\n%s", d)
	}
	hello := sha256.Sum256([]byte("hello"))
	for _, f := range all {
		if f.Kind == "data" && (f.PayloadBytes != 5 || !bytes.Equal(f.PayloadSHA256, hello[:])) {
			t.Errorf("data header %+v, want 5 bytes hashed", f)
		}
		if f.Kind != "data" && f.PayloadSHA256 != nil {
			t.Errorf("%s header carries a payload hash", f.Kind)
		}
	}
	h.level(5)
	cs = h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5))
	cs.Close()
	recvKind(t, cs, "close")
	for _, e := range h.rec.waitFor(t, cs.Grant.GetSessionId(), EventClose) {
		if len(e.FrameHeaders) != 0 {
			t.Errorf("level 5 %s event has frame headers", e.Kind)
		}
	}
}

// TestNotReady: before the step first applies a level, handshakes are
// refused as unavailable.
func TestNotReady(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	_, err := h.open(h.tcp, h.config("/ops/master", session.Management, 5))
	denied(t, err, pb.DenyReason_DENY_REASON_UNAVAILABLE)
	h.wl.SetUnavailable(true)
	h.level(3)
	_, err = h.open(h.tcp, h.config("/ops/master", session.Management, 5))
	denied(t, err, pb.DenyReason_DENY_REASON_UNAVAILABLE)
	h.wl.SetUnavailable(false)
	h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5)).Close()
}

// blockingRecorder never returns from Transit until released.
type blockingRecorder struct{ release chan struct{} }

func (r blockingRecorder) Transit(Event) { <-r.release }

// TestRecorderNeverBlocks: a recorder that hangs costs dropped (counted,
// logged) events, never a handshake.
func TestRecorderNeverBlocks(t *testing.T) {
	rec := blockingRecorder{release: make(chan struct{})}
	h := newHarness(t, harnessOpts{mutate: func(o *Options) { o.Recorder = rec; o.EventQueue = 2 }})
	t.Cleanup(func() { close(rec.release) })
	h.level(5)
	for range 5 {
		cs := h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5))
		cs.Close()
		recvKind(t, cs, "close")
	}
	if h.svc.EventsDropped() == 0 {
		t.Error("no events counted as dropped behind a hung recorder")
	}
}

// TestShutdownCloses: closing the service tells live sessions why.
func TestShutdownCloses(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(5)
	cs := h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5))
	go h.svc.Close()
	if c := recvKind(t, cs, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_SHUTDOWN {
		t.Errorf("close %v", c)
	}
	_, err := h.open(h.tcp, h.config("/ops/master", session.Management, 5))
	denied(t, err, pb.DenyReason_DENY_REASON_UNAVAILABLE)
}

// logRecords keeps log records.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func (l *logRecords) grants() map[slog.Level]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[slog.Level]int{}
	for _, r := range l.recs {
		if r.Message == "shellstream session granted" {
			out[r.Level]++
		}
	}
	return out
}

// TestLevelFourLogsEverySession: at 5 a new session is logged at debug
// (sampling is the notary's job); from 4 down every one is logged at info.
func TestLevelFourLogsEverySession(t *testing.T) {
	logs := &logRecords{}
	h := newHarness(t, harnessOpts{mutate: func(o *Options) { o.Logger = slog.New(logs) }})
	h.level(5)
	h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5)).Close()
	h.level(4)
	for range 2 {
		h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5)).Close()
	}
	if got := logs.grants(); got[slog.LevelDebug] != 1 || got[slog.LevelInfo] != 2 {
		t.Errorf("grant log records by level %v, want 1 debug (level 5) and 2 info (level 4)", got)
	}
}

// TestLevelChangeDuringHandshake: a handshake decided under one level
// does not slip in after the level changed under it.
func TestLevelChangeDuringHandshake(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(3)
	h.wl.Delay.Store(int64(300 * time.Millisecond)) // the agent is slow
	before := h.wl.ValidateCalls()
	errc := make(chan error, 1)
	go func() {
		_, err := h.open(h.tcp, h.config("/ops/master", session.Management, 5))
		errc <- err
	}()
	waitFor(t, func() bool { return h.wl.ValidateCalls() > before }) // re-verification in flight
	h.level(2)
	d := denied(t, <-errc, pb.DenyReason_DENY_REASON_UNAVAILABLE)
	if !strings.Contains(d.Text, "changed during the handshake") {
		t.Errorf("deny text %q", d.Text)
	}
	if n := len(h.svc.Live()); n != 0 {
		t.Errorf("%d live sessions", n)
	}
}

// TestLifetime: a session ends at GRANT's deadline.
func TestLifetime(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(o *Options) { o.Lifetime = time.Hour }})
	h.level(5)
	cs := h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5))
	if got := cs.Grant.GetDeadline().AsTime(); !got.Equal(h.clock.Now().Add(time.Hour)) {
		t.Errorf("deadline %v, want an hour from now", got)
	}
	h.clock.Advance(time.Hour)
	if c := recvKind(t, cs, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_EXPIRED {
		t.Errorf("close %v", c)
	}
}

// notReady is Bundles that have not arrived.
type notReady struct{ Bundles }

func (notReady) Ready() bool { return false }

// TestBundlesNotReady: before the Workload API delivered the trust
// bundles, a handshake is unavailable, not an invalid SAT.
func TestBundlesNotReady(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(o *Options) { o.Bundles = notReady{o.Bundles} }})
	h.level(5)
	_, err := h.open(h.tcp, h.config("/ops/master", session.Management, 5))
	denied(t, err, pb.DenyReason_DENY_REASON_UNAVAILABLE)
}
