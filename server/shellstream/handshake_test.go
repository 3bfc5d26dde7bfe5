package shellstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/shellstream/spiffetest"
)

// TestCacheByLevel proves where validation comes from: at 5 and 4 the
// agent is never asked and a repeated token is a cache hit; at 3 and 2
// every handshake asks the agent and the cache is not touched.
func TestCacheByLevel(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, level := range []uint8{5, 4, 3, 2} {
		h.level(level)
		before, calls := h.svc.Stats(), h.wl.ValidateCalls()
		cfg := h.config("/ops/master", session.Management, 5)
		for i := range 3 {
			cs := h.mustOpen(h.tcp, cfg) // the same SAT three times
			wantMode := pb.VerificationMode_VERIFICATION_MODE_CACHED
			if level <= 3 {
				wantMode = pb.VerificationMode_VERIFICATION_MODE_REVERIFIED
			}
			if cs.Grant.GetVerification() != wantMode || cs.Grant.GetEffectiveLevel() != uint32(level) {
				t.Fatalf("level %d handshake %d: grant %v", level, i, cs.Grant)
			}
			cs.Close()
		}
		after := h.svc.Stats()
		gotCalls := h.wl.ValidateCalls() - calls
		switch level {
		case 5, 4:
			if gotCalls != 0 || after.AgentCalls != before.AgentCalls {
				t.Errorf("level %d: %d ValidateJWTSVID calls, want 0", level, gotCalls)
			}
			if after.CacheHits-before.CacheHits != 2 || after.LocalValidations-before.LocalValidations != 1 {
				t.Errorf("level %d: %d cache hits and %d local validations for one token used thrice, want 2 and 1",
					level, after.CacheHits-before.CacheHits, after.LocalValidations-before.LocalValidations)
			}
		default:
			if gotCalls != 3 {
				t.Errorf("level %d: %d ValidateJWTSVID calls for three handshakes, want 3", level, gotCalls)
			}
			if after.CacheHits != before.CacheHits || after.LocalValidations != before.LocalValidations {
				t.Errorf("level %d touched the cache: %+v -> %+v", level, before, after)
			}
		}
	}
}

// TestCachedTokenExpires: a cached token is not used past its expiry.
func TestCachedTokenExpires(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(5)
	id := h.auth.ID("/ops/master")
	tok, err := h.auth.JWTSVID(spiffetest.Claims{Subject: id, Audience: []string{testAudience}, Expiry: time.Now().Add(90 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	h.mustOpen(h.tcp, h.configWith(id, tok, session.Management, 5)).Close()
	h.clock.Advance(2 * time.Minute) // past exp for the cache's clock
	_, err = h.open(h.tcp, h.configWith(id, tok, session.Management, 5))
	// The cache entry has expired, so the token is validated again; go-spiffe
	// checks exp against the wall clock with a minute's leeway, so it still
	// passes there: what matters is that the cache was not used.
	if err != nil {
		t.Fatalf("re-validated token refused: %v", err)
	}
	if st := h.svc.Stats(); st.CacheHits != 0 || st.LocalValidations != 2 {
		t.Errorf("stats %+v: want no cache hit and two validations", st)
	}
}

// TestForgedSATs: every forged or mangled token is refused with
// INVALID_SAT at a cached and a re-verifying level, and the server keeps
// serving.
func TestForgedSATs(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	base := runtime.NumGoroutine()
	id := h.auth.ID("/ops/master")
	for _, level := range []uint8{5, 3} {
		h.level(level)
		for _, f := range spiffetest.Forgeries {
			tok, err := h.auth.Forge(f, id, testAudience)
			if err != nil {
				t.Fatal(err)
			}
			_, err = h.open(h.tcp, h.configWith(id, tok, session.Management, 5))
			d := denied(t, err, pb.DenyReason_DENY_REASON_INVALID_SAT)
			t.Logf("level %d %s: %s", level, f, d.Text)
		}
		// Still serving.
		h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5)).Close()
	}
	h.cc.Close()
	h.tcp.Close()
	goroutinesSettle(t, base)
}

// TestProofFailures: the SVID must be the SAT's subject, chain to the
// trust bundle, and have signed this handshake.
func TestProofFailures(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(5)
	good := h.config("/ops/master", session.Management, 5)

	other := h.config("/ops/operator", session.Management, 5)
	mismatch := good
	mismatch.Chain, mismatch.Key = other.Chain, other.Key
	_, err := h.open(h.tcp, mismatch)
	if d := denied(t, err, pb.DenyReason_DENY_REASON_INVALID_PROOF); !strings.Contains(d.Text, "not the sat's subject") {
		t.Errorf("mismatch: %s", d.Text)
	}

	foreign, err := spiffetest.NewAuthority("kedge.test") // same name, other CA
	if err != nil {
		t.Fatal(err)
	}
	fsvid, err := foreign.X509SVID(h.auth.ID("/ops/master"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	untrusted := good
	untrusted.Chain, untrusted.Key = fsvid.Certificates, fsvid.PrivateKey
	_, err = h.open(h.tcp, untrusted)
	denied(t, err, pb.DenyReason_DENY_REASON_INVALID_PROOF)

	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongKey := good
	wrongKey.Key = k // the chain's key is another
	_, err = h.open(h.tcp, wrongKey)
	if d := denied(t, err, pb.DenyReason_DENY_REASON_INVALID_PROOF); !strings.Contains(d.Text, "signature") {
		t.Errorf("wrong key: %s", d.Text)
	}

	noTier := h.config("/ops/nobody", session.Management, 5)
	_, err = h.open(h.tcp, noTier)
	denied(t, err, pb.DenyReason_DENY_REASON_UNAUTHORIZED)
	h.mustOpen(h.tcp, good).Close()
}

// rawInit opens a stream and sends frames by hand.
func rawStream(t *testing.T, h *harness) pb.ShellstreamService_SessionClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := pb.NewShellstreamServiceClient(h.tcp).Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func initFrame(cfg ClientConfig, nonce []byte) *pb.SessionRequest {
	return &pb.SessionRequest{Seq: 1, Frame: &pb.SessionRequest_AttestInit{AttestInit: &pb.AttestInit{
		Sat: cfg.SAT, SessionType: TypeToProto(cfg.Type), Node: cfg.Node, Cluster: cfg.Cluster,
		PostureLevel: uint32(cfg.Level), Nonce: nonce}}}
}

func expectDeny(t *testing.T, s pb.ShellstreamService_SessionClient, want pb.DenyReason) string {
	t.Helper()
	for {
		f, err := s.Recv()
		if err != nil {
			t.Fatalf("waiting for DENY %s: %v", want, err)
		}
		if d := f.GetDeny(); d != nil {
			if d.GetReason() != want {
				t.Fatalf("DENY %s (%s), want %s", d.GetReason(), d.GetText(), want)
			}
			return d.GetText()
		}
		if f.GetChallenge() == nil {
			t.Fatalf("got %s, want DENY", responseKind(f))
		}
	}
}

func TestBadFrames(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(o *Options) { o.MaxFrameBytes = 64 << 10 }})
	h.level(5)
	base := runtime.NumGoroutine()
	cfg := h.config("/ops/master", session.Management, 5)
	nonce := func() []byte { b := make([]byte, 32); rand.Read(b); return b }

	t.Run("verify before init", func(t *testing.T) {
		s := rawStream(t, h)
		s.Send(&pb.SessionRequest{Seq: 1, Frame: &pb.SessionRequest_AttestVerify{AttestVerify: &pb.AttestVerify{}}})
		if txt := expectDeny(t, s, pb.DenyReason_DENY_REASON_BAD_REQUEST); !strings.Contains(txt, "expected attest-init") {
			t.Error(txt)
		}
	})
	t.Run("data before grant", func(t *testing.T) {
		s := rawStream(t, h)
		s.Send(initFrame(cfg, nonce()))
		s.Send(&pb.SessionRequest{Seq: 2, Frame: &pb.SessionRequest_Data{Data: &pb.Data{Payload: []byte("x")}}})
		if txt := expectDeny(t, s, pb.DenyReason_DENY_REASON_BAD_REQUEST); !strings.Contains(txt, "expected attest-verify") {
			t.Error(txt)
		}
	})
	t.Run("sequence gap", func(t *testing.T) {
		s := rawStream(t, h)
		f := initFrame(cfg, nonce())
		f.Seq = 7
		s.Send(f)
		if txt := expectDeny(t, s, pb.DenyReason_DENY_REASON_BAD_REQUEST); !strings.Contains(txt, "sequence") {
			t.Error(txt)
		}
	})
	t.Run("replayed nonce", func(t *testing.T) {
		n := nonce()
		s := rawStream(t, h)
		s.Send(initFrame(cfg, n))
		if f, err := s.Recv(); err != nil || f.GetChallenge() == nil {
			t.Fatalf("first use: %v %v", f, err)
		}
		s2 := rawStream(t, h)
		s2.Send(initFrame(cfg, n))
		expectDeny(t, s2, pb.DenyReason_DENY_REASON_REPLAY)
	})
	t.Run("bad fields", func(t *testing.T) {
		for name, mut := range map[string]func(*pb.AttestInit){
			"short nonce": func(a *pb.AttestInit) { a.Nonce = a.Nonce[:8] },
			"level 0":     func(a *pb.AttestInit) { a.PostureLevel = 0 },
			"level 9":     func(a *pb.AttestInit) { a.PostureLevel = 9 },
			"no type":     func(a *pb.AttestInit) { a.SessionType = pb.SessionType_SESSION_TYPE_UNSPECIFIED },
			"no sat":      func(a *pb.AttestInit) { a.Sat = "" },
		} {
			f := initFrame(cfg, nonce())
			mut(f.GetAttestInit())
			s := rawStream(t, h)
			s.Send(f)
			t.Logf("%s: %s", name, expectDeny(t, s, pb.DenyReason_DENY_REASON_BAD_REQUEST))
		}
	})
	t.Run("oversized before grant", func(t *testing.T) {
		s := rawStream(t, h)
		f := initFrame(cfg, nonce())
		f.GetAttestInit().Node = strings.Repeat("n", 100<<10)
		s.Send(f)
		if txt := expectDeny(t, s, pb.DenyReason_DENY_REASON_BAD_REQUEST); !strings.Contains(txt, "exceeds the limit") {
			t.Error(txt)
		}
	})
	t.Run("after grant", func(t *testing.T) {
		for name, f := range map[string]*pb.SessionRequest{
			"oversized data": {Frame: &pb.SessionRequest_Data{Data: &pb.Data{Payload: make([]byte, 100<<10)}}},
			"second init":    initFrame(cfg, nonce()),
			"bad level":      {Frame: &pb.SessionRequest_PostureChange{PostureChange: &pb.PostureChange{PostureLevel: 6}}},
		} {
			cs := h.mustOpen(h.tcp, h.config("/ops/master", session.Management, 5))
			f.Seq = 3
			if err := cs.Raw().Send(f); err != nil {
				t.Fatal(err)
			}
			c := recvKind(t, cs, "close").GetClose()
			if c.GetReason() != pb.CloseReason_CLOSE_REASON_PROTOCOL {
				t.Errorf("%s: close %v", name, c)
			}
			t.Logf("%s: %s", name, c.GetText())
		}
	})
	h.mustOpen(h.tcp, cfg).Close() // still serving
	h.cc.Close()
	h.tcp.Close()
	goroutinesSettle(t, base)
}

func TestHandshakeTimeout(t *testing.T) {
	h := newHarness(t, harnessOpts{mutate: func(o *Options) { o.HandshakeTimeout = 10 * time.Second }})
	h.level(5)
	cfg := h.config("/ops/master", session.Management, 5)
	s := rawStream(t, h)
	n := make([]byte, 32)
	rand.Read(n)
	s.Send(initFrame(cfg, n))
	if f, err := s.Recv(); err != nil || f.GetChallenge() == nil {
		t.Fatalf("challenge: %v %v", f, err)
	}
	// The initiator never answers the challenge.
	h.clock.Advance(11 * time.Second)
	expectDeny(t, s, pb.DenyReason_DENY_REASON_TIMEOUT)
}

// TestSlowReader: a client that stops reading while its endpoint floods
// it is cut off after SendTimeout, the server keeps serving, and nothing
// leaks.
func TestSlowReader(t *testing.T) {
	h := newHarness(t, harnessOpts{realClock: true, flood: true, mutate: func(o *Options) { o.SendTimeout = 300 * time.Millisecond }})
	h.level(5)
	base := runtime.NumGoroutine()
	cs := h.mustOpen(h.tcp, h.config("/ops/master", session.Operator, 5))
	id := cs.Grant.GetSessionId()
	// Never read: the server's sends back up behind flow control.
	evs := h.rec.waitFor(t, id, EventClose)
	if last := evs[len(evs)-1]; !strings.Contains(last.Reason, "stopped reading") {
		t.Errorf("close reason %q", last.Reason)
	}
	if len(h.svc.Live()) != 0 {
		t.Errorf("live sessions after the cut: %v", h.svc.Live())
	}
	h.mustOpen(h.tcp, h.config("/ops/master", session.Monitoring, 5)).Close()
	h.cc.Close()
	h.tcp.Close()
	goroutinesSettle(t, base)
}

func TestRelayAndPreamble(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.level(5)
	cs := h.mustOpen(h.tcp, h.config("/ops/operator", session.Operator, 5))
	p := <-h.eps[session.Operator].got
	want := Preamble{Version: 1, Session: cs.Grant.GetSessionId(), Peer: h.auth.ID("/ops/operator").String(), Tier: "operator",
		Type: "operator", Node: "node-b", Cluster: "lab", Capabilities: []string{"observe", "execute", "propose"}, EffectiveLevel: 5}
	if d := cmp.Diff(want, p); d != "" {
		t.Errorf("preamble (-want +got):\n%s", d)
	}
	msg := []byte("uptime\n")
	for range 3 {
		if err := cs.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	for len(got) < 3*len(msg) {
		got = append(got, recvKind(t, cs, "data").GetData().GetPayload()...)
	}
	if string(got) != strings.Repeat(string(msg), 3) {
		t.Errorf("echo %q", got)
	}
	// The sender counts a frame once Send returns, which may be after the
	// client has it.
	var st []State
	waitFor(t, func() bool {
		st = h.svc.Live()
		return len(st) == 1 && st[0].BytesOut == 21
	})
	if st[0].BytesIn != 21 || st[0].FramesIn != 5 || st[0].FramesOut < 3 {
		t.Errorf("counters %+v", st)
	}
	cs.Close()
	if c := recvKind(t, cs, "close").GetClose(); c.GetReason() != pb.CloseReason_CLOSE_REASON_NORMAL {
		t.Errorf("close %v", c)
	}
}
