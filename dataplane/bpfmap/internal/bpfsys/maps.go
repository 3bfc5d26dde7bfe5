package bpfsys

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"golang.org/x/sys/unix"
)

// Pin names inside the pin directory.
const (
	PinLevel  = "posture_level"
	PinAllow4 = "posture_allow_v4"
	PinAllow6 = "posture_allow_v6"
	PinEgress = "posture_egress_link"

	// MaxAllowlist is the capacity of each allowlist map (per family).
	MaxAllowlist = 1024
)

// ErrSpecMismatch means a pinned object exists but differs from what Kedge
// would create (type, key or value size, max entries, flags).
var ErrSpecMismatch = bpfmap.ErrSpecMismatch

// LevelSpec is the shared posture_level map: an array with one u32 key (0)
// holding the u32 level. Other programs (the shell's) pin and use the same
// map, so this spec is a contract.
func LevelSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: "posture_level", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
}

// allowSpec is an LPM trie keyed by {u32 prefixlen; u8 addr[n]}, value u8.
func allowSpec(name string, addrLen uint32) *ebpf.MapSpec {
	return &ebpf.MapSpec{
		Name: name, Type: ebpf.LPMTrie, KeySize: 4 + addrLen, ValueSize: 1,
		MaxEntries: MaxAllowlist, Flags: unix.BPF_F_NO_PREALLOC,
	}
}

// Maps are the pinned posture maps. Methods are not safe for concurrent
// use with Close.
type Maps struct {
	Dir    string
	level  *ebpf.Map
	allow4 *ebpf.Map
	allow6 *ebpf.Map
	prog   *ebpf.Program // loaded lazily by EnsureEgress

	// goodProg is an attached program id already proven equivalent to
	// prog, so EnsureEgress need not compare it again.
	goodProg ebpf.ProgramID
}

// Created lists the pins OpenMaps made (as opposed to adopted).
type Created []string

// OpenMaps creates or adopts the three pinned maps in dir. An existing pin
// with another spec is an error wrapping ErrSpecMismatch; it is left alone.
func OpenMaps(dir string) (*Maps, Created, error) {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones
	// use memcg and this is a no-op.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	m := &Maps{Dir: dir}
	var created Created
	var err error
	for _, x := range []struct {
		dst  **ebpf.Map
		pin  string
		spec *ebpf.MapSpec
	}{
		{&m.level, PinLevel, LevelSpec()},
		{&m.allow4, PinAllow4, allowSpec("posture_allow4", 4)},
		{&m.allow6, PinAllow6, allowSpec("posture_allow6", 16)},
	} {
		var made bool
		*x.dst, made, err = openOrCreate(filepath.Join(dir, x.pin), x.spec)
		if err != nil {
			m.Close()
			return nil, nil, err
		}
		if made {
			created = append(created, x.pin)
		}
	}
	return m, created, nil
}

func openOrCreate(path string, spec *ebpf.MapSpec) (*ebpf.Map, bool, error) {
	// Two rounds: if another process pins between our load and our pin,
	// adopt theirs.
	for range 2 {
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err == nil {
			if err := spec.Compatible(m); err != nil {
				m.Close()
				if errors.Is(err, ebpf.ErrMapIncompatible) {
					return nil, false, fmt.Errorf("adopt pinned map %s: %v: %w", path, err, ErrSpecMismatch)
				}
				return nil, false, fmt.Errorf("adopt pinned map %s: %w", path, err)
			}
			return m, false, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, false, fmt.Errorf("load pinned map %s: %w", path, err)
		}
		m, err = ebpf.NewMap(spec)
		if err != nil {
			return nil, false, fmt.Errorf("create map %s: %w", spec.Name, err)
		}
		if err := m.Pin(path); err != nil {
			m.Close()
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return nil, false, fmt.Errorf("pin map %s: %w", path, err)
		}
		return m, true, nil
	}
	return nil, false, fmt.Errorf("pin map %s: %w", path, os.ErrExist)
}

// Level reads key 0 of the level map.
func (m *Maps) Level() (uint32, error) {
	var v uint32
	if err := m.level.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("read posture level: %w", err)
	}
	return v, nil
}

// SetLevel writes key 0 of the level map.
func (m *Maps) SetLevel(v uint32) error {
	if err := m.level.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write posture level: %w", err)
	}
	return nil
}

// Allowlist returns every prefix in both allowlist maps, IPv4 first, each
// family sorted.
func (m *Maps) Allowlist() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, mp := range []*ebpf.Map{m.allow4, m.allow6} {
		var key, val []byte
		var fam []netip.Prefix
		it := mp.Iterate()
		for it.Next(&key, &val) {
			p, err := decodePrefix(key)
			if err != nil {
				return nil, err
			}
			fam = append(fam, p)
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("list allowlist: %w", err)
		}
		slices.SortFunc(fam, comparePrefix)
		out = append(out, fam...)
	}
	return out, nil
}

// AddPrefix inserts p (already masked) into its family's allowlist.
func (m *Maps) AddPrefix(p netip.Prefix) error {
	if err := m.allowMap(p).Update(encodePrefix(p), uint8(1), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("add allowlist prefix %s: %w", p, err)
	}
	return nil
}

// DeletePrefix removes p; a prefix that is already gone is not an error.
func (m *Maps) DeletePrefix(p netip.Prefix) error {
	err := m.allowMap(p).Delete(encodePrefix(p))
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete allowlist prefix %s: %w", p, err)
	}
	return nil
}

func (m *Maps) allowMap(p netip.Prefix) *ebpf.Map {
	if p.Addr().Is4() {
		return m.allow4
	}
	return m.allow6
}

// Close releases the file descriptors. Pins, and so the maps, the program
// and the link, stay in the kernel.
func (m *Maps) Close() error {
	var errs []error
	for _, mp := range []*ebpf.Map{m.level, m.allow4, m.allow6} {
		if mp != nil {
			errs = append(errs, mp.Close())
		}
	}
	if m.prog != nil {
		errs = append(errs, m.prog.Close())
	}
	return errors.Join(errs...)
}

// encodePrefix builds an LPM trie key: u32 prefix length in host order, then
// the address bytes in network order, which is how the program builds its
// lookup key from the packet.
func encodePrefix(p netip.Prefix) []byte {
	a := p.Addr().AsSlice()
	k := make([]byte, 4+len(a))
	binary.NativeEndian.PutUint32(k, uint32(p.Bits()))
	copy(k[4:], a)
	return k
}

func decodePrefix(k []byte) (netip.Prefix, error) {
	if len(k) != 8 && len(k) != 20 {
		return netip.Prefix{}, fmt.Errorf("decode allowlist key: %d bytes", len(k))
	}
	a, _ := netip.AddrFromSlice(k[4:])
	return netip.PrefixFrom(a, int(binary.NativeEndian.Uint32(k))), nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
