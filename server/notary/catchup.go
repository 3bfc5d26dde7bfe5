package notary

import (
	"github.com/guildhouse-co/kedge/gnmi/store"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
)

// catchUp records the config commits in (last recorded, upTo] that the
// store's log holds: those acknowledged to their clients while the notary
// had not yet made their artifacts durable (a crash), or that the change
// feed dropped (a watcher that fell behind). It flushes once at the end.
// It runs on the writer's goroutine (or before it starts).
func (n *Notary) catchUp(upTo uint64) error {
	if n.o.CommitLog == nil {
		return nil
	}
	after := n.lastSeq.Load()
	count := 0
	n.catchingUp = true
	err := n.o.CommitLog.ReplayCommits(after, upTo, func(c store.LoggedCommit) error {
		m := notarymodel.Mutation{Seq: c.Seq, Time: c.Time, Recovered: true}
		for _, ch := range c.Changes {
			m.Changes = append(m.Changes, notarymodel.Change{Path: ch.Path, Delete: ch.Delete, After: ch.Val})
		}
		if len(m.Changes) == 0 {
			return nil
		}
		n.annotate(&m, c.Annotation)
		n.appendMutation(m)
		count++
		return nil
	})
	n.catchingUp = false
	if count > 0 {
		n.flush()
		n.log.Info("notary caught up from the store's log", "commits", count, "after_seq", after, "up_to_seq", upTo)
	}
	if err == nil && n.led.PendingEntries() > 0 {
		return n.flushErr()
	}
	return err
}
