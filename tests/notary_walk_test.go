package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/notary/receiver"
)

// startReceiver serves a reference Quartermaster receiver on ln.
func startReceiver(t testing.TB, ln net.Listener) *receiver.Receiver {
	t.Helper()
	r, err := receiver.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	r.Register(g)
	go g.Serve(ln)
	t.Cleanup(func() {
		g.Stop()
		r.Close()
	})
	return r
}

// waitShipped waits until the receiver holds the node's latest
// checkpoint.
func waitShipped(t testing.TB, r *receiver.Receiver, n *notary.Notary) {
	t.Helper()
	want := n.Checkpoint()
	timeout := time.After(60 * time.Second)
	for {
		ch := r.Changed()
		if cp, ok := r.Checkpoint(n.Ledger().Origin()); ok && cp.Size >= want.Size {
			if h, _ := n.Ledger().TreeHash(cp.Size); h != cp.Hash {
				t.Fatalf("the receiver holds a different log: %s vs %s", cp.Hash, h)
			}
			return
		}
		select {
		case <-ch:
		case <-timeout:
			cp, _ := r.Checkpoint(n.Ledger().Origin())
			t.Fatalf("Quartermaster holds %d of %d entries; upstream %+v", cp.Size, want.Size, n.UpstreamStatus())
		}
	}
}

// waitLeaf subscribes to a leaf and returns once it holds want.
func waitLeaf(t testing.TB, c gpb.GNMIClient, p, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sc, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_JSON_IETF,
		Subscription: []*gpb.Subscription{{Path: path(t, p), Mode: gpb.SubscriptionMode_ON_CHANGE}}}}}); err != nil {
		t.Fatal(err)
	}
	last := ""
	for {
		resp, err := sc.Recv()
		if err == io.EOF || err != nil {
			t.Fatalf("wait for %s = %s (last %q): %v", p, want, last, err)
		}
		for _, u := range resp.GetUpdate().GetUpdate() {
			last = typedString(u.GetVal())
			if last == want {
				return
			}
		}
	}
}

func typedString(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_UintVal:
		return strconv.FormatUint(x.UintVal, 10)
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_JsonIetfVal:
		return string(x.JsonIetfVal)
	case *gpb.TypedValue_JsonVal:
		return string(x.JsonVal)
	}
	return v.String()
}

// notaryDaemonCfg is a daemon with the dataplane off that ships to qm.
func notaryDaemonCfg(t testing.TB, qm string) config.Config {
	t.Helper()
	dir := t.TempDir()
	c := config.Defaults()
	c.DataDir, c.Listen, c.Socket, c.NodeName = dir, "", filepath.Join(dir, "kedge.sock"), "walk-node"
	c.Dataplane, c.ShmPath, c.BPFPinDir, c.MetricsListen = "off", "off", "off", "off"
	c.Quartermaster, c.QuartermasterInsecure = qm, true
	if err := c.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return c
}

func unixClient(t testing.TB, sock string) gpb.GNMIClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return gpb.NewGNMIClient(conn)
}

// TestNotaryWalk5To1To5 walks the posture 5→4→3→2→1→2→3→4→5 with
// session transits and route changes at every level, then checks that
// what Quartermaster received matches the seed's notarization table level
// by level. The transits go through the notary's transit API (the one
// Shellstream's recorder calls), so the test chooses the session ids and
// can check the sampling exactly, 100 sessions a level, with frame headers
// at every level; TestNotaryRecordsShellstreamSessions does the same with
// real Shellstream sessions.
func TestNotaryWalk5To1To5(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := startReceiver(t, ln)
	cfg := notaryDaemonCfg(t, ln.Addr().String())
	d, err := server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(5 * time.Second) })
	c := unixClient(t, d.SocketPath())
	n := d.Notary()
	ctx := context.Background()

	walk := []uint8{5, 4, 3, 2, 1, 2, 3, 4, 5}
	const sessions = 100
	devPath := "/kedge/routes/route[prefix=10.88.0.0/24][table=254]/config/device"
	for si, lvl := range walk {
		setLevel(t, c, uint64(lvl))
		waitLeaf(t, c, "/kedge/notary/state/level", strconv.Itoa(int(lvl)))
		for i := 0; i < sessions; i++ {
			id := fmt.Sprintf("walk%d-%d", si, i)
			fr := []notarymodel.FrameHeader{{Inbound: true, Type: "ATTEST-INIT", Seq: 1, Length: 200, PayloadSHA256: make([]byte, 32)}}
			n.RecordTransit(notarymodel.Transit{SessionID: id, Kind: notarymodel.TransitOpen, Level: lvl, SessionType: "routine", Frames: fr})
			n.RecordTransit(notarymodel.Transit{SessionID: id, Kind: notarymodel.TransitClose, Level: lvl, SessionType: "routine", Reason: "done"})
		}
		for _, v := range []string{"a", "b"} {
			if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, "/kedge/routes/route[prefix=10.88.0.0/24][table=254]/config"),
				Val: jsonVal(fmt.Appendf(nil, `{"prefix":"10.88.0.0/24","table":254,"device":"w%d%s"}`, si, v))}}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitShipped(t, r, n)
	es, err := r.Entries(n.Ledger().Origin(), 0)
	if err != nil {
		t.Fatal(err)
	}

	type segment struct {
		transits map[string][]string // session → kinds
		muts     int
		entries  []*qmv1.LogEntry
	}
	segs := make([]segment, len(walk))
	for i := range segs {
		segs[i].transits = map[string][]string{}
	}
	devHash := map[string]int{}
	for si := range walk {
		for _, v := range []string{"a", "b"} {
			devHash[string(notarymodel.ValueHash(tree.String(fmt.Sprintf("w%d%s", si, v))))] = si
		}
	}
	var forensic []*qmv1.LogEntry
	var transitions []*qmv1.PostureTransitionArtifact
	for _, e := range es {
		switch {
		case e.GetSessionTransit() != nil:
			st := e.GetSessionTransit()
			var si, i int
			if _, err := fmt.Sscanf(st.GetSessionId(), "walk%d-%d", &si, &i); err != nil {
				t.Fatalf("unexpected session %q", st.GetSessionId())
			}
			segs[si].transits[st.GetSessionId()] = append(segs[si].transits[st.GetSessionId()], st.GetKind().String())
			segs[si].entries = append(segs[si].entries, e)
		case e.GetNetworkMutation() != nil:
			for _, ch := range e.GetNetworkMutation().GetChanges() {
				if si, ok := devHash[string(ch.GetAfterSha256())]; ok && ch.GetPath() == devPath {
					segs[si].muts++
					segs[si].entries = append(segs[si].entries, e)
					m := e.GetNetworkMutation()
					if m.GetPostureLevel() != uint32(walk[si]) || m.GetWriter().GetTier() != "master" {
						t.Errorf("segment %d: mutation at level %d by %v, want level %d by master", si, m.GetPostureLevel(), m.GetWriter(), walk[si])
					}
				}
			}
		case e.GetForensicSnapshot() != nil:
			forensic = append(forensic, e)
		case e.GetPostureTransition() != nil:
			transitions = append(transitions, e.GetPostureTransition())
		}
	}
	for si, lvl := range walk {
		a, _ := accord.Default(lvl)
		sg := segs[si]
		want := 0
		for i := 0; i < sessions; i++ {
			id := fmt.Sprintf("walk%d-%d", si, i)
			sampled := notarymodel.Sampled(id, a.NotarySamplingPercent)
			kinds := sg.transits[id]
			switch {
			case sampled && (len(kinds) != 2 || kinds[0] != "TRANSIT_KIND_OPEN" || kinds[1] != "TRANSIT_KIND_CLOSE"):
				t.Errorf("level %d (segment %d): sampled session %s recorded as %v, want open and close", lvl, si, id, kinds)
			case !sampled && len(kinds) != 0:
				t.Errorf("level %d (segment %d): unsampled session %s recorded", lvl, si, id)
			}
			if sampled {
				want++
			}
		}
		if sg.muts != 2 {
			t.Errorf("level %d (segment %d): %d of 2 route changes notarized", lvl, si, sg.muts)
		}
		for _, e := range sg.entries {
			f := e.GetFidelity()
			if f.GetSamplingPercent() != uint32(a.NotarySamplingPercent) || f.GetFlushMode() != notarymodel.FlushMode(a.NotaryFlush) ||
				f.GetPayloadHashing() != a.NotaryPayloadHashing {
				t.Errorf("level %d (segment %d): entry %d recorded with fidelity %v", lvl, si, e.GetIndex(), f)
			}
			if st := e.GetSessionTransit(); st != nil {
				if st.GetPostureLevelAtTransit() != uint32(lvl) {
					t.Errorf("level %d: transit at level %d", lvl, st.GetPostureLevelAtTransit())
				}
				if hdr := len(st.GetFrameHeaders()) > 0; st.GetKind() == qmv1.TransitKind_TRANSIT_KIND_OPEN && hdr != (lvl == 1) {
					t.Errorf("level %d: frame headers recorded: %v", lvl, hdr)
				}
			}
			// Level 1 flushes on every record: each has its own checkpoint.
			if lvl == 1 {
				if _, ok, err := n.Ledger().CheckpointAt(int64(e.GetIndex()) + 1); err != nil || !ok {
					t.Errorf("level 1: entry %d has no checkpoint of its own", e.GetIndex())
				}
			}
		}
		t.Logf("level %d: %d of %d sessions recorded end to end (accord: %d%%), %d route changes, %d entries",
			lvl, want, sessions, a.NotarySamplingPercent, sg.muts, len(sg.entries))
	}
	if len(forensic) != 1 || forensic[0].GetForensicSnapshot().GetToLevel() != 1 {
		t.Errorf("forensic snapshots: %d, want one on entering level 1", len(forensic))
	}
	var path []string
	for _, tr := range transitions {
		if tr.GetFromLevel() != tr.GetToLevel() {
			path = append(path, fmt.Sprintf("%d→%d", tr.GetFromLevel(), tr.GetToLevel()))
			if tr.GetResult() != "ok" || len(tr.GetSteps()) == 0 {
				t.Errorf("transition %d→%d: result %s with %d steps", tr.GetFromLevel(), tr.GetToLevel(), tr.GetResult(), len(tr.GetSteps()))
			}
		}
	}
	if got := fmt.Sprint(path); got != "[5→4 4→3 3→2 2→1 1→2 2→3 3→4 4→5]" {
		t.Errorf("posture transitions recorded: %s", got)
	}
}
