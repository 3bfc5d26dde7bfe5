package notary

import (
	"context"
	"encoding/json"
	"fmt"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/posture"
)

// maxSampled bounds the sessions remembered as sampled; past it the
// oldest-looking entries are forgotten (a session that never closes must
// not grow memory without bound).
const maxSampled = 100000

// RecordTransit records a Shellstream session transit when its session is
// sampled at the current fidelity (or was sampled before), and reports
// whether it was queued. It never blocks: it is called from handshakes.
func (n *Notary) RecordTransit(t notarymodel.Transit) bool {
	f := n.Fidelity()
	if t.Level == 0 {
		t.Level = uint8(n.level.Load())
	}
	if t.Time.IsZero() {
		t.Time = n.o.Now()
	}
	final := t.Kind == notarymodel.TransitClose || t.Kind == notarymodel.TransitDeny
	n.smu.Lock()
	_, sticky := n.sampled[t.SessionID]
	rec := sticky || notarymodel.Sampled(t.SessionID, f.SamplingPercent)
	switch {
	case rec && final:
		delete(n.sampled, t.SessionID)
	case rec && !sticky:
		if len(n.sampled) >= maxSampled {
			for id := range n.sampled {
				delete(n.sampled, id)
				break
			}
		}
		n.sampled[t.SessionID] = struct{}{}
	}
	n.smu.Unlock()
	if !rec {
		return false
	}
	e := &qmv1.LogEntry{PostureLevel: uint32(t.Level), Fidelity: f.Proto(), EventUnixNano: t.Time.UnixNano(),
		Artifact: &qmv1.LogEntry_SessionTransit{SessionTransit: notarymodel.BuildTransit(t, f)}}
	return n.enqueue(item{entry: e, transit: true})
}

// RecordTransition records a posture transition's report; it is the
// posture engine's OnReport hook and does not wait for the log.
func (n *Notary) RecordTransition(r posture.Report) {
	t := notarymodel.Transition{Seq: r.Seq, From: r.From, To: r.To, Source: r.Source, Started: r.Started,
		Duration: r.Duration, Result: r.Result, Resume: r.Resume}
	for _, s := range r.Steps {
		t.Steps = append(t.Steps, notarymodel.Step{Index: s.Index, Name: s.Name, Started: s.Started,
			Duration: s.Duration, Result: s.Result, Err: s.Err})
	}
	e := &qmv1.LogEntry{PostureLevel: uint32(r.To), Fidelity: n.Fidelity().Proto(), EventUnixNano: r.Started.UnixNano(),
		Artifact: &qmv1.LogEntry_PostureTransition{PostureTransition: notarymodel.BuildTransition(t)}}
	n.enqueue(item{entry: e})
}

// EmitForensic records a PostureForensicSnapshot and returns once it is
// durable in the log. Its signature is posture.ForensicEmitter.
func (n *Notary) EmitForensic(ctx context.Context, seq uint64, record []byte) error {
	var hdr struct {
		From uint8 `json:"from"`
		To   uint8 `json:"to"`
	}
	if err := json.Unmarshal(record, &hdr); err != nil {
		return fmt.Errorf("record forensic snapshot: %w", err)
	}
	s := notarymodel.Forensic{Seq: seq, From: hdr.From, To: hdr.To, Time: n.o.Now(), Document: record}
	if n.o.KernelRoutes != nil {
		rs, err := n.o.KernelRoutes(ctx)
		if err != nil {
			n.log.Warn("forensic snapshot: read the kernel's routes", "err", err)
		}
		s.KernelRoutes = rs
	}
	e := &qmv1.LogEntry{PostureLevel: uint32(hdr.To), Fidelity: n.Fidelity().Proto(), EventUnixNano: s.Time.UnixNano(),
		Artifact: &qmv1.LogEntry_ForensicSnapshot{ForensicSnapshot: notarymodel.BuildForensic(s)}}
	return n.wait(ctx, item{entry: e, durable: true})
}

// Sync returns once everything recorded before it is durable.
func (n *Notary) Sync(ctx context.Context) error { return n.wait(ctx, item{durable: true}) }

// settle returns once the writer has handled everything queued before
// it, without forcing a flush (tests of the batching).
func (n *Notary) settle(ctx context.Context) error { return n.wait(ctx, item{}) }

func (n *Notary) wait(ctx context.Context, it item) error {
	it.done = make(chan error, 1)
	if !n.enqueue(it) {
		return <-it.done
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ posture.ForensicEmitter = (*Notary)(nil).EmitForensic
