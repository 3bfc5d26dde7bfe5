package server

import (
	"context"
	"fmt"
	"os"

	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	mu "github.com/guildhouse-co/kedge/models/underlay"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/underlay"
)

// underlay builds the underlay component (network devices over gNMI).
// Its credentials directory is made 0700 when missing. With the notary
// on, every executed mutation and drift repair is notarized.
func (d *Daemon) underlay() (*underlay.Component, error) {
	dir := d.cfg.UnderlayCredentials
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create underlay credentials dir: %w", err)
	}
	c, err := underlay.New(d.st, underlay.Options{Logger: d.log.With("component", "underlay"), CredentialsDir: dir,
		Notary: d.pushRecorder()})
	if err != nil {
		return nil, err
	}
	d.log.Info("underlay", "credentials", dir, "notarized", d.Notary() != nil)
	return c, nil
}

// pushRecorder hands the underlay's device pushes to the notary (nil
// without the notary: the underlay then keeps no record for it).
func (d *Daemon) pushRecorder() underlay.Notary {
	n := d.Notary()
	if n == nil {
		return nil
	}
	return pushNotary{n}
}

// pushNotary adapts the notary to the underlay's Notary.
type pushNotary struct{ n *notary.Notary }

func (p pushNotary) RecordUnderlay(ctx context.Context, m underlay.ExecutedMutation) error {
	dp, err := devicePush(m)
	if err != nil {
		return err
	}
	return p.n.RecordDevicePush(ctx, dp)
}

// devicePush is an underlay record as the notary's model takes it; an
// operation other than replace or delete is refused, not guessed.
func devicePush(m underlay.ExecutedMutation) (notarymodel.DevicePush, error) {
	p := notarymodel.DevicePush{MutationID: m.ID, QueueSeq: m.Sequence, IntentSeq: m.IntentSequence, Repair: m.Repair,
		Failed: m.Failed, Reason: m.Reason, Time: m.Time, Proposer: m.Proposer, Tier: m.Tier, Level: m.Level,
		Changes: make([]notarymodel.ContainerChange, len(m.Changes))}
	for i, c := range m.Changes {
		if c.Op != mu.OpDelete.String() && c.Op != mu.OpReplace.String() {
			return notarymodel.DevicePush{}, fmt.Errorf("record device push: %w %q: change %d: operation %q",
				notarymodel.ErrInvalidPush, m.ID, i, c.Op)
		}
		p.Changes[i] = notarymodel.ContainerChange{Device: c.Device, Path: c.Path, Delete: c.Op == mu.OpDelete.String(),
			Before: c.Before, After: c.After}
	}
	return p, nil
}
