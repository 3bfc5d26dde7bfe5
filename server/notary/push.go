package notary

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// maxPushEntry bounds a device push's encoded entry, leaving room for
// what append stamps on it.
const maxPushEntry = ledger.MaxEntry - 4096

// RecordDevicePush records configuration Kedge pushed to network devices
// (an executed underlay mutation or a drift repair) as a
// NetworkMutationArtifact with device_push, at the fidelity in force, and
// returns once the artifact is durable in the log: it flushes whatever
// the batching, because the underlay treats nil as "recorded" and never
// offers the push again.
//
// It is idempotent by mutation id and queue sequence, across restarts:
// the keys of the pushes in the log are read at open, so a push offered
// again (the underlay retries after an error and, after a restart,
// re-offers what it had not marked recorded) adds no second artifact and
// returns once the first one is durable. A push that fails Validate is
// refused (notarymodel.ErrInvalidPush) and changes nothing.
func (n *Notary) RecordDevicePush(ctx context.Context, p notarymodel.DevicePush) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("record device push: %w", err)
	}
	if p.Time.IsZero() {
		p.Time = n.o.Now()
	}
	f := n.Fidelity()
	e := pushEntry(p, f)
	if proto.Size(e) > maxPushEntry {
		// Some 200,000 containers do not fit one entry even as hashes:
		// list what fits the unhashed bound; the count and the digest
		// still cover every change, and changes_truncated says so.
		n.log.Warn("device push too large to list every container; listing the first ones",
			"mutation", p.MutationID, "changes", len(p.Changes), "listed", notarymodel.MaxListedChanges)
		lf := f
		lf.PayloadHashing = false
		e = pushEntry(p, lf)
		e.Fidelity = f.Proto()
	}
	if err := n.wait(ctx, item{entry: e, durable: true, push: notarymodel.PushKey(p.MutationID, p.QueueSeq)}); err != nil {
		return fmt.Errorf("record device push %s: %w", p.MutationID, err)
	}
	return nil
}

func pushEntry(p notarymodel.DevicePush, f notarymodel.Fidelity) *qmv1.LogEntry {
	return &qmv1.LogEntry{PostureLevel: uint32(p.Level), Fidelity: f.Proto(), EventUnixNano: p.Time.UnixNano(),
		Artifact: &qmv1.LogEntry_NetworkMutation{NetworkMutation: notarymodel.BuildDevicePush(p, f)}}
}
