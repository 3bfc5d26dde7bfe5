package underlay

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// Notary records every executed mutation: the notary turns it into a
// NetworkMutationArtifact. The component calls it from its own goroutine
// once per executed mutation (and per drift repair), and again after a
// restart for one it had not recorded; an error is retried at the next
// event. nil means the record is durable: the component then forgets
// it, so an implementation must make a second offer of the same ID and
// Sequence (a crash before the component noted the nil) harmless.
type Notary interface {
	RecordUnderlay(ctx context.Context, m ExecutedMutation) error
}

// ExecutedMutation is what a mutation (or a drift repair) changed.
type ExecutedMutation struct {
	// ID is the mutation id, or "repair/DEVICE/N" for a drift repair, N
	// counting this node's repairs (durably: never reused).
	ID       string
	Sequence uint64 // the mutation's queue sequence (0 for a repair)
	// IntentSequence is the tree commit whose intent the mutation
	// compiled (0 for a repair).
	IntentSequence uint64
	Repair         bool
	// Failed: some devices refused or rolled back (Reason says which);
	// Changes is what the devices that confirmed took.
	Failed   bool
	Reason   string
	Time     time.Time
	Proposer string
	Tier     string
	Level    uint8 // posture level it executed at
	Changes  []DeviceChange
}

// DeviceChange is one OpenConfig container a push replaced or deleted on
// a device, with its canonical JSON before and after (nil where absent;
// models/underlay.Canonical: module names dropped, members sorted), so a
// container's Before equals the After of the push that last wrote it.
type DeviceChange struct {
	Device string
	Op     string // replace or delete
	Path   string
	Before []byte
	After  []byte
}

// metaRepair prefixes the durable record of a drift repair the notary has
// not recorded yet (listed in the index).
const metaRepair = "underlay/repair/"

// pendingRepair is a drift repair waiting for the notary; saved says its
// record is in the store.
type pendingRepair struct {
	m     ExecutedMutation
	saved bool
}

// notary hands executed mutations and drift repairs to the notary, each
// kind oldest first; one it refuses is tried again at the next flush (with
// those behind it), and a refused repair is kept in the store meanwhile
// (a mutation's record already is).
func (l *loop) notary() {
	if l.c.opt.Notary == nil {
		for _, id := range l.unnotary {
			if r := l.recs[id]; r != nil {
				r.Pushed = nil // nobody wants them: do not keep them
			}
		}
		l.unnotary, l.unrepaired = nil, nil
		return
	}
	for len(l.unnotary) > 0 {
		id := l.unnotary[0]
		r := l.recs[id]
		if r == nil || r.Recorded {
			l.unnotary = l.unnotary[1:]
			continue
		}
		m := ExecutedMutation{ID: id, Sequence: r.Seq, IntentSequence: r.IntentSeq, Failed: r.Status == stFailed,
			Time: unixTime(r.ExecutedAt), Proposer: r.Request.Proposer, Tier: r.Request.Tier, Level: r.Level, Changes: r.Pushed}
		if r.Status == stFailed {
			m.Reason = r.Reason
		}
		if err := l.record(m); err != nil {
			l.c.log.Warn("notary refused an executed mutation; retrying", "mutation", id, "err", err)
			break
		}
		r.Recorded, r.Pushed = true, nil
		l.persistRecord(id, r)
		l.unnotary = l.unnotary[1:]
	}
	for len(l.unrepaired) > 0 {
		p := &l.unrepaired[0]
		if err := l.record(p.m); err != nil {
			l.c.log.Warn("notary refused a drift repair; retrying", "repair", p.m.ID, "err", err)
			if !p.saved {
				l.put(metaRepair+p.m.ID, p.m)
				p.saved = true
				l.persistIndex()
			}
			return
		}
		saved := p.saved
		l.unrepaired = l.unrepaired[1:]
		if saved {
			if err := l.c.st.PutMeta(metaRepair+p.m.ID, nil); err != nil {
				l.c.log.Warn("drop drift repair record", "repair", p.m.ID, "err", err)
			}
			l.persistIndex()
		}
	}
}

func (l *loop) record(m ExecutedMutation) error {
	ctx, cancel := context.WithTimeout(l.ctx, 10*time.Second)
	defer cancel()
	return l.c.opt.Notary.RecordUnderlay(ctx, m)
}

// repairRecord queues a confirmed drift repair for the notary.
func (l *loop) repairRecord(ev evPush, res pushResult) {
	if l.c.opt.Notary == nil {
		return
	}
	m := ExecutedMutation{ID: "repair/" + ev.device + "/" + strconv.FormatUint(ev.job.repair, 10), Repair: true, Time: ev.at,
		Proposer: "kedge", Tier: "master", Level: l.acc.Level, Changes: deviceChanges(ev.device, res)}
	l.unrepaired = append(l.unrepaired, pendingRepair{m: m})
}

// loadRepairs reads the drift repairs the notary had not recorded when
// the component stopped.
func (l *loop) loadRepairs(ids []string) {
	for _, id := range ids {
		b, err := l.c.st.GetMeta(metaRepair + id)
		var m ExecutedMutation
		if err == nil && b != nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil || b == nil {
			l.c.log.Error("drift repair record unreadable; its artifact is lost", "repair", id, "err", err)
			continue
		}
		l.unrepaired = append(l.unrepaired, pendingRepair{m: m, saved: true})
	}
}

// deviceChanges is what a push changed on a device, as canonical JSON:
// the device's side as read (canonical already), the pushed side from the
// target's snapshot (or canonicalized here when the snapshot leaves an
// empty container out).
func deviceChanges(dev string, res pushResult) []DeviceChange {
	out := make([]DeviceChange, 0, len(res.ops))
	for _, op := range res.ops {
		p := op.PathString()
		c := DeviceChange{Device: dev, Op: op.Kind.String(), Path: p, Before: op.Before}
		if op.Kind == mu.OpReplace {
			after, ok := res.target[p]
			if !ok {
				var err error
				if after, err = mu.Canonical(op.Value); err != nil {
					after = op.Value // the device took it: record it as sent
				}
			}
			c.After = after
		}
		out = append(out, c)
	}
	return out
}
