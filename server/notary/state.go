package notary

import (
	"context"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

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
// notary's one place that names tree paths (stateOps, readConfig).
func (n *Notary) stateOps() []store.Op {
	f := n.Fidelity()
	cp := n.led.Checkpoint()
	up := n.UpstreamStatus()
	var ops []store.Op
	set := func(leaf string, v tree.Value) {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Path: statePath(leaf), Val: tree.Typed(v)})
	}
	del := func(leaf string) { ops = append(ops, store.Op{Kind: store.OpDelete, Path: statePath(leaf)}) }
	set("sampling-percent", tree.Uint(uint64(f.SamplingPercent)))
	set("flush-mode", tree.String(f.Flush))
	set("payload-hashing", tree.Bool(f.PayloadHashing))
	set("frame-headers", tree.Bool(f.FrameHeaders))
	if lvl := n.level.Load(); lvl != 0 {
		set("level", tree.Uint(uint64(lvl)))
	}
	if o := n.override.Load(); o != nil {
		set("sampling-percent-override", tree.Uint(uint64(*o)))
	} else {
		del("sampling-percent-override")
	}
	if n.o.Endpoint != "" {
		set("anchor", tree.String(n.o.Endpoint))
	}
	set("origin", tree.String(n.led.Origin()))
	set("verifier-key", tree.String(n.keys.VerifierKey))
	set("records", tree.Uint(uint64(cp.Size)))
	set("log-size", tree.Uint(uint64(n.led.Bytes())))
	set("root-hash", tree.String(cp.Hash.String()))
	if t := n.lastFlush.Load(); t != 0 {
		set("last-flush", tree.Uint(uint64(t)))
	}
	if cp.Size > 0 {
		set("last-checkpoint-size", tree.Uint(uint64(cp.Size)))
		set("last-checkpoint-time", tree.Uint(uint64(cp.Time.UnixNano())))
	}
	set("upstream-state", tree.String(up.State))
	if up.Err != "" {
		set("upstream-error", tree.String(up.Err))
	} else {
		del("upstream-error")
	}
	if up.AckSize > 0 {
		set("last-ack-size", tree.Uint(uint64(up.AckSize)))
	}
	if !up.AckTime.IsZero() {
		set("last-ack-time", tree.Uint(uint64(up.AckTime.UnixNano())))
	}
	set("dropped-transits", tree.Uint(n.dropped.Load()))
	return ops
}

func statePath(leaf string) []*gpb.PathElem {
	return []*gpb.PathElem{{Name: "kedge"}, {Name: "notary"}, {Name: "state"}, {Name: leaf}}
}

// readConfig reads the notary's and the system's config from the tree.
func (n *Notary) readConfig(t *tree.Tree) {
	var override *uint8
	cluster := ""
	if k := t.Root().Sub("kedge"); k != nil {
		if nt := k.Sub("notary"); nt != nil {
			if c := nt.Sub("config"); c != nil {
				if v := c.Get("sampling-percent-override"); v.IsSet() {
					p := uint8(min(v.UintVal(), 100))
					override = &p
				}
			}
		}
		if sys := k.Sub("system"); sys != nil {
			if c := sys.Sub("config"); c != nil {
				cluster = c.Get("cluster").Str()
			}
		}
	}
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
