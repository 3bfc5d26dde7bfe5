package mesh

import (
	"encoding/json"
	"log/slog"
	"time"
)

// meshDownKey is the store meta key of the posture-down peers. They are
// durable because "do not reconnect until told" must survive a daemon
// restart: the peer that drained itself may still be compromised.
const meshDownKey = "mesh/posture-down"

// meshDown records one peer's DRAIN.
type meshDown struct {
	Level     uint8     `json:"level"`     // the level the peer announced
	Reconnect uint64    `json:"reconnect"` // the peer's reconnect leaf when the DRAIN arrived
	At        time.Time `json:"at"`
}

// metaStore is the part of the store the record lives in (*store.Store).
type metaStore interface {
	PutMeta(key string, val []byte) error
	GetMeta(key string) ([]byte, error)
}

// loadMeshDown reads the record; an unreadable one is logged and
// dropped (the peers then reconnect, as after a plain failure).
func loadMeshDown(m metaStore, log *slog.Logger) map[string]meshDown {
	out := map[string]meshDown{}
	b, err := m.GetMeta(meshDownKey)
	if err != nil || b == nil {
		if err != nil {
			log.Warn("read posture-down peers", "err", err)
		}
		return out
	}
	if err := json.Unmarshal(b, &out); err != nil {
		log.Warn("decode posture-down peers", "err", err)
		return map[string]meshDown{}
	}
	return out
}

// saveDownLocked writes the record; callers hold a.rmu.
func (a *meshApplier) saveDownLocked() {
	b, err := json.Marshal(a.down)
	if err == nil {
		err = a.st.PutMeta(meshDownKey, b)
	}
	if err != nil {
		a.log.Warn("store posture-down peers", "err", err)
	}
}
