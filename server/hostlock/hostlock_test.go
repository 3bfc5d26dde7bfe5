package hostlock

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/guildhouse-co/kedge/tests/needs"
)

// holdSpec is what a helper process holds (see TestMain).
type holdSpec struct {
	DataDir  string   `json:"data_dir"`
	Files    []string `json:"files,omitempty"`
	Dirs     []string `json:"dirs,omitempty"`
	Abstract []string `json:"abstract,omitempty"` // names in the helper's own namespace
	TCP      bool     `json:"tcp,omitempty"`      // listen on 127.0.0.1:0
}

const holdEnv = "KEDGE_HOSTLOCK_TEST_HOLD"

// TestMain turns the test binary into a lock holder when holdEnv is set:
// it takes the data dir lock and the locks of the spec, prints "ready"
// and its TCP address, and holds them until stdin closes or it is killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv(holdEnv); spec != "" {
		os.Exit(hold(spec))
	}
	os.Exit(m.Run())
}

func hold(spec string) int {
	var s holdSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Println("bad spec:", err)
		return 2
	}
	me := Self(s.DataDir)
	var locks []*Lock
	take := func(l *Lock, err error) bool {
		if err != nil {
			fmt.Println("lock:", err)
			return false
		}
		locks = append(locks, l)
		return true
	}
	if !take(File(filepath.Join(s.DataDir, DataDirLock), Resource{Name: "data dir"}, me)) {
		return 1
	}
	for _, p := range s.Files {
		if !take(File(p, Resource{Name: p}, me)) {
			return 1
		}
	}
	for _, p := range s.Dirs {
		if !take(Dir(p, Resource{Name: p})) {
			return 1
		}
	}
	for _, n := range s.Abstract {
		if !take(Abstract("", n, Resource{Name: n}, me)) {
			return 1
		}
	}
	addr := "-"
	if s.TCP {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		defer ln.Close()
		addr = ln.Addr().String()
	}
	fmt.Println("ready", addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, l := range locks {
		l.Close()
	}
	return 0
}

// holder is a running helper process.
type holder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
}

func startHolder(t *testing.T, s holdSpec) *holder {
	t.Helper()
	b, _ := json.Marshal(s)
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+string(b))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 || f[0] != "ready" {
		t.Fatalf("helper did not take its locks: %q %v", line, err)
	}
	return &holder{cmd: cmd, stdin: stdin, addr: f[1]}
}

// kill9 kills the helper with SIGKILL and waits for it to be gone.
func (h *holder) kill9(t *testing.T) {
	t.Helper()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
}

// wantHeld checks err is a HeldError naming the helper's pid and data dir.
func wantHeld(t *testing.T, err error, h *holder, dataDir string) *HeldError {
	t.Helper()
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) {
		t.Fatalf("got %v, want a HeldError", err)
	}
	if he.Holder.PID != h.cmd.Process.Pid || he.Holder.DataDir != dataDir {
		t.Errorf("holder %+v, want pid %d data dir %s", he.Holder, h.cmd.Process.Pid, dataDir)
	}
	msg := err.Error()
	for _, want := range []string{"pid " + strconv.Itoa(h.cmd.Process.Pid), "data dir " + dataDir, he.Resource.Name} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	return he
}

func TestFileHeldNamesHolderAndSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data-a")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	res := filepath.Join(dir, "segment.lock")
	h := startHolder(t, holdSpec{DataDir: data, Files: []string{res}})

	me := Self(filepath.Join(dir, "data-b"))
	_, err := File(res, Resource{Name: "VPP segment x", Hint: "give it its own --shm-path"}, me)
	he := wantHeld(t, err, h, data)
	if !strings.HasSuffix(err.Error(), "; give it its own --shm-path") || he.Holder.Program == "" {
		t.Errorf("message %q, program %q: want the hint at the end and the holder's command name", err, he.Holder.Program)
	}
	// The data dir lock itself is held the same way.
	_, err = File(filepath.Join(data, DataDirLock), Resource{Name: "data dir " + data}, me)
	wantHeld(t, err, h, data)

	// kill -9 leaves the file but not the lock: the next one takes it
	// over and records itself.
	h.kill9(t)
	if _, err := os.Stat(res); err != nil {
		t.Fatalf("a killed holder's file should remain (unlocked): %v", err)
	}
	l, err := File(res, Resource{Name: "VPP segment x"}, me)
	if err != nil {
		t.Fatalf("lock after kill -9: %v", err)
	}
	b, _ := os.ReadFile(res)
	var rec Holder
	if json.Unmarshal(b, &rec) != nil || rec.PID != os.Getpid() || rec.DataDir != me.DataDir {
		t.Errorf("lock file records %q, want this process", b)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a released lock left its file: %v", err)
	}
}

// TestFileStaleRecordNamesTrueHolder: the pid comes from the kernel
// (/proc/locks), not from a record a killed holder may have left.
func TestFileStaleRecordNamesTrueHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	if err := os.WriteFile(p, []byte(`{"pid":1,"data_dir":"/stale"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, err = File(p, Resource{Name: "x"}, Self("/b"))
	var he *HeldError
	if !errors.As(err, &he) {
		t.Fatalf("got %v, want a HeldError", err)
	}
	if he.Holder.PID != os.Getpid() || he.Holder.DataDir == "/stale" {
		t.Errorf("holder %+v: want this process (pid %d), not the stale record", he.Holder, os.Getpid())
	}
}

// TestFileMutualExclusion: goroutines taking and releasing one lock file
// (each File opens it anew, so each is its own flock) never hold it
// together, although every release removes the file under the others.
func TestFileMutualExclusion(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.lock")
	var inside, overlaps, taken atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 300 {
				l, err := File(p, Resource{Name: "x"}, Self("/d"))
				if errors.Is(err, ErrHeld) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				taken.Add(1)
				// Stay inside long enough for another taker to get in if
				// the lock let it (a few syscalls).
				for range 4 {
					os.Stat(p)
					runtime.Gosched()
				}
				inside.Add(-1)
				if err := l.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 || taken.Load() == 0 {
		t.Errorf("%d of %d takes overlapped another holder", overlaps.Load(), taken.Load())
	}
}

func TestFileRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "x.lock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := File(link, Resource{Name: "x"}, Self("/d")); err == nil || errors.Is(err, ErrHeld) {
		t.Fatalf("a symlinked lock file was taken: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
}

func TestDirHeldNamesHolderAndSurvivesKill9(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data-a")
	pins := filepath.Join(dir, "pins")
	for _, d := range []string{data, pins} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	h := startHolder(t, holdSpec{DataDir: data, Dirs: []string{pins}})
	_, err := Dir(pins, Resource{Name: "BPF pin dir " + pins})
	wantHeld(t, err, h, data)
	h.kill9(t)
	l, err := Dir(pins, Resource{Name: "BPF pin dir " + pins})
	if err != nil {
		t.Fatalf("lock after kill -9: %v", err)
	}
	l.Close()
	if _, err := os.Stat(pins); err != nil {
		t.Errorf("releasing a directory lock removed the directory: %v", err)
	}
}

func TestAbstractHeldNamesHolderAndSurvivesKill9(t *testing.T) {
	data := t.TempDir()
	name := fmt.Sprintf("test/%d-%d", os.Getpid(), rand.IntN(1<<30))
	h := startHolder(t, holdSpec{DataDir: data, Abstract: []string{name}})
	_, err := Abstract("", name, Resource{Name: "route protocol 107 in this namespace"}, Self("/b"))
	wantHeld(t, err, h, data)
	h.kill9(t)
	l, err := Abstract("", name, Resource{Name: "x"}, Self("/b"))
	if err != nil {
		t.Fatalf("lock after kill -9: %v", err)
	}
	// Released, the name is free at once (no file to clean up).
	l.Close()
	l2, err := Abstract("", name, Resource{Name: "x"}, Self("/b"))
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Close()
}

// TestAbstractPerNamespace: the same name in two network namespaces is
// two locks; in one namespace it is one, whichever thread asks.
func TestAbstractPerNamespace(t *testing.T) {
	needs.Root(t, "creates a network namespace")
	needs.Tool(t, "ip", "creates a network namespace")
	ns := fmt.Sprintf("hostlock-%d-%d", os.Getpid(), rand.IntN(1<<30))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		needs.Unavailable(t, "cannot create a namespace: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	nsPath := "/run/netns/" + ns
	name := fmt.Sprintf("test/%d-%d", os.Getpid(), rand.IntN(1<<30))
	// Taking a lock in another namespace leaves every thread of this
	// process at home, the main thread included (whose namespace is what
	// /proc/self/net shows).
	home, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if now, _ := os.Readlink("/proc/self/ns/net"); now != home {
			t.Errorf("the main thread's namespace is %s after the test, was %s", now, home)
		}
	}()
	for range 50 {
		l, err := Abstract(nsPath, name, Resource{Name: "in ns"}, Self("/a"))
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}

	in, err := Abstract(nsPath, name, Resource{Name: "in ns"}, Self("/a"))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	host, err := Abstract("", name, Resource{Name: "in host"}, Self("/b"))
	if err != nil {
		t.Fatalf("the same name in another namespace: %v", err)
	}
	defer host.Close()
	_, err = Abstract(nsPath, name, Resource{Name: "in ns again"}, Self("/c"))
	var he *HeldError
	if !errors.As(err, &he) || he.Holder.PID != os.Getpid() || he.Holder.DataDir != "/a" {
		t.Fatalf("second lock in the namespace: %v (%+v), want held by this process, data dir /a", err, he)
	}
	if _, err := Abstract("/nonexistent/netns", name, Resource{Name: "x"}, Self("/d")); err == nil || errors.Is(err, ErrHeld) {
		t.Errorf("a missing namespace: %v, want an error that is not ErrHeld", err)
	}
}

func TestTCPHolder(t *testing.T) {
	data := t.TempDir()
	h := startHolder(t, holdSpec{DataDir: data, TCP: true})
	got := TCPHolder(h.addr)
	if got.PID != h.cmd.Process.Pid || got.DataDir != data {
		t.Errorf("TCPHolder(%s) = %+v, want pid %d data dir %s", h.addr, got, h.cmd.Process.Pid, data)
	}
	_, port, _ := net.SplitHostPort(h.addr)
	if got := TCPHolder("0.0.0.0:" + port); got.PID != h.cmd.Process.Pid {
		t.Errorf("the unspecified address on the same port: %+v", got)
	}
	if got := TCPHolder("127.0.0.2:" + port); got.PID != 0 {
		t.Errorf("another address on the same port: %+v, want none", got)
	}
	h.kill9(t)
	if got := TCPHolder(h.addr); got.PID != 0 {
		t.Errorf("after kill -9: %+v, want none", got)
	}
}

func TestParseLocks(t *testing.T) {
	text := `1: FLOCK  ADVISORY  WRITE 11383 fe:00:10027028 0 EOF
2: OFDLCK ADVISORY  WRITE -1 fe:00:777 0 EOF
3: POSIX  ADVISORY  WRITE 42 fe:00:888 0 EOF
3: -> FLOCK  ADVISORY  WRITE 99 fe:00:999 0 EOF
4: FLOCK  ADVISORY  WRITE 12 00:2a:999 0 EOF
`
	for _, c := range []struct {
		id   lockID
		want int
	}{
		{lockID{0xfe, 0, 10027028}, 11383},
		{lockID{0, 0x2a, 999}, 12}, // not the waiter on fe:00:999
		{lockID{0xfe, 0, 777}, 0},  // an OFD lock has no pid
		{lockID{0xfe, 0, 888}, 0},  // POSIX locks are not ours
		{lockID{0xfe, 1, 10027028}, 0},
	} {
		if got := parseLocks(text, c.id); got != c.want {
			t.Errorf("parseLocks(%+v) = %d, want %d", c.id, got, c.want)
		}
	}
}

func TestParseHexAddr(t *testing.T) {
	// 127.0.0.1:9339 and [::1]:9339 as /proc/net/tcp{,6} print them: the
	// kernel loads each 4 bytes of the address as a native uint32.
	var v4, v6 string
	ip4 := [4]byte{127, 0, 0, 1}
	v4 = fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ip4[:]), 9339)
	ip6 := [16]byte{15: 1}
	for i := 0; i < 16; i += 4 {
		v6 += fmt.Sprintf("%08X", binary.NativeEndian.Uint32(ip6[i:i+4]))
	}
	v6 += fmt.Sprintf(":%04X", 9339)
	for _, c := range []struct{ in, want string }{{v4, "127.0.0.1"}, {v6, "::1"}, {"00000000:0050", "0.0.0.0"}} {
		a, p, ok := parseHexAddr(c.in)
		if !ok || a.String() != c.want || (c.in != "00000000:0050" && p != 9339) {
			t.Errorf("parseHexAddr(%s) = %v %d %v, want %s", c.in, a, p, ok, c.want)
		}
	}
	if _, _, ok := parseHexAddr("zz:1"); ok {
		t.Error("bad hex parsed")
	}
}
