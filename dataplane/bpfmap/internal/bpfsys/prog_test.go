package bpfsys

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/guildhouse-co/kedge/tests/needs"
)

// openTestMaps creates the maps under a unique pin directory, removed at
// cleanup. It skips without root or the needed kernel features.
func openTestMaps(t *testing.T) *Maps {
	t.Helper()
	needs.Root(t, "creates BPF maps and mounts bpffs")
	for _, err := range []error{
		features.HaveMapType(ebpf.LPMTrie),
		features.HaveProgramType(ebpf.CGroupSKB),
	} {
		if errors.Is(err, ebpf.ErrNotSupported) {
			needs.Unavailable(t, "kernel lacks a feature: %v", err)
		}
	}
	if err := EnsureBPFFS("/sys/fs/bpf"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("/sys/fs/bpf", "kedge-bpfsys-test-"+hex.EncodeToString(b))
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := EnsurePinDir(dir); err != nil {
		t.Fatal(err)
	}
	m, _, err := OpenMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// packet builds an Ethernet frame (BPF_PROG_TEST_RUN strips it for cgroup
// skb programs) carrying a minimal IP header to dst. version overrides the
// IP version nibble when non-zero.
func packet(dst string, version byte) []byte {
	a := netip.MustParseAddr(dst)
	eth := make([]byte, 14)
	if a.Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip := make([]byte, 20+8)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
		ip[8], ip[9] = 64, 17 // ttl, udp
		copy(ip[12:], []byte{10, 0, 0, 1})
		d := a.As4()
		copy(ip[16:], d[:])
		if version != 0 {
			ip[0] = version<<4 | 5
		}
		return append(eth, ip...)
	}
	binary.BigEndian.PutUint16(eth[12:], 0x86DD)
	ip := make([]byte, 40+8)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8)
	ip[6], ip[7] = 17, 64
	ip[23] = 1 // src ::1... irrelevant to the verdict
	d := a.As16()
	copy(ip[24:], d[:])
	if version != 0 {
		ip[0] = version << 4
	}
	return append(eth, ip...)
}

// TestEgressVerdicts runs the program on synthetic packets with
// BPF_PROG_TEST_RUN: every branch, without a cgroup or a network.
func TestEgressVerdicts(t *testing.T) {
	m := openTestMaps(t)
	prog, err := m.program()
	if err != nil {
		t.Fatalf("load program (verifier): %v", err)
	}
	for _, p := range []string{"10.9.0.0/16", "192.0.2.7/32", "fd00:9::/64"} {
		if err := m.AddPrefix(netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	const pass, drop = 1, 0
	cases := []struct {
		level   uint32
		dst     string
		version byte
		want    uint32
	}{
		{0, "10.1.1.1", 0, pass}, // never written: not lockdown
		{5, "10.1.1.1", 0, pass},
		{3, "2001:db8::1", 0, pass},
		{2, "10.1.1.1", 0, pass},
		{1, "10.1.1.1", 0, drop},
		{1, "127.0.0.1", 0, pass},
		{1, "127.200.3.4", 0, pass},
		{1, "128.0.0.1", 0, drop},
		{1, "10.9.200.1", 0, pass},   // in 10.9.0.0/16
		{1, "10.10.0.1", 0, drop},    // just outside
		{1, "192.0.2.7", 0, pass},    // host route
		{1, "192.0.2.8", 0, drop},    // its neighbour
		{1, "::1", 0, pass},          // IPv6 loopback
		{1, "::2", 0, drop},          // not loopback
		{1, "1::1", 0, drop},         // loopback word in the wrong place
		{1, "fd00:9::abcd", 0, pass}, // in fd00:9::/64
		{1, "fd00:9:0:1::1", 0, drop},
		{1, "::ffff:127.0.0.1", 0, drop}, // v4-mapped in an IPv6 header is not loopback
		{1, "10.9.0.1", 5, drop},         // unknown IP version: fail closed
		{1, "fd00:9::1", 7, drop},
	}
	for _, tc := range cases {
		if err := m.SetLevel(tc.level); err != nil {
			t.Fatal(err)
		}
		got, err := prog.Run(&ebpf.RunOptions{Data: packet(tc.dst, tc.version)})
		if errors.Is(err, ebpf.ErrNotSupported) {
			needs.Unavailable(t, "kernel cannot test-run cgroup skb programs: %v", err)
		}
		if err != nil {
			t.Fatalf("run level %d dst %s: %v", tc.level, tc.dst, err)
		}
		if got != tc.want {
			t.Errorf("level %d, dst %s, version %d: verdict %d, want %d", tc.level, tc.dst, tc.version, got, tc.want)
		}
	}
}

func TestPrefixKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"0.0.0.0/0", "10.1.0.0/16", "192.0.2.1/32", "::/0", "fd00:1::/64", "2001:db8::1/128"} {
		p := netip.MustParsePrefix(s)
		got, err := decodePrefix(encodePrefix(p))
		if err != nil || got != p {
			t.Errorf("decode(encode(%s)) = %s, %v", p, got, err)
		}
	}
	if _, err := decodePrefix(make([]byte, 5)); err == nil {
		t.Error("decodePrefix accepted a 5-byte key")
	}
}
