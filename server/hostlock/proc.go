package hostlock

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procRoot is where the proc filesystem is.
const procRoot = "/proc"

// Describe names the process pid as far as /proc lets this process see
// it: its command name, and its data dir, found among its open files as
// a DataDirLock whose record is that pid's. Without permission to read
// the process's files (another user, without root) only the pid is known.
func Describe(pid int) Holder {
	h := Holder{PID: pid}
	base := filepath.Join(procRoot, strconv.Itoa(pid))
	if b, err := os.ReadFile(filepath.Join(base, "comm")); err == nil {
		h.Program = strings.TrimSpace(string(b))
	}
	fds, err := os.ReadDir(filepath.Join(base, "fd"))
	if err != nil {
		return h
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(base, "fd", fd.Name()))
		if err != nil || filepath.Base(target) != DataDirLock {
			continue
		}
		f, err := os.Open(filepath.Join(base, "fd", fd.Name()))
		if err != nil {
			continue
		}
		rec := readRecord(f)
		f.Close()
		if rec.PID == pid {
			h.DataDir = rec.DataDir
			return h
		}
	}
	return h
}

// flockHolder returns the pid /proc/locks gives for the flock on f's
// file, 0 when there is none or it is not visible.
func flockHolder(f *os.File) int {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return 0
	}
	want := lockID{major: unix.Major(st.Dev), minor: unix.Minor(st.Dev), ino: st.Ino}
	b, err := os.ReadFile(filepath.Join(procRoot, "locks"))
	if err != nil {
		return 0
	}
	return parseLocks(string(b), want)
}

// lockID is the "MAJ:MIN:INODE" of a /proc/locks line.
type lockID struct {
	major, minor uint32
	ino          uint64
}

// parseLocks finds the pid holding a FLOCK on id in /proc/locks text:
//
//	1: FLOCK  ADVISORY  WRITE 11383 fe:00:10027028 0 EOF
//
// (device numbers in hex, the inode in decimal; "->" lines are waiters).
func parseLocks(text string, id lockID) int {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || f[1] != "FLOCK" {
			continue
		}
		parts := strings.Split(f[5], ":")
		if len(parts) != 3 {
			continue
		}
		maj, err1 := strconv.ParseUint(parts[0], 16, 32)
		mnr, err2 := strconv.ParseUint(parts[1], 16, 32)
		ino, err3 := strconv.ParseUint(parts[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || uint32(maj) != id.major || uint32(mnr) != id.minor || ino != id.ino {
			continue
		}
		if pid, err := strconv.Atoi(f[4]); err == nil && pid > 0 {
			return pid
		}
	}
	return 0
}

// TCPHolder names the process listening on the TCP address addr
// (host:port) in the calling thread's network namespace, as ss -ltp would: the
// listening sockets on that port whose address overlaps addr's (either is
// unspecified, or they are equal), then the process holding one of them.
// The zero Holder means none was found or it is not visible here.
func TCPHolder(addr string) Holder {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return Holder{}
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return Holder{}
	}
	want, _ := netip.ParseAddr(host) // a name (localhost) or "" matches any address
	inodes := map[string]bool{}
	for _, name := range []string{"tcp", "tcp6"} {
		// thread-self: the namespace of this thread, which is the
		// daemon's (threads in other namespaces are locked to the
		// goroutines that put them there), whereas /proc/self/net is the
		// main thread's.
		b, err := os.ReadFile(filepath.Join(procRoot, "thread-self", "net", name))
		if err != nil {
			continue
		}
		for _, in := range parseListeners(string(b), uint16(port), want.Unmap()) {
			inodes["socket:["+in+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return Holder{}
	}
	if pid := socketOwner(inodes); pid > 0 {
		return Describe(pid)
	}
	return Holder{}
}

// parseListeners returns the inodes of the LISTEN sockets (state 0A) on
// port whose address overlaps want (an invalid want matches any) in
// /proc/net/tcp or tcp6 text:
//
//	0: 0100007F:B60B 00000000:0000 0A ... 0 0 1239713 ...
//
// The address is printed as 32-bit words in host byte order.
func parseListeners(text string, port uint16, want netip.Addr) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		a, p, ok := parseHexAddr(f[1])
		if !ok || p != port {
			continue
		}
		if want.IsValid() && !want.IsUnspecified() && !a.IsUnspecified() && a != want {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// parseHexAddr parses "0100007F:B60B" (or the 32-digit IPv6 form).
func parseHexAddr(s string) (netip.Addr, uint16, bool) {
	host, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, false
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, false
	}
	raw, err := hex.DecodeString(host)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, false
	}
	b := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(b[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(b)
	return a.Unmap(), uint16(port), true
}

// socketOwner finds a process with one of the sockets open
// ("socket:[INODE]" fd links), 0 when none is visible.
func socketOwner(sockets map[string]bool) int {
	procs, err := os.ReadDir(procRoot)
	if err != nil {
		return 0
	}
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join(procRoot, p.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && sockets[target] {
				return pid
			}
		}
	}
	return 0
}
