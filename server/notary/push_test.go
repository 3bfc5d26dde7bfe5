package notary

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// devicePush is an executed mutation that changed n VLANs on sw1.
func devicePush(id string, seq uint64, n int) notarymodel.DevicePush {
	p := notarymodel.DevicePush{MutationID: id, QueueSeq: seq, IntentSeq: 9, Time: time.Unix(1700000000, 0),
		Proposer: "alice", Tier: "operator", Level: 5}
	for v := range n {
		p.Changes = append(p.Changes, notarymodel.ContainerChange{Device: "sw1", Path: fmt.Sprintf("/vlans/vlan[vlan-id=%d]", v+1),
			After: fmt.Appendf(nil, `{"config":{"vlan-id":%d},"vlan-id":%d}`, v+1, v+1)})
	}
	return p
}

func (f *fixture) pushes(t testing.TB) []*qmv1.LogEntry {
	t.Helper()
	var out []*qmv1.LogEntry
	for _, e := range f.entries(t, 0) {
		if notarymodel.Type(e) == qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH {
			out = append(out, e)
		}
	}
	return out
}

// reopen closes the notary and opens it again on the same directory and
// store, as a daemon restart does.
func (f *fixture) reopen(t testing.TB) {
	t.Helper()
	if err := f.n.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := Open(Options{Dir: f.dir, Node: "node-1", Store: f.st, After: f.tm.after, BatchEntries: 10000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.n = n
}

// At level 5 the log batches, yet a device push is durable, and listed
// apart from tree commits, when RecordDevicePush returns.
func TestRecordDevicePushIsDurableOnReturn(t *testing.T) {
	f := newFixture(t, nil)
	f.level(t, 5)
	f.sync(t)
	before := f.n.Ledger().Size()
	if err := f.n.RecordDevicePush(context.Background(), devicePush("m1", 1, 3)); err != nil {
		t.Fatal(err)
	}
	if got := f.n.Ledger().Size(); got != before+1 {
		t.Fatalf("log size %d after the push returned, want %d (durable without the batch timer)", got, before+1)
	}
	es := f.pushes(t)
	if len(es) != 1 {
		t.Fatalf("%d device push entries, want 1", len(es))
	}
	e := es[0]
	m := e.GetNetworkMutation()
	dp := m.GetDevicePush()
	a, _ := accord.Default(5)
	if dp.GetMutationId() != "m1" || dp.GetQueueSequence() != 1 || dp.GetIntentSequence() != 9 || m.GetWriter().GetIdentity() != "alice" ||
		m.GetWriter().GetTier() != "operator" || e.GetPostureLevel() != 5 || m.GetChangeCount() != 3 ||
		e.GetFidelity().GetFlushMode() != notarymodel.FlushMode(a.NotaryFlush) || e.GetNode() != "node-1" {
		t.Errorf("entry: %v", e)
	}
	push := []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_DEVICE_PUSH}
	if got, _, err := f.n.List(Query{Types: push, Levels: []uint8{5}}); err != nil || len(got) != 1 {
		t.Errorf("List device pushes at level 5: %d, %v", len(got), err)
	}
	if got, _, _ := f.n.List(Query{Types: push, Levels: []uint8{3}}); len(got) != 0 {
		t.Errorf("List device pushes at level 3: %d", len(got))
	}
	if got, _, _ := f.n.List(Query{Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION}}); len(got) != 0 {
		t.Errorf("a device push listed as a tree commit: %v", got)
	}
}

// A push offered again, before or after a restart, adds nothing; another
// sequence of the same id, or another id, is a new push.
func TestRecordDevicePushIsIdempotentAcrossRestart(t *testing.T) {
	f := newFixture(t, nil)
	f.level(t, 5)
	ctx := context.Background()
	record := func(p notarymodel.DevicePush) {
		t.Helper()
		if err := f.n.RecordDevicePush(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	record(devicePush("m1", 1, 2))
	record(devicePush("m1", 1, 2))
	if got := len(f.pushes(t)); got != 1 {
		t.Fatalf("%d entries after a re-offer, want 1", got)
	}
	f.reopen(t)
	f.level(t, 5)
	size := f.n.Ledger().Size()
	record(devicePush("m1", 1, 2)) // the underlay's re-offer after a restart
	if f.n.Ledger().Size() != size || len(f.pushes(t)) != 1 {
		t.Fatalf("a re-offer after a restart added %d entries", f.n.Ledger().Size()-size)
	}
	record(devicePush("m1", 2, 2)) // the id proposed again: a new queue sequence
	record(notarymodel.DevicePush{MutationID: "repair/sw1/1", Repair: true, Proposer: "kedge", Tier: "master", Level: 5})
	f.reopen(t)
	f.level(t, 5)
	record(devicePush("m1", 2, 2))
	record(notarymodel.DevicePush{MutationID: "repair/sw1/1", Repair: true, Proposer: "kedge", Tier: "master", Level: 5})
	var keys []string
	for _, e := range f.pushes(t) {
		dp := e.GetNetworkMutation().GetDevicePush()
		keys = append(keys, fmt.Sprintf("%s#%d", dp.GetMutationId(), dp.GetQueueSequence()))
	}
	if fmt.Sprint(keys) != "[m1#1 m1#2 repair/sw1/1#0]" {
		t.Errorf("pushes in the log: %v", keys)
	}
}

// Concurrent offers of one push make one entry (the writer decides).
func TestRecordDevicePushConcurrentOffers(t *testing.T) {
	f := newFixture(t, nil)
	f.level(t, 3)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- f.n.RecordDevicePush(context.Background(), devicePush("m1", 4, 5)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := len(f.pushes(t)); got != 1 {
		t.Fatalf("%d entries for one push offered 8 times at once", got)
	}
}

// Level 1 lists every container and flushes the record on its own; level
// 5 lists the first MaxListedChanges. Both cover all in count and digest.
func TestRecordDevicePushFidelityByLevel(t *testing.T) {
	big := notarymodel.MaxListedChanges + 100
	for _, lvl := range []uint8{5, 1} {
		t.Run(fmt.Sprintf("level %d", lvl), func(t *testing.T) {
			f := newFixture(t, nil)
			f.level(t, lvl)
			f.sync(t)
			before := f.n.Ledger().Size()
			p := devicePush("big", 1, big)
			p.Level = lvl
			if err := f.n.RecordDevicePush(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			es := f.pushes(t)
			m := es[len(es)-1].GetNetworkMutation()
			a, _ := accord.Default(lvl)
			listed := big
			if !a.NotaryPayloadHashing {
				listed = notarymodel.MaxListedChanges
			}
			if len(m.GetChanges()) != listed || m.GetChangesTruncated() != (listed < big) || m.GetChangeCount() != uint32(big) {
				t.Errorf("%d of %d listed, truncated %v; want %d", len(m.GetChanges()), m.GetChangeCount(), m.GetChangesTruncated(), listed)
			}
			if string(m.GetChangesSha256()) != string(notarymodel.DevicePushDigest(p.Changes)) {
				t.Error("the digest does not cover every change")
			}
			if es[len(es)-1].GetFidelity().GetPayloadHashing() != a.NotaryPayloadHashing {
				t.Errorf("fidelity %v", es[len(es)-1].GetFidelity())
			}
			if a.NotaryFlush == accord.FlushEveryRecord {
				if _, ok, _ := f.n.Ledger().CheckpointAt(before + 1); !ok {
					t.Error("level 1: no checkpoint right after the push's record")
				}
			}
		})
	}
}

// Bad input is refused and changes nothing; a notary that cannot write
// says so rather than acknowledging a record it does not hold.
func TestRecordDevicePushRefusals(t *testing.T) {
	f := newFixture(t, nil)
	f.level(t, 5)
	f.sync(t)
	size := f.n.Ledger().Size()
	bad := devicePush("m1", 1, 1)
	bad.Level = 0
	if err := f.n.RecordDevicePush(context.Background(), bad); !errors.Is(err, notarymodel.ErrInvalidPush) {
		t.Errorf("level 0: %v, want ErrInvalidPush", err)
	}
	bad = devicePush("m1", 1, 1)
	bad.Changes[0].Device = ""
	if err := f.n.RecordDevicePush(context.Background(), bad); !errors.Is(err, notarymodel.ErrInvalidPush) {
		t.Errorf("no device: %v, want ErrInvalidPush", err)
	}
	if f.n.Ledger().Size() != size || f.n.Ledger().PendingEntries() != 0 {
		t.Fatal("a refused push changed the log")
	}
	// The log stops writing (as after a failed write): the push is not
	// acknowledged, and a later offer after the failure is not either.
	f.n.Ledger().Close()
	for range 2 {
		if err := f.n.RecordDevicePush(context.Background(), devicePush("m2", 2, 1)); !errors.Is(err, ledger.ErrClosed) {
			t.Errorf("a log that cannot write acknowledged a push: %v", err)
		}
	}
	f.n.Close()
	if err := f.n.RecordDevicePush(context.Background(), devicePush("m2", 2, 1)); err == nil {
		t.Error("a closed notary acknowledged a push")
	}
}
