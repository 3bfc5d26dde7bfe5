package underlay

import (
	"context"
	"time"
)

// Notary records every executed mutation: the notary turns it into a
// NetworkMutationArtifact. The component calls it from its own goroutine
// once per executed mutation (and per drift repair), and again after a
// restart for one it had not recorded; an error is retried at the next
// event.
type Notary interface {
	RecordUnderlay(ctx context.Context, m ExecutedMutation) error
}

// ExecutedMutation is what a mutation (or a drift repair) changed.
type ExecutedMutation struct {
	ID       string // mutation id; "repair/DEVICE/N" for a drift repair
	Sequence uint64 // the mutation's queue sequence (0 for a repair)
	Time     time.Time
	Proposer string
	Tier     string
	Level    uint8 // posture level it executed at
	Changes  []DeviceChange
}

// DeviceChange is one OpenConfig container a push replaced or deleted on
// a device, with its RFC 7951 JSON before and after (nil where absent).
type DeviceChange struct {
	Device string
	Op     string // replace or delete
	Path   string
	Before []byte
	After  []byte
}
