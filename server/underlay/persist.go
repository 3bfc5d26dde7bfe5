package underlay

import (
	"encoding/json"

	"github.com/guildhouse-co/kedge/gen/oc"
	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// Meta keys of the durable records. A mutation's captured changes and
// diff (megabytes for 1,000 VLANs on 10 devices) are a record of their
// own, written when it compiles; its status, results and the rest are
// rewritten at every step, so they stay small.
const (
	metaIndex    = "underlay/index"
	metaMutation = "underlay/mutation/"
	metaChanges  = "underlay/changes/"
	metaDevice   = "underlay/device/"
)

// changesRecord is a mutation's captured changes and their diff.
type changesRecord struct {
	Changes []mu.Change `json:"changes,omitempty"`
	Diff    []string    `json:"diff,omitempty"`
}

func (l *loop) persistChanges(id string, r *record) {
	if !r.Compiled {
		if err := l.c.st.PutMeta(metaChanges+id, nil); err != nil {
			l.c.log.Warn("drop mutation changes", "mutation", id, "err", err)
		}
		return
	}
	l.put(metaChanges+id, changesRecord{Changes: r.Changes, Diff: r.Diff})
}

// index is the durable list of records and the queue's next sequence.
type index struct {
	NextSeq   uint64   `json:"next_seq"`
	Mutations []string `json:"mutations,omitempty"`
	Devices   []string `json:"devices,omitempty"`
	// Repairs counts the drift repairs started; Unrecorded lists those
	// the notary refused so far (each in a record of its own).
	Repairs    uint64   `json:"repairs,omitempty"`
	Unrecorded []string `json:"unrecorded_repairs,omitempty"`
}

// deviceRecord is a device's durable record.
type deviceRecord struct {
	Exec    mu.Executed `json:"exec,omitempty"`
	Applied uint64      `json:"applied,omitempty"`
}

// loadIndex reads the queue's sequence; records are read as the tree
// names them. Mutations that were executing when the daemon stopped wait
// again: their pushes were cut (a commit-confirmed one rolled back on the
// device), and executing them again finishes what did not confirm.
func (l *loop) loadIndex() error {
	b, err := l.c.st.GetMeta(metaIndex)
	if err != nil || b == nil {
		return err
	}
	var ix index
	if err := json.Unmarshal(b, &ix); err != nil {
		return err
	}
	l.nextSeq, l.repairs = ix.NextSeq, ix.Repairs
	l.loadRepairs(ix.Unrecorded)
	return nil
}

func (l *loop) persistIndex() {
	ix := index{NextSeq: l.nextSeq, Repairs: l.repairs}
	for _, p := range l.unrepaired {
		if p.saved {
			ix.Unrecorded = append(ix.Unrecorded, p.m.ID)
		}
	}
	for id := range l.recs {
		ix.Mutations = append(ix.Mutations, id)
	}
	for name := range l.devs {
		ix.Devices = append(ix.Devices, name)
	}
	l.put(metaIndex, ix)
}

func (l *loop) loadRecord(id string) *record {
	b, err := l.c.st.GetMeta(metaMutation + id)
	if err != nil || b == nil {
		return nil
	}
	r := &record{}
	if err := json.Unmarshal(b, r); err != nil {
		l.c.log.Warn("mutation record unreadable; proposing it again", "mutation", id, "err", err)
		return nil
	}
	if r.Status == stExecuting {
		r.Status, r.Reason = stProposed, "interrupted by a restart"
	}
	if r.Compiled {
		var cr changesRecord
		b, err := l.c.st.GetMeta(metaChanges + id)
		if err == nil && b != nil {
			err = json.Unmarshal(b, &cr)
		}
		if err != nil || b == nil {
			// Without its changes it cannot execute as compiled: compile
			// again (or, executed already, keep the status only).
			l.c.log.Warn("mutation changes unreadable", "mutation", id, "err", err)
			if !r.terminal() {
				r.Compiled = false
			}
		}
		r.Changes, r.Diff = cr.Changes, cr.Diff
	}
	l.recs[id] = r
	if (r.Status == stExecuted || r.Status == stFailed) && !r.Recorded {
		l.unnotary = append(l.unnotary, id) // finish queued it: offer it again
	}
	return r
}

func (l *loop) persistRecord(id string, r *record) { l.put(metaMutation+id, r) }

func (l *loop) dropRecord(id string) {
	for _, k := range []string{metaMutation + id, metaChanges + id} {
		if err := l.c.st.PutMeta(k, nil); err != nil {
			l.c.log.Warn("drop mutation record", "mutation", id, "err", err)
		}
	}
}

func (l *loop) loadDevice(name string, d *devState) {
	b, err := l.c.st.GetMeta(metaDevice + name)
	if err != nil || b == nil {
		return
	}
	var rec deviceRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		l.c.log.Warn("device record unreadable; its executed intent is lost", "device", name, "err", err)
		return
	}
	d.exec, d.applied = rec.Exec, rec.Applied
	d.target = l.targetOf(name, d.exec)
}

// targetOf compiles an executed intent (nil when empty or when it no
// longer compiles, which a log line reports).
func (l *loop) targetOf(name string, e mu.Executed) *oc.Device {
	if len(e) == 0 {
		return nil
	}
	t, err := l.c.opt.Compiler.Target(name, e)
	if err != nil {
		l.c.log.Error("executed intent does not compile", "device", name, "err", err)
		return nil
	}
	return t
}

func (l *loop) persistDevice(name string, d *devState) {
	l.put(metaDevice+name, deviceRecord{Exec: d.exec, Applied: d.applied})
}

func (l *loop) dropDevice(name string) {
	if err := l.c.st.PutMeta(metaDevice+name, nil); err != nil {
		l.c.log.Warn("drop device record", "device", name, "err", err)
	}
	l.persistIndex()
}

func (l *loop) put(key string, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		err = l.c.st.PutMeta(key, b)
	}
	if err != nil {
		l.c.log.Error("write underlay record", "key", key, "err", err)
	}
}
