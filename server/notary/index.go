package notary

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/notary/ledger"
)

// loadIndex reads every entry once at open: the query index, the last
// commit recorded (so the feed and the store's log are not recorded
// twice) and the device pushes recorded (so a push offered again after a
// restart is not either).
func (n *Notary) loadIndex() error {
	idx := make([]meta, 0, n.led.Size())
	var last uint64
	err := n.led.Scan(0, func(i int64, b []byte) (bool, error) {
		e := &qmv1.LogEntry{}
		if err := proto.Unmarshal(b, e); err != nil {
			return false, fmt.Errorf("read notary entry %d: %w", i, err)
		}
		idx = append(idx, meta{typ: uint8(notarymodel.Type(e)), level: uint8(e.GetPostureLevel()), when: e.GetEventUnixNano()})
		if m := e.GetNetworkMutation(); m != nil {
			last = max(last, m.GetCommitSequence())
			if dp := m.GetDevicePush(); dp != nil {
				n.pushes[notarymodel.PushKey(dp.GetMutationId(), dp.GetQueueSequence())] = struct{}{}
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	n.idx = idx
	n.lastSeq.Store(last)
	return nil
}

// Query selects entries. Empty filters match everything.
type Query struct {
	Types  []qmv1.ArtifactType
	Since  int64 // event time, ns, inclusive; 0: open
	Until  int64 // exclusive; 0: open
	Levels []uint8
	Start  int64 // first index to look at
	Limit  int   // at most this many (default 100)
}

// List returns the durable entries matching q in log order, and the index
// to continue from (0 when there is nothing more).
func (n *Notary) List(q Query) ([]*qmv1.LogEntry, int64, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	n.imu.RLock()
	var hits []int64
	next := int64(0)
	for i := max(q.Start, 0); i < int64(len(n.idx)); i++ {
		m := n.idx[i]
		if len(q.Types) > 0 && !slices.Contains(q.Types, qmv1.ArtifactType(m.typ)) {
			continue
		}
		if len(q.Levels) > 0 && !slices.Contains(q.Levels, m.level) {
			continue
		}
		if (q.Since != 0 && m.when < q.Since) || (q.Until != 0 && m.when >= q.Until) {
			continue
		}
		if len(hits) == q.Limit {
			next = i
			break
		}
		hits = append(hits, i)
	}
	n.imu.RUnlock()
	out := make([]*qmv1.LogEntry, 0, len(hits))
	for _, i := range hits {
		e, _, err := n.Get(i)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, e)
	}
	return out, next, nil
}

// Get returns durable entry i, decoded and as the raw bytes the tree
// hashes.
func (n *Notary) Get(i int64) (*qmv1.LogEntry, []byte, error) {
	b, err := n.led.Entry(i)
	if err != nil {
		return nil, nil, err
	}
	e := &qmv1.LogEntry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, nil, fmt.Errorf("decode notary entry %d: %w", i, err)
	}
	return e, b, nil
}

// Checkpoint is the last durable checkpoint.
func (n *Notary) Checkpoint() ledger.Checkpoint { return n.led.Checkpoint() }
