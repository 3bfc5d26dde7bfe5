package posture

import (
	"encoding/json"
	"fmt"
)

// metaRecord is the key of the engine's durable record in the store's
// meta bucket. One key, so a transition costs two fsyncs: one when the
// data-plane gates are closed (in-flight plan and snapshot), one when it
// completes.
const metaRecord = "posture/engine"

// record is everything the engine keeps across restarts.
type record struct {
	Applied  applied   `json:"applied"`
	Inflight *inflight `json:"inflight,omitempty"`
	Snapshot *snapshot `json:"snapshot,omitempty"`
}

// MetaStore is the part of the store the engine keeps its records in.
type MetaStore interface {
	PutMeta(key string, val []byte) error
	GetMeta(key string) ([]byte, error)
}

// applied is the level the engine last drove the steps to (or is driving
// them to, while a transition is in flight).
type applied struct {
	Level uint8  `json:"level"`
	Seq   uint64 `json:"seq"` // last transition sequence number used
	// BPFLevel is the level the engine last wrote to the BPF map (0: none),
	// so a restarted engine does not mistake its own write for a request.
	BPFLevel uint8 `json:"bpf_level"`
	// External is the last external BPF-map request seen (0: none).
	External uint8 `json:"external"`
}

// inflight is a transition that started and has not completed.
type inflight struct {
	Seq     uint64 `json:"seq"`
	From    uint8  `json:"from"`
	To      uint8  `json:"to"`
	Started int64  `json:"started_ns"`
}

// snapshot is what Snapshotter steps had applied before the first
// escalation away from Level.
type snapshot struct {
	Level uint8             `json:"level"`
	Seq   uint64            `json:"seq"` // the transition that took it
	Steps map[string][]byte `json:"steps"`
}

func getJSON[T any](m MetaStore, key string) (*T, error) {
	b, err := m.GetMeta(key)
	if err != nil || b == nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, nil
}

func putJSON(m MetaStore, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return m.PutMeta(key, b)
}
