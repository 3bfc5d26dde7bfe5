package notary

import (
	"context"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
)

// statePeriod bounds how often /kedge/notary/state is written: at level 1
// the log flushes on every record, and each state write is a commit every
// subscriber sees.
const statePeriod = 100 * time.Millisecond

func (n *Notary) markDirty() {
	select {
	case n.dirty <- struct{}{}:
	default:
	}
}

// publishLoop writes the state when it changed, at most every statePeriod,
// and once more when the notary stops.
func (n *Notary) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.dirty:
		}
		if err := n.PublishState(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("write notary state", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(statePeriod):
		}
	}
}

// PublishState writes /kedge/notary/state now.
func (n *Notary) PublishState(ctx context.Context) error {
	_, err := n.o.Store.CommitState(ctx, n.stateOps())
	return err
}

// stateOps builds the writes of /kedge/notary/state. This file is the
// notary's one place that names tree nodes (stateOps, readConfig and the
// prefixes below).
func (n *Notary) stateOps() []store.Op {
	f := n.Fidelity()
	cp := n.led.Checkpoint()
	up := n.UpstreamStatus()
	st := kedgepath.Root().Kedge().Notary().State()
	ops := []store.Op{
		store.Update(st.SamplingPercent(), f.SamplingPercent),
		store.Update(st.FlushMode(), kedgepath.NotaryFlushMode(f.Flush)),
		store.Update(st.PayloadHashing(), f.PayloadHashing),
		store.Update(st.FrameHeaders(), f.FrameHeaders),
		store.Update(st.Origin(), n.led.Origin()),
		store.Update(st.VerifierKey(), n.keys.VerifierKey),
		store.Update(st.Records(), uint64(cp.Size)),
		store.Update(st.LogSize(), uint64(n.led.Bytes())),
		store.Update(st.RootHash(), cp.Hash.String()),
		store.Update(st.UpstreamState(), kedgepath.NotaryUpstreamState(up.State)),
		store.Update(st.DroppedTransits(), n.dropped.Load()),
	}
	if lvl := n.level.Load(); lvl != 0 {
		ops = append(ops, store.Update(st.Level(), uint8(lvl)))
	}
	if o := n.override.Load(); o != nil {
		ops = append(ops, store.Update(st.SamplingPercentOverride(), *o))
	} else {
		ops = append(ops, store.Delete(st.SamplingPercentOverride()))
	}
	if n.o.Endpoint != "" {
		ops = append(ops, store.Update(st.Anchor(), n.o.Endpoint))
	}
	if t := n.lastFlush.Load(); t != 0 {
		ops = append(ops, store.Update(st.LastFlush(), uint64(t)))
	}
	if cp.Size > 0 {
		ops = append(ops, store.Update(st.LastCheckpointSize(), uint64(cp.Size)),
			store.Update(st.LastCheckpointTime(), uint64(cp.Time.UnixNano())))
	}
	if up.Err != "" {
		ops = append(ops, store.Update(st.UpstreamError(), up.Err))
	} else {
		ops = append(ops, store.Delete(st.UpstreamError()))
	}
	if up.AckSize > 0 {
		ops = append(ops, store.Update(st.LastAckSize(), uint64(up.AckSize)))
	}
	if !up.AckTime.IsZero() {
		ops = append(ops, store.Update(st.LastAckTime(), uint64(up.AckTime.UnixNano())))
	}
	return ops
}

// Config the notary follows: a commit under these re-reads it.
var (
	notaryConfigPrefix = kedgepath.Root().Kedge().Notary().Config().SchemaPath() + "/"
	systemConfigPrefix = kedgepath.Root().Kedge().System().Config().SchemaPath() + "/"
)

// readConfig reads the notary's and the system's config from the tree.
func (n *Notary) readConfig(t *tree.Tree) {
	k := kedgetree.Of(t).Kedge()
	var override *uint8
	if v, ok := k.Notary().Config().SamplingPercentOverride(); ok {
		p := min(v, 100)
		override = &p
	}
	cluster, _ := k.System().Config().Cluster()
	old := n.override.Load()
	n.override.Store(override)
	n.cluster.Store(&cluster)
	if (old == nil) != (override == nil) || (old != nil && *old != *override) {
		if a := n.appliedAccord.Load(); a != nil {
			f := notarymodel.FidelityOf(*a, override)
			n.fid.Store(&f)
			n.markDirty()
		}
	}
}
