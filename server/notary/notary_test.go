package notary

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/posture"
)

// Every row of the seed's notarization table, as the running notary
// applies it: which session transits are recorded (by id, at the level's
// share), that every mutation is, how the log flushes, and what payload
// hashing and frame headers add.
func TestFidelityTableRows(t *testing.T) {
	for lvl := uint8(5); lvl >= 1; lvl-- {
		t.Run(fmt.Sprintf("level %d", lvl), func(t *testing.T) {
			f := newFixture(t, nil)
			f.level(t, lvl)
			f.sync(t)
			a, _ := accord.Default(lvl)
			start := f.n.Ledger().Size()

			// Session transits: exactly the sampled ids.
			want := map[string]bool{}
			for i := 0; i < 400; i++ {
				id := fmt.Sprintf("sess-%d-%d", lvl, i)
				tr := notarymodel.Transit{SessionID: id, Kind: notarymodel.TransitOpen, SessionType: "routine",
					Frames: []notarymodel.FrameHeader{{Inbound: true, Type: "ATTEST-INIT", Seq: 1, Length: 99, PayloadSHA256: make([]byte, 32)}}}
				got := f.n.RecordTransit(tr)
				if s := notarymodel.Sampled(id, a.NotarySamplingPercent); got != s {
					t.Fatalf("%s: recorded %v, sampled at %d%% %v", id, got, a.NotarySamplingPercent, s)
				}
				if got {
					want[id] = true
				}
			}
			// Mutations: every one, at every level.
			f.routes(t, 0, 3, "eth0")
			f.routes(t, 0, 3, "eth1")
			f.settle(t)

			// Flush mode.
			switch a.NotaryFlush {
			case accord.FlushBatched:
				if got := f.n.Ledger().Size(); got != start {
					t.Fatalf("batched: %d entries durable before the batch timer fired", got-start)
				}
				if f.tm.armed() == 0 {
					t.Fatal("batched: no batch timer armed")
				}
				grew := f.n.Grew()
				f.tm.fire()
				<-grew
				f.settle(t)
			case accord.FlushImmediate:
				if f.n.Ledger().PendingEntries() != 0 {
					t.Fatalf("immediate: %d entries still pending after the writer settled", f.n.Ledger().PendingEntries())
				}
			case accord.FlushEveryRecord:
			}
			end := f.n.Ledger().Size()
			es := f.entries(t, start)
			if int64(len(es)) != end-start || len(es) != len(want)+2 {
				t.Fatalf("%d entries, want %d transits + 2 mutations", len(es), len(want))
			}
			cps := f.checkpoints(t, start, end)
			switch a.NotaryFlush {
			case accord.FlushEveryRecord:
				if cps != len(es) {
					t.Errorf("every-record: %d checkpoints for %d entries", cps, len(es))
				}
			case accord.FlushBatched:
				if cps != 1 {
					t.Errorf("batched: %d checkpoints for one batch", cps)
				}
			}
			muts := 0
			wantChanges := []uint32{15, 3} // 3 new routes: keys, their config mirrors and device; then 3 devices
			for _, e := range es {
				if e.GetFidelity().GetSamplingPercent() != uint32(a.NotarySamplingPercent) ||
					e.GetFidelity().GetFlushMode() != notarymodel.FlushMode(a.NotaryFlush) ||
					e.GetFidelity().GetPayloadHashing() != a.NotaryPayloadHashing {
					t.Errorf("entry %d records fidelity %v", e.GetIndex(), e.GetFidelity())
				}
				if st := e.GetSessionTransit(); st != nil {
					if !want[st.GetSessionId()] {
						t.Errorf("unsampled session %s recorded", st.GetSessionId())
					}
					delete(want, st.GetSessionId())
					hdrs := len(st.GetFrameHeaders()) > 0
					if hdrs != a.NotaryPayloadHashing || (st.GetMetadataSha256() != nil) != a.NotaryPayloadHashing {
						t.Errorf("level %d: transit frame headers %v, metadata hash %x", lvl, hdrs, st.GetMetadataSha256())
					}
				}
				if m := e.GetNetworkMutation(); m != nil {
					if muts < 2 && (m.GetChangeCount() != wantChanges[muts] || len(m.GetChanges()) != int(wantChanges[muts])) {
						t.Errorf("mutation %d lists %d of %d changes, want %d", muts, len(m.GetChanges()), m.GetChangeCount(), wantChanges[muts])
					}
					muts++
				}
			}
			if len(want) != 0 || muts != 2 {
				t.Errorf("missing transits %v, mutations %d of 2", want, muts)
			}
			// Payload hashing: a commit larger than the listing bound is
			// listed in full only at level 1.
			f.routes(t, 100, notarymodel.MaxListedChanges/5+10, "eth0")
			f.sync(t)
			es = f.entries(t, end)
			m := es[len(es)-1].GetNetworkMutation()
			if full := !m.GetChangesTruncated() && len(m.GetChanges()) == int(m.GetChangeCount()); full != a.NotaryPayloadHashing {
				t.Errorf("level %d: %d of %d changes listed, truncated %v", lvl, len(m.GetChanges()), m.GetChangeCount(), m.GetChangesTruncated())
			}
		})
	}
}

// A session sampled while the level was strict is recorded to its end
// after the level relaxes; one that was not sampled stays unrecorded.
func TestSampledSessionIsRecordedEndToEnd(t *testing.T) {
	f := newFixture(t, nil)
	f.level(t, 3)
	var in, out string
	for i := 0; in == "" || out == ""; i++ {
		id := fmt.Sprintf("s%d", i)
		if !notarymodel.Sampled(id, 10) && in == "" {
			in = id
		} else if !notarymodel.Sampled(id, 10) && id != in {
			out = id
		}
	}
	if !f.n.RecordTransit(notarymodel.Transit{SessionID: in, Kind: notarymodel.TransitOpen}) {
		t.Fatal("level 3: a transit not recorded")
	}
	f.level(t, 5)
	if !f.n.RecordTransit(notarymodel.Transit{SessionID: in, Kind: notarymodel.TransitDrain}) ||
		!f.n.RecordTransit(notarymodel.Transit{SessionID: in, Kind: notarymodel.TransitClose}) {
		t.Error("level 5: the rest of a session sampled at level 3 was not recorded")
	}
	if f.n.RecordTransit(notarymodel.Transit{SessionID: in, Kind: notarymodel.TransitOpen}) {
		t.Error("after its close, a session is still remembered as sampled")
	}
	if f.n.RecordTransit(notarymodel.Transit{SessionID: out, Kind: notarymodel.TransitOpen}) {
		t.Error("level 5: an unsampled session recorded")
	}
}

func TestForensicTransitionAndState(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.KernelRoutes = func(context.Context) ([]string, error) { return []string{"10.0.0.0/24 table 254 dev eth0"}, nil }
	})
	f.level(t, 1)
	doc := []byte(`{"seq":7,"from":5,"to":1,"mesh":{"peers":{"peer":[{"name":"a"}]}},"routes":{"route":[{},{}]},"sessions":{},"sha256":"00"}`)
	if err := f.n.EmitForensic(context.Background(), 7, doc); err != nil {
		t.Fatal(err)
	}
	es := f.entries(t, 0)
	fs := es[len(es)-1].GetForensicSnapshot()
	if fs == nil || fs.GetTransitionSequence() != 7 || fs.GetToLevel() != 1 || fs.GetPeers() != 1 || fs.GetRoutes() != 2 ||
		len(fs.GetKernelRoutes()) != 1 || es[len(es)-1].GetPostureLevel() != 1 {
		t.Fatalf("forensic snapshot entry: %v", es[len(es)-1])
	}
	start := time.Unix(1700000000, 0)
	f.n.RecordTransition(posture.Report{Seq: 7, From: 5, To: 1, Source: posture.SourceConfig, Started: start,
		Duration: 3 * time.Millisecond, Result: posture.ResultOK,
		Steps: []posture.StepResult{{Index: 0, Name: "shm", Started: start, Duration: time.Microsecond, Result: posture.ResultOK}}})
	f.sync(t)
	es = f.entries(t, 0)
	tr := es[len(es)-1].GetPostureTransition()
	if tr == nil || tr.GetFromLevel() != 5 || tr.GetToLevel() != 1 || tr.GetSource() != "config" || len(tr.GetSteps()) != 1 ||
		tr.GetSteps()[0].GetName() != "shm" || tr.GetDurationNanos() != int64(3*time.Millisecond) {
		t.Fatalf("transition entry: %v", es[len(es)-1])
	}
	if err := f.n.PublishState(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"sampling-percent": "100", "flush-mode": "every-record", "payload-hashing": "true", "frame-headers": "true",
		"level": "1", "records": fmt.Sprint(f.n.Ledger().Size()), "root-hash": f.n.Checkpoint().Hash.String(),
		"last-checkpoint-size": fmt.Sprint(f.n.Checkpoint().Size), "upstream-state": "disabled",
		"origin": "kedge.notary/node-1", "verifier-key": f.n.VerifierKey(), "dropped-transits": "0",
	}
	_ = f.st.Read(func(tr *tree.Tree) error {
		st := tr.Root().Sub("kedge").Sub("notary").Sub("state")
		for leaf, v := range want {
			if got := st.Get(leaf).String(); got != v {
				t.Errorf("state %s = %q, want %q", leaf, got, v)
			}
		}
		if st.Get("last-flush").UintVal() == 0 || st.Get("last-checkpoint-time").UintVal() == 0 {
			t.Error("state: no last flush or checkpoint time")
		}
		return nil
	})
}

// A full queue drops transits (recording never blocks a handshake) and
// counts them; mutations are never dropped (they come from the store).
func TestFullQueueDropsTransits(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	n, err := Open(Options{Dir: t.TempDir(), Node: "n", Store: st, QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// Not started: nothing drains the queue.
	a, _ := accord.Default(3)
	f := notarymodel.FidelityOf(a, nil)
	n.fid.Store(&f)
	got := 0
	for i := 0; i < 5; i++ {
		if n.RecordTransit(notarymodel.Transit{SessionID: fmt.Sprint(i), Kind: notarymodel.TransitOpen}) {
			got++
		}
	}
	if got != 2 || n.Dropped() != 3 {
		t.Fatalf("queued %d, dropped %d; want 2 and 3", got, n.Dropped())
	}
}

func TestKeyFileMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateKey(dir, Origin("n1")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v, want 0600", fi.Mode().Perm(), err)
	}
	k1, _ := LoadOrCreateKey(dir, Origin("n1"))
	k2, err := LoadOrCreateKey(dir, Origin("n1"))
	if err != nil || k1.VerifierKey != k2.VerifierKey {
		t.Fatalf("the key changed between loads: %v", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o640)
	if _, err := LoadOrCreateKey(dir, Origin("n1")); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("group-readable key: %v, want ErrKeyPermissions", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o600)
	if _, err := LoadOrCreateKey(dir, Origin("n2")); err == nil {
		t.Fatal("a key named for another node was accepted")
	}
	if Origin("a b+c") != "kedge.notary/a-b-c" {
		t.Errorf("origin of %q: %q", "a b+c", Origin("a b+c"))
	}
}
