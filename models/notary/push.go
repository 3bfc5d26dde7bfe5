package notary

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/models/accord"
)

// Writer methods of device pushes: the identity is the mutation's
// proposer, or the node itself repairing drift.
const (
	MethodProposal    = "proposal"
	MethodDriftRepair = "drift-repair"
)

// ErrInvalidPush marks a DevicePush that cannot be recorded as given.
var ErrInvalidPush = errors.New("invalid device push")

// ContainerChange is one OpenConfig container a push replaced or deleted
// on a device, with its canonical JSON before and after (nil where
// absent; models/underlay.Canonical is the form).
type ContainerChange struct {
	Device string
	Path   string
	Delete bool
	Before []byte
	After  []byte
}

// DevicePush is configuration Kedge pushed to network devices: an
// executed underlay mutation, or a drift repair.
type DevicePush struct {
	MutationID string
	QueueSeq   uint64 // the mutation's queue sequence, 0 for a repair
	IntentSeq  uint64 // the tree commit whose intent it compiled, 0 for a repair
	Repair     bool
	// Failed: some devices refused; Changes is what the others took, and
	// Reason says why.
	Failed   bool
	Reason   string
	Time     time.Time
	Proposer string
	Tier     string
	Level    uint8 // the posture level it executed at
	Changes  []ContainerChange
}

// Validate reports why a push cannot be recorded (ErrInvalidPush), or
// nil.
func (p DevicePush) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPush, p.MutationID, fmt.Sprintf(format, a...))
	}
	switch {
	case p.MutationID == "":
		return bad("no mutation id")
	case !accord.Valid(p.Level):
		return bad("posture level %d out of range 1..5", p.Level)
	case p.Repair && p.QueueSeq != 0:
		return bad("a repair has no queue sequence (got %d)", p.QueueSeq)
	}
	for i, c := range p.Changes {
		switch {
		case c.Device == "" || c.Path == "":
			return bad("change %d names no device or path", i)
		case c.Delete && c.After != nil:
			return bad("change %d deletes %s on %s but has a value after", i, c.Path, c.Device)
		case !c.Delete && c.After == nil:
			return bad("change %d replaces %s on %s without a value", i, c.Path, c.Device)
		}
	}
	return nil
}

// PushKey identifies a push for idempotence: its mutation id and queue
// sequence (a repair's id is unique by itself).
func PushKey(mutationID string, queueSeq uint64) string {
	return mutationID + "\x00" + strconv.FormatUint(queueSeq, 10)
}

// ContainerHash is SHA-256 of a container's canonical JSON, nil for an
// absent container.
func ContainerHash(js []byte) []byte {
	if js == nil {
		return nil
	}
	h := sha256.Sum256(js)
	return h[:]
}

// BuildDevicePush makes the NetworkMutationArtifact of a device push at a
// fidelity: every container listed with payload hashing, else at most
// MaxListedChanges (changes_truncated then says so); changes_sha256 and
// change_count always cover every change. The push should be valid
// (Validate).
func BuildDevicePush(p DevicePush, f Fidelity) *qmv1.NetworkMutationArtifact {
	w := &qmv1.Writer{Identity: p.Proposer, Tier: p.Tier, Method: MethodProposal}
	dp := &qmv1.DevicePush{
		Kind:           qmv1.DevicePushKind_DEVICE_PUSH_KIND_MUTATION,
		MutationId:     p.MutationID,
		QueueSequence:  p.QueueSeq,
		IntentSequence: p.IntentSeq,
		Result:         qmv1.DevicePushResult_DEVICE_PUSH_RESULT_EXECUTED,
		Reason:         p.Reason,
	}
	if p.Repair {
		w.Method = MethodDriftRepair
		dp.Kind = qmv1.DevicePushKind_DEVICE_PUSH_KIND_DRIFT_REPAIR
	}
	if p.Failed {
		dp.Result = qmv1.DevicePushResult_DEVICE_PUSH_RESULT_FAILED
	}
	a := &qmv1.NetworkMutationArtifact{
		CommitUnixNano: unixNano(p.Time),
		Writer:         w,
		PostureLevel:   uint32(p.Level),
		ChangeCount:    uint32(len(p.Changes)),
		DevicePush:     dp,
	}
	limit := len(p.Changes)
	if !f.PayloadHashing {
		limit = min(limit, MaxListedChanges)
	}
	a.Changes = make([]*qmv1.LeafChange, 0, limit)
	d := newChangesDigest()
	for i, c := range p.Changes {
		before, after := ContainerHash(c.Before), ContainerHash(c.After)
		op := qmv1.LeafOperation_LEAF_OPERATION_REPLACE
		if c.Delete {
			op, after = qmv1.LeafOperation_LEAF_OPERATION_DELETE, nil
		}
		d.addDevice(c.Device, c.Path, c.Delete, before, after)
		if i < limit {
			a.Changes = append(a.Changes, &qmv1.LeafChange{Device: c.Device, Path: c.Path, Operation: op,
				BeforeSha256: before, AfterSha256: after})
		}
		if !slices.Contains(dp.Devices, c.Device) {
			dp.Devices = append(dp.Devices, c.Device)
		}
	}
	slices.Sort(dp.Devices)
	a.ChangesTruncated = limit < len(p.Changes)
	a.ChangesSha256 = d.sum()
	return a
}

// DevicePushDigest recomputes a device push's changes_sha256 from its
// changes, for verifiers holding the containers.
func DevicePushDigest(cs []ContainerChange) []byte {
	d := newChangesDigest()
	for _, c := range cs {
		after := ContainerHash(c.After)
		if c.Delete {
			after = nil
		}
		d.addDevice(c.Device, c.Path, c.Delete, ContainerHash(c.Before), after)
	}
	return d.sum()
}

// addDevice adds one container change: the device's length and bytes,
// then what add encodes for a leaf.
func (d *changesDigest) addDevice(device, path string, del bool, before, after []byte) {
	d.buf = binary.AppendUvarint(d.buf, uint64(len(device)))
	d.buf = append(d.buf, device...)
	d.add(path, del, before, after)
}
