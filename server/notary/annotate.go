package notary

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
)

// IdentityFunc returns who is committing, from the commit's context (the
// daemon reads the gNMI caller's identity and tier; false when there is
// none, as for a commit-confirmed rollback the daemon itself makes).
type IdentityFunc func(ctx context.Context) (notarymodel.Writer, bool)

// Annotator builds the annotation the store keeps with each config commit
// (store.Options.Annotate): writer, tier, posture level and the old
// values. It exists before the notary (the store is opened first); the
// notary's posture step keeps its level current.
type Annotator struct {
	id    IdentityFunc
	level atomic.Uint32
}

// NewAnnotator returns an annotator reading identities with id.
func NewAnnotator(id IdentityFunc) *Annotator { return &Annotator{id: id} }

// SystemWriter is the writer recorded for a commit without a caller.
var SystemWriter = notarymodel.Writer{Identity: "kedge-daemon", Tier: "system", Method: "internal"}

// SetLevel sets the posture level recorded with later commits.
func (a *Annotator) SetLevel(l uint8) { a.level.Store(uint32(l)) }

// Annotate is the store's Options.Annotate. It runs under the store's
// write lock: it copies old values and encodes, nothing more.
func (a *Annotator) Annotate(ctx context.Context, changes []tree.Change) []byte {
	w, ok := notarymodel.Writer{}, false
	if a.id != nil {
		w, ok = a.id(ctx)
	}
	if !ok {
		w = SystemWriter
	}
	an := notarymodel.Annotation{Writer: w, Level: uint8(a.level.Load()), Old: make([]tree.Value, 0, len(changes))}
	for _, c := range changes {
		if c.Node.Config {
			an.Old = append(an.Old, c.Old)
		}
	}
	return notarymodel.AppendAnnotation(make([]byte, 0, 32+8*len(an.Old)), an)
}

// CommitLog is the store's log of config commits as the notary needs it
// (*store.Store with Options.KeepLog).
type CommitLog interface {
	ReplayCommits(after, upTo uint64, fn func(store.LoggedCommit) error) error
	Retain(seq uint64, note []byte)
	Retained() (uint64, []byte)
}

// markNote is the notary's note on the store's retention mark: the
// ledger's size when it was set, a size the log reached durably.
func markNote(size int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(size)) }

func markSize(note []byte) int64 {
	if len(note) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(note))
}

// annotate fills a mutation's writer, level and values before from its
// commit's annotation.
func (n *Notary) annotate(m *notarymodel.Mutation, ann []byte) {
	a, err := notarymodel.DecodeAnnotation(ann)
	if err == nil && len(a.Old) != len(m.Changes) {
		err = fmt.Errorf("%d old values for %d changes", len(a.Old), len(m.Changes))
	}
	if err != nil {
		n.unannotated(m, err)
		return
	}
	m.Writer, m.Level = a.Writer, a.Level
	for i := range m.Changes {
		m.Changes[i].Before = a.Old[i]
	}
}

// unannotated marks a mutation whose annotation could not be read: its
// writer and old values are unknown, its level the notary's own.
func (n *Notary) unannotated(m *notarymodel.Mutation, err error) {
	if n.warnedAnn.CompareAndSwap(false, true) {
		n.log.Warn("notary: a commit without a readable annotation; its writer and old values are not recorded",
			"seq", m.Seq, "err", err)
	}
	m.Writer, m.Level, m.Unannotated = notarymodel.Writer{Identity: "unknown"}, uint8(n.level.Load()), true
}
