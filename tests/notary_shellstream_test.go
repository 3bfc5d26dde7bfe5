package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/shellstream"
)

// TestNotaryRecordsShellstreamSessions walks the anchor node 5→3→2→1→5
// with real Shellstream sessions from the homelab node (management
// sessions: critical, so allowed down to 2) and checks its notary: a
// session is recorded end to end (open, grant, close) exactly when its id
// is sampled at the level's share, every transit carries the anchor's
// level and the session's governing level, the peer and its tier; at
// level 1 the remote attempt is denied and that transit is recorded with
// its metadata hash.
func TestNotaryRecordsShellstreamSessions(t *testing.T) {
	l := newSSLab(t)
	A, B := l.anchor, l.home
	cc := A.dialFrom(t, B.ns)
	peer := l.auth.ID(walkIdentities[session.Management]).String()
	granted := map[uint8][]string{}
	for _, lvl := range []uint8{5, 3, 2, 1, 5} {
		setMeshLevel(t, A.gc, uint64(lvl))
		waitLeaf(t, A.gc, "/kedge/notary/state/level", strconv.Itoa(int(lvl)))
		if lvl == 1 {
			if _, err := ssOpen(t, cc, l.cfg(t, A, walkIdentities[session.Management], session.Management, B, 5)); err == nil {
				t.Fatal("level 1: a remote session was granted")
			}
			continue
		}
		ssReady(t, cc) // after level 1 the channel redials after a backoff
		for i := 0; i < 10; i++ {
			cs := ssMustOpen(t, cc, l.cfg(t, A, walkIdentities[session.Management], session.Management, B, 5))
			ssEchoOnce(t, cs, fmt.Sprint("notarized ", lvl, i))
			ssCloseAndWait(t, cs)
			granted[lvl] = append(granted[lvl], cs.Grant.GetSessionId())
		}
	}

	n := A.d.Notary()
	type rec struct {
		kinds []qmv1.TransitKind
		st    *qmv1.SessionTransitArtifact
	}
	want := 0
	levelOf := map[string]uint8{}
	for lvl, ids := range granted {
		a, _ := accord.Default(lvl)
		for _, id := range ids {
			levelOf[id] = lvl
			if notarymodel.Sampled(id, a.NotarySamplingPercent) {
				want += 3
			}
		}
	}
	timeout := time.After(30 * time.Second)
	for {
		grew := n.Grew()
		es, _, err := n.List(notary.Query{Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_SESSION_TRANSIT}, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*rec{}
		var denied []*qmv1.SessionTransitArtifact
		count := 0
		for _, e := range es {
			st := e.GetSessionTransit()
			if st.GetKind() == qmv1.TransitKind_TRANSIT_KIND_DENY {
				denied = append(denied, st)
				continue
			}
			if _, ours := levelOf[st.GetSessionId()]; !ours {
				continue // the level-1 attempt's open
			}
			r := got[st.GetSessionId()]
			if r == nil {
				r = &rec{}
				got[st.GetSessionId()] = r
			}
			r.kinds, r.st = append(r.kinds, st.GetKind()), st
			count++
			lvl := levelOf[st.GetSessionId()]
			// The peer is verified at ATTEST-VERIFY, after the open.
			verified := st.GetKind() == qmv1.TransitKind_TRANSIT_KIND_OPEN || (st.GetPeerSpiffeId() == peer && st.GetTier() == "master")
			if st.GetPostureLevelAtTransit() != uint32(lvl) || st.GetEffectiveSessionLevel() != uint32(lvl) ||
				!verified || st.GetPeerNode() != "homelab" {
				t.Fatalf("level %d transit: %v", lvl, st)
			}
		}
		if count >= want && len(denied) > 0 {
			for id, lvl := range levelOf {
				a, _ := accord.Default(lvl)
				r, s := got[id], notarymodel.Sampled(id, a.NotarySamplingPercent)
				switch {
				case s && (r == nil || fmt.Sprint(r.kinds) != "[TRANSIT_KIND_OPEN TRANSIT_KIND_GRANT TRANSIT_KIND_CLOSE]"):
					t.Errorf("level %d: sampled session %s recorded as %v", lvl, id, r)
				case !s && r != nil:
					t.Errorf("level %d: unsampled session %s recorded", lvl, id)
				}
			}
			d := denied[0]
			// Level 1 hashes the transit's metadata; Shellstream attaches
			// frame headers only to sessions it governs at level 1, and a
			// refused remote ATTEST-INIT never becomes one.
			if d.GetPostureLevelAtTransit() != 1 || d.GetMetadataSha256() == nil ||
				!bytes.Equal(d.GetMetadataSha256(), notarymodel.TransitDigest(d)) {
				t.Errorf("level 1 deny: level %d, metadata hash %x", d.GetPostureLevelAtTransit(), d.GetMetadataSha256())
			}
			t.Logf("sessions recorded per level: %v of %v granted; level-1 deny %q with %d frame headers",
				count/3, len(levelOf), d.GetReason(), len(d.GetFrameHeaders()))
			return
		}
		select {
		case <-grew:
		case <-timeout:
			t.Fatalf("%d of %d transits recorded, %d denials", count, want, len(denied))
		}
	}
}

// ssCloseAndWait closes a session and reads until the anchor ends the
// stream, which it does only after tearing the session down: the close
// transit carries the level the session closed at, so the next level
// must not be set before then (it was, once in a full run: a level-5
// session's close recorded at 3).
func ssCloseAndWait(t *testing.T, cs *shellstream.ClientSession) {
	t.Helper()
	if err := cs.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for {
		_, err := cs.Recv() // the anchor's CLOSE, then the end
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("after close: %v", err)
		}
	}
}
