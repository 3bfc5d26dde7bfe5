package bpfsys

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// EgressAction says what EnsureEgress did.
type EgressAction int

const (
	EgressAdopted  EgressAction = iota // pinned link already ran our program on this cgroup
	EgressUpdated                      // pinned link on this cgroup, program replaced in place
	EgressAttached                     // new link attached (and any link on another cgroup detached)
)

func (a EgressAction) String() string {
	switch a {
	case EgressAdopted:
		return "adopted"
	case EgressUpdated:
		return "updated"
	case EgressAttached:
		return "attached"
	}
	return fmt.Sprintf("EgressAction(%d)", int(a))
}

// EgressLink describes the pinned egress link.
type EgressLink struct {
	CgroupID  uint64
	LinkID    uint32
	ProgramID uint32
}

// Egress reports the pinned egress link; ok is false if there is none.
func (m *Maps) Egress() (l EgressLink, ok bool, err error) {
	lk, err := link.LoadPinnedLink(filepath.Join(m.Dir, PinEgress), nil)
	if errors.Is(err, os.ErrNotExist) {
		return EgressLink{}, false, nil
	}
	if err != nil {
		return EgressLink{}, false, fmt.Errorf("load pinned egress link: %w", err)
	}
	defer lk.Close()
	info, err := lk.Info()
	if err != nil {
		return EgressLink{}, false, fmt.Errorf("inspect egress link: %w", err)
	}
	l = EgressLink{LinkID: uint32(info.ID), ProgramID: uint32(info.Program)}
	if cg := info.Cgroup(); cg != nil {
		l.CgroupID = cg.CgroupId
	}
	return l, true, nil
}

// EnsureEgress makes the pinned egress link run the current program on the
// cgroup at cgroupPath. It adopts a matching link, updates the program of a
// link on the same cgroup in place, or attaches a new link; a link on another
// cgroup is replaced only after the new one is attached and pinned, so the
// node is never without enforcement in between.
func (m *Maps) EnsureEgress(cgroupPath string) (EgressAction, error) {
	cgID, err := CgroupID(cgroupPath)
	if err != nil {
		return 0, err
	}
	prog, err := m.program()
	if err != nil {
		return 0, err
	}
	pin := filepath.Join(m.Dir, PinEgress)
	old, err := link.LoadPinnedLink(pin, nil)
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = nil
	case err != nil:
		return 0, fmt.Errorf("load pinned egress link: %w", err)
	}
	if old != nil {
		defer old.Close()
		info, err := old.Info()
		if err != nil {
			return 0, fmt.Errorf("inspect egress link: %w", err)
		}
		if cg := info.Cgroup(); cg != nil && cg.CgroupId == cgID {
			if info.Program == m.goodProg {
				return EgressAdopted, nil // checked before: skip the comparison
			}
			same, err := sameProgram(info.Program, prog)
			if err != nil {
				return 0, err
			}
			if same {
				m.goodProg = info.Program
				return EgressAdopted, nil
			}
			if err := old.Update(prog); err != nil {
				return 0, fmt.Errorf("update egress program: %w", err)
			}
			m.goodProg = 0
			return EgressUpdated, nil
		}
	}

	nl, err := link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: ebpf.AttachCGroupInetEgress, Program: prog})
	if err != nil {
		return 0, fmt.Errorf("attach egress program to %s: %w", cgroupPath, err)
	}
	defer nl.Close()    // the pin keeps the link alive
	tmp := pin + "_new" // bpffs refuses names with a dot (EPERM)
	_ = os.Remove(tmp)  // left over from a crash between pin and rename
	if err := nl.Pin(tmp); err != nil {
		return 0, fmt.Errorf("pin egress link %s: %w", tmp, err)
	}
	// rename(2) replaces the old pin atomically; the old link then dies
	// when our descriptor to it closes.
	if err := os.Rename(tmp, pin); err != nil {
		_ = os.Remove(tmp)
		return 0, fmt.Errorf("move egress link pin: %w", err)
	}
	if old != nil {
		if err := old.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
			return EgressAttached, fmt.Errorf("detach previous egress link: %w", err)
		}
	}
	return EgressAttached, nil
}

// DetachEgress detaches and unpins the egress link, if any.
func (m *Maps) DetachEgress() error {
	pin := filepath.Join(m.Dir, PinEgress)
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned egress link: %w", err)
	}
	defer l.Close()
	// Detach first: it cuts the program off even if another process still
	// holds a descriptor to the link.
	if err := l.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("detach egress link: %w", err)
	}
	if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("unpin egress link: %w", err)
	}
	return nil
}

// sameProgram reports whether the attached program id has our program's
// instructions (tag) and uses the same maps. The tag ignores map identity,
// so both are needed.
func sameProgram(id ebpf.ProgramID, ours *ebpf.Program) (bool, error) {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return false, fmt.Errorf("open attached program %d: %w", id, err)
	}
	defer p.Close()
	theirs, err := p.Info()
	if err != nil {
		return false, fmt.Errorf("inspect attached program: %w", err)
	}
	mine, err := ours.Info()
	if err != nil {
		return false, fmt.Errorf("inspect egress program: %w", err)
	}
	if theirs.Tag != mine.Tag || theirs.Type != mine.Type {
		return false, nil
	}
	a, okA := theirs.MapIDs()
	b, okB := mine.MapIDs()
	if !okA || !okB {
		return false, nil // cannot prove it: replace
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b), nil
}
