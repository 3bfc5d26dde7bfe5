package pinned

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/dataplane/bpfmap/internal/bpfsys"
	"github.com/guildhouse-co/kedge/tests/needs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testCgroup creates a throwaway cgroup under the cgroup2 mount.
func testCgroup(t *testing.T) string {
	t.Helper()
	mnt, err := bpfsys.Cgroup2Mount()
	if err != nil {
		needs.Unavailable(t, "no cgroup2 mount: %v", err)
	}
	dir := filepath.Join(mnt, "kedge-bpfmap-test-"+randSuffix(t))
	if err := os.Mkdir(dir, 0o755); err != nil {
		needs.Unavailable(t, "cannot create a cgroup under %s: %v", mnt, err)
	}
	t.Cleanup(func() {
		// Children are reaped before cleanup runs, so the cgroup is empty;
		// the kernel may still be tearing down their css, hence the retry.
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
				t.Errorf("remove cgroup %s: %v", dir, err)
				return
			}
			runtime.Gosched()
		}
	})
	return dir
}

// testNetns creates a named network namespace with lo up and a veth pair
// inside it, addresses only inside it; it returns the namespace's path.
func testNetns(t *testing.T) string {
	t.Helper()
	name := "kedge-bpfmap-" + randSuffix(t)
	ns := func() netns.NsHandle {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		orig, err := netns.Get()
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		ns, err := netns.NewNamed(name)
		if err != nil {
			t.Fatalf("create netns: %v", err)
		}
		if err := netns.Set(orig); err != nil {
			t.Fatalf("return to the original netns: %v", err)
		}
		return ns
	}()
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	up := func(name string) netlink.Link {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	up("lo")
	va, vb := "kbm"+randSuffix(t)+"a", "kbm"+randSuffix(t)+"b"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: va}, PeerName: vb}); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	la, lb := up(va), up(vb)
	for _, a := range []struct {
		l    netlink.Link
		cidr string
	}{
		{la, "10.201.0.1/24"}, {la, "10.202.0.1/24"}, {la, "fd00:201::1/64"},
		{lb, "10.201.0.2/24"}, {lb, "fd00:202::2/64"},
	} {
		ip, n, err := net.ParseCIDR(a.cidr)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		if err := h.AddrAdd(a.l, &netlink.Addr{IPNet: n, Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatalf("add %s: %v", a.cidr, err)
		}
	}
	return filepath.Join("/var/run/netns", name)
}

// sendFrom runs the child in the cgroup and namespace and returns the
// outcome per destination.
func sendFrom(t *testing.T, cgroup, nsPath string, dsts ...string) map[string]string {
	t.Helper()
	cg, err := os.Open(cgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildNetns+"="+nsPath, envChildDsts+"="+strings.Join(dsts, ","))
	// The child starts inside the cgroup (clone3 CLONE_INTO_CGROUP), so it
	// cannot send anything before it is placed.
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	return got
}

// TestEgressTraffic sends real UDP from a process in the cgroup: it passes
// at 5, is dropped at 1 except to loopback and the allowlist, and passes
// again at 5.
func TestEgressTraffic(t *testing.T) {
	requireEgress(t)
	cgroup := testCgroup(t)
	nsPath := testNetns(t)
	b := openBackend(t, testPinDir(t))
	ctx := context.Background()

	const (
		v4a, v4b, v6a = "10.201.0.2", "10.202.0.1", "fd00:202::2"
		lo4, lo6      = "127.0.0.1", "::1"
	)
	dsts := []string{v4a, v4b, v6a, lo4, lo6}
	steps := []struct {
		name string
		cfg  bpfmap.Config
		want map[string]string
	}{
		{"level 5", bpfmap.Config{Level: 5, CgroupPath: cgroup},
			map[string]string{v4a: outDelivered, v4b: outDelivered, v6a: outDelivered, lo4: outDelivered, lo6: outDelivered}},
		{"level 1", bpfmap.Config{Level: 1, CgroupPath: cgroup},
			map[string]string{v4a: outEPERM, v4b: outEPERM, v6a: outEPERM, lo4: outDelivered, lo6: outDelivered}},
		{"level 1 with allowlist", bpfmap.Config{Level: 1, CgroupPath: cgroup, Allowlist: pfx("10.201.0.0/24", "fd00:202::/64")},
			map[string]string{v4a: outDelivered, v4b: outEPERM, v6a: outDelivered, lo4: outDelivered, lo6: outDelivered}},
		{"level 5 again", bpfmap.Config{Level: 5, CgroupPath: cgroup},
			map[string]string{v4a: outDelivered, v4b: outDelivered, v6a: outDelivered, lo4: outDelivered, lo6: outDelivered}},
	}
	firstSet(t, b, steps[0].cfg)
	for _, s := range steps {
		if err := b.Set(ctx, s.cfg); err != nil {
			t.Fatalf("%s: Set: %v", s.name, err)
		}
		if diff := cmp.Diff(s.want, sendFrom(t, cgroup, nsPath, dsts...)); diff != "" {
			t.Errorf("%s: traffic (-want +got):\n%s", s.name, diff)
		}
	}
	// A process outside the cgroup is never affected: the level is 1 but
	// the test process itself (not in the cgroup) can still send.
	if err := b.Set(ctx, bpfmap.Config{Level: 1, CgroupPath: cgroup}); err != nil {
		t.Fatal(err)
	}
	if got := outsideCgroup(t, nsPath, v4a); got != outDelivered {
		t.Errorf("outside the cgroup at level 1: %s, want %s", got, outDelivered)
	}
}

// outsideCgroup probes from this (test) process inside the namespace.
func outsideCgroup(t *testing.T, nsPath, dst string) string {
	t.Helper()
	type result struct {
		out string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread's namespace is changed and never restored: not
		// unlocking makes the runtime retire the thread.
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		out, err := probe(dst)
		ch <- result{out, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.out
}

// TestEgressAdoptedAcrossRestart: a new Backend on the same pins adopts the
// link instead of attaching a second program; moving to another cgroup
// attaches there and detaches from the first; an empty CgroupPath detaches.
func TestEgressAdoptedAcrossRestart(t *testing.T) {
	requireEgress(t)
	cg1, cg2 := testCgroup(t), testCgroup(t)
	dir := testPinDir(t)
	ctx := context.Background()

	b := openBackend(t, dir)
	firstSet(t, b, bpfmap.Config{Level: 5, CgroupPath: cg1})
	first, ok, err := b.Egress()
	if err != nil || !ok {
		t.Fatalf("Egress() = %v, %v", ok, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := attached(t, cg1); n != 1 {
		t.Fatalf("after Close: %d programs on cgroup, want 1 (the pin keeps it)", n)
	}

	b2 := openBackend(t, dir)
	if err := b2.Set(ctx, bpfmap.Config{Level: 5, CgroupPath: cg1}); err != nil {
		t.Fatal(err)
	}
	again, _, err := b2.Egress()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("restart replaced the link (-before +after):\n%s", diff)
	}
	if n := attached(t, cg1); n != 1 {
		t.Errorf("after restart: %d programs on cgroup, want 1", n)
	}

	// Someone removes the pin: the link dies with it, and the next Set,
	// which checks the kernel rather than its memory, puts it back.
	if err := os.Remove(filepath.Join(dir, bpfsys.PinEgress)); err != nil {
		t.Fatal(err)
	}
	// The kernel may free the orphaned link asynchronously.
	if n := waitAttached(t, cg1, 0); n != 0 {
		t.Fatalf("after unpinning: %d programs on cgroup, want 0", n)
	}
	if err := b2.Set(ctx, bpfmap.Config{Level: 5, CgroupPath: cg1}); err != nil {
		t.Fatal(err)
	}
	if n := attached(t, cg1); n != 1 {
		t.Errorf("after re-Set: %d programs on cgroup, want 1", n)
	}

	if err := b2.Set(ctx, bpfmap.Config{Level: 5, CgroupPath: cg2}); err != nil {
		t.Fatal(err)
	}
	if n1, n2 := attached(t, cg1), attached(t, cg2); n1 != 0 || n2 != 1 {
		t.Errorf("after move: %d programs on the old cgroup, %d on the new; want 0 and 1", n1, n2)
	}
	moved, _, err := b2.Egress()
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := bpfsys.CgroupID(cg2); moved.CgroupID != id {
		t.Errorf("link cgroup id = %d, want %d", moved.CgroupID, id)
	}

	if err := b2.Set(ctx, bpfmap.Config{Level: 5}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b2.Egress(); err != nil || ok {
		t.Errorf("after detach Egress() = %v, %v; want no link", ok, err)
	}
	if n := attached(t, cg2); n != 0 {
		t.Errorf("after detach: %d programs on cgroup, want 0", n)
	}
}

// attached counts egress programs on a cgroup.
func attached(t *testing.T, cgroup string) int {
	t.Helper()
	f, err := os.Open(cgroup)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupInetEgress})
	if err != nil {
		t.Fatalf("query cgroup programs: %v", err)
	}
	return len(res.Programs)
}

// waitAttached polls until want programs are attached to cgroup or a
// deadline passes, and returns the last count.
func waitAttached(t *testing.T, cgroup string, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := attached(t, cgroup)
		if n == want || time.Now().After(deadline) {
			return n
		}
		runtime.Gosched()
	}
}
