package posture

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/shm"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
)

// The real backends fit the engine's interfaces.
var (
	_ ShmWriter    = shm.Backend(nil)
	_ BPFMapSetter = bpfmap.Backend(nil)
	_ LevelSource  = bpfmap.Backend(nil)
)

// ShmWriter is the VPP governance segment writer (a shm.Backend, such as
// segment.Writer; shmtest.Writer in tests).
type ShmWriter interface {
	Set(ctx context.Context, cfg shm.Config) error
}

// VPP flow policy codes the shm step puts in governance_state.flags (low
// byte), so an overridden accord reaches the plugin; 0 would mean "derive
// from the level".
var vppFlowCodes = map[string]uint32{
	accord.VPPStandard:              1,
	accord.VPPDeepClassification:    2,
	accord.VPPDeprioritizeInterZone: 3,
	accord.VPPEmergencyZone:         4,
	accord.VPPAllowlistOnly:         5,
}

// VPPFlowFlags returns the governance flags for an accord.
func VPPFlowFlags(a accord.Accord) uint32 { return vppFlowCodes[a.VPPFlowPolicy] }

type shmStep struct{ w ShmWriter }

// ShmStep publishes the level and the VPP flow policy to the governance
// segment, the first step of every escalation.
func ShmStep(w ShmWriter) Step { return shmStep{w} }

func (shmStep) Name() string { return "shm" }
func (shmStep) Stage() Stage { return StageVPP }
func (s shmStep) Apply(ctx context.Context, t Transition) error {
	return s.w.Set(ctx, shm.Config{Level: t.To, Flags: VPPFlowFlags(t.Accord)})
}

// BPFMapSetter is the BPF posture backend (a bpfmap.Backend, such as
// pinned.Backend; the bpfmaptest fake in tests).
type BPFMapSetter interface {
	Set(ctx context.Context, cfg bpfmap.Config) error
}

type bpfStep struct {
	b    BPFMapSetter
	base bpfmap.Config
}

// BPFMapStep writes the level into the posture_level map; base carries the
// allowlist and the cgroup the enforcement program is attached to.
func BPFMapStep(b BPFMapSetter, base bpfmap.Config) Step { return &bpfStep{b: b, base: base} }

func (*bpfStep) Name() string { return "bpf-map" }
func (*bpfStep) Stage() Stage { return StageBPF }
func (s *bpfStep) Apply(ctx context.Context, t Transition) error {
	cfg := s.base
	cfg.Level = t.To
	cfg.Allowlist = append(cfg.Allowlist[:0:0], s.base.Allowlist...)
	return s.b.Set(ctx, cfg)
}

// Reader reads a snapshot of the tree (*store.Store).
type Reader interface {
	Read(fn func(t *tree.Tree) error) error
}

// Setter is a backend with an idempotent Set of its whole Config; the
// same interface the reconcilers use.
type Setter[C any] interface {
	Set(ctx context.Context, cfg C) error
}

// IntentFunc translates the tree into a backend Config under an accord. It
// must be pure: it runs on a snapshot of the tree and must not change
// it.
type IntentFunc[C any] func(t *tree.Tree, a accord.Accord) (C, error)

type intentStep[C any] struct {
	name   string
	stage  Stage
	st     Reader
	intent IntentFunc[C]
	b      Setter[C]
}

// IntentStep is the step of a tree-driven backend (routes, mesh): it
// computes the backend's Config from the tree under the target accord and
// calls Set. Things an accord withholds stay in the tree's config, so
// de-escalation restores them from the tree itself.
func IntentStep[C any](name string, stage Stage, st Reader, intent IntentFunc[C], b Setter[C]) Step {
	return &intentStep[C]{name: name, stage: stage, st: st, intent: intent, b: b}
}

func (s *intentStep[C]) Name() string { return s.name }
func (s *intentStep[C]) Stage() Stage { return s.stage }
func (s *intentStep[C]) Apply(ctx context.Context, t Transition) error {
	var cfg C
	err := s.st.Read(func(tr *tree.Tree) error {
		var err error
		cfg, err = s.intent(tr, t.Accord)
		return err
	})
	if err != nil {
		return fmt.Errorf("compute %s intent: %w", s.name, err)
	}
	return s.b.Set(ctx, cfg)
}

// ForensicEmitter receives a PostureForensicSnapshot (the notary, later).
type ForensicEmitter func(ctx context.Context, seq uint64, record []byte) error

type forensicStep struct {
	st interface {
		Reader
		MetaStore
	}
	emit ForensicEmitter
	done chan error // of the snapshot in progress, nil when none
}

// ForensicKey is the meta key of the last PostureForensicSnapshot, stored
// gzip-compressed: at 10,000 routes the JSON is 1.6 MB, and a write of
// that size costs the store far more than compressing it (about a tenth).
const ForensicKey = "posture/forensic"

// ReadForensic returns the last PostureForensicSnapshot (nil if none).
func ReadForensic(m MetaStore) ([]byte, error) {
	z, err := m.GetMeta(ForensicKey)
	if err != nil || z == nil {
		return nil, err
	}
	r, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, fmt.Errorf("read forensic snapshot: %w", err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read forensic snapshot: %w", err)
	}
	return b, nil
}

// ForensicStep records a PostureForensicSnapshot on escalation into a level
// whose accord asks for one: the mesh (peers with their tunnel state), the
// routes and the sessions as the tree holds them, JSON encoded with a
// SHA-256 of the content. The last one is kept in the store's meta under
// ForensicKey; emit, when set, also receives it.
//
// Apply returns as soon as the snapshot has pinned a version of the tree,
// so nothing (no reconciler's state write) changes what it records, while
// the mesh and route steps proceed; encoding and storing finish in the
// background (the engine waits for them before reporting).
func ForensicStep(st interface {
	Reader
	MetaStore
}, emit ForensicEmitter) Step {
	return &forensicStep{st: st, emit: emit}
}

func (*forensicStep) Name() string { return "forensic-snapshot" }
func (*forensicStep) Stage() Stage { return StageForensic }

func (s *forensicStep) Apply(ctx context.Context, t Transition) error {
	if s.done != nil {
		if err := s.Wait(); err != nil {
			return err
		}
	}
	locked := make(chan struct{})
	s.done = make(chan error, 1)
	go func() {
		var b bytes.Buffer
		var once sync.Once
		err := s.st.Read(func(tr *tree.Tree) error {
			once.Do(func() { close(locked) })
			encodeForensic(&b, tr, t)
			return nil
		})
		once.Do(func() { close(locked) })
		if err == nil {
			err = s.store(ctx, t.Seq, b.Bytes())
		} else {
			err = fmt.Errorf("read forensic snapshot: %w", err)
		}
		s.done <- err
	}()
	<-locked
	return nil
}

// Wait returns when the snapshot Apply started is stored.
func (s *forensicStep) Wait() error {
	if s.done == nil {
		return nil
	}
	err := <-s.done
	s.done = nil
	return err
}

func encodeForensic(b *bytes.Buffer, tr *tree.Tree, t Transition) {
	b.WriteString(`{"seq":` + strconv.FormatUint(t.Seq, 10) +
		`,"from":` + strconv.Itoa(int(t.From)) + `,"to":` + strconv.Itoa(int(t.To)))
	k := kedgetree.Of(tr).Kedge()
	for _, part := range []struct {
		name string
		in   *tree.Inst
	}{{"mesh", k.Mesh().Inst()}, {"routes", k.Routes().Inst()}, {"sessions", k.Sessions().Inst()}} {
		b.WriteString(`,"` + part.name + `":`)
		in := part.in
		js, ok := []byte(nil), false
		if in != nil {
			js, ok = tree.Match{In: in}.JSON(tree.EncodeOpts{})
		}
		if !ok {
			js = []byte("{}")
		}
		b.Write(js)
	}
	sum := sha256.Sum256(b.Bytes())
	b.WriteString(`,"sha256":"` + hex.EncodeToString(sum[:]) + `"}`)
}

func (s *forensicStep) store(ctx context.Context, seq uint64, rec []byte) error {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed) // the level is valid
	if _, err := zw.Write(rec); err != nil {
		return fmt.Errorf("compress forensic snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress forensic snapshot: %w", err)
	}
	if err := s.st.PutMeta(ForensicKey, z.Bytes()); err != nil {
		return fmt.Errorf("store forensic snapshot: %w", err)
	}
	if s.emit != nil {
		if err := s.emit(ctx, seq, rec); err != nil {
			return fmt.Errorf("emit forensic snapshot: %w", err)
		}
	}
	return nil
}
