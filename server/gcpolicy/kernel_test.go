package gcpolicy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/tests/needs"
)

// TestCgroupLimitInKernelCgroup puts a child process in a memory cgroup
// of the real kernel, limited to 300 MiB under its parent's own cgroup,
// and checks that the child reads that limit from its file.
func TestCgroupLimitInKernelCgroup(t *testing.T) {
	if os.Getenv("KEDGE_GCPOLICY_CHILD") == "1" {
		return // the child's work is in TestMain
	}
	needs.Root(t, "creates a memory cgroup and moves a process into it")
	ms, err := cgroupMounts("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	dir, file := memoryCgroupDir(t, ms)
	if dir == "" {
		needs.Unavailable(t, "this machine mounts no cgroup hierarchy with the memory controller enabled for children")
	}
	cg := filepath.Join(dir, fmt.Sprintf("kedge-gcpolicy-%d", os.Getpid()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		needs.Unavailable(t, "cannot create a memory cgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	const limit = 300 << 20
	if err := os.WriteFile(filepath.Join(cg, file), []byte(strconv.Itoa(limit)), 0o644); err != nil {
		t.Fatal(err)
	}

	child := exec.Command(os.Args[0], "-test.run", "^TestCgroupLimitInKernelCgroup$")
	child.Env = append(os.Environ(), "KEDGE_GCPOLICY_CHILD=1")
	in, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	// The child waits for a line on stdin, so it reads its cgroup only
	// once it is in the test's.
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
		in.Close()
		_ = child.Wait()
		t.Fatal(err)
	}
	in.Write([]byte("go\n"))
	in.Close()
	if err := child.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	want := fmt.Sprintf("limit %d from %s\n", limit, filepath.Join(cg, file))
	if !strings.Contains(out.String(), want) {
		t.Fatalf("child said %q, want %q", out.String(), want)
	}
}

// memoryCgroupDir is the cgroup directory of this process in a hierarchy
// whose children get the memory controller, and that hierarchy's limit
// file name.
func memoryCgroupDir(t *testing.T, ms mounts) (string, string) {
	groups, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(groups)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "" && ms.v2 != nil && ms.v2.root == "/":
			dir := filepath.Join(ms.v2.point, f[2])
			ctl, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
			if hasController(strings.Join(strings.Fields(string(ctl)), ","), "memory") {
				return dir, "memory.max"
			}
		case hasController(f[1], "memory") && ms.v1memory != nil && ms.v1memory.root == "/":
			return filepath.Join(ms.v1memory.point, f[2]), "memory.limit_in_bytes"
		}
	}
	return "", ""
}

func TestMain(m *testing.M) {
	if os.Getenv("KEDGE_GCPOLICY_CHILD") == "1" {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Println("read stdin:", err)
			os.Exit(1)
		}
		n, from, err := CgroupLimit()
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Printf("limit %d from %s\n", n, from)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
