package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDependencies keeps the plugin binary small and quick to start: no
// ygot, no cilium/ebpf, none of the daemon's packages, and not the
// reference plugins' firewall libraries.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/openconfig/ygot",
		"github.com/openconfig/goyang",
		"github.com/cilium/ebpf",
		"go.etcd.io/bbolt",
		"github.com/guildhouse-co/kedge/gnmi/",
		"github.com/guildhouse-co/kedge/yang",
		"github.com/guildhouse-co/kedge/server",
		"github.com/guildhouse-co/kedge/dataplane",
		"github.com/guildhouse-co/kedge/models",
		"github.com/coreos/go-iptables",
		"sigs.k8s.io/knftables",
	}
	var deps int
	for _, dep := range strings.Fields(string(out)) {
		deps++
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("kedge-cni depends on %s", dep)
			}
		}
	}
	if deps == 0 {
		t.Fatal("go list printed no dependencies")
	}
}

// TestBinarySmallAndQuick builds the plugin and checks its size and that
// VERSION (process start to exit, the floor under every CNI call) stays
// well inside a runtime's budget. Bounds are loose: they catch a heavy
// dependency creeping in, not machine noise.
func TestBinarySmallAndQuick(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kedge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	const maxSize = 24 << 20
	if st.Size() > maxSize {
		t.Errorf("kedge-cni is %d bytes, over %d", st.Size(), maxSize)
	}
	var best time.Duration
	for i := range 5 {
		cmd := exec.Command(bin)
		cmd.Env = []string{"CNI_COMMAND=VERSION"}
		cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
		start := time.Now()
		out, err := cmd.Output()
		el := time.Since(start)
		if err != nil || !strings.Contains(string(out), "1.1.0") {
			t.Fatalf("VERSION: %v %s", err, out)
		}
		if i == 0 || el < best {
			best = el
		}
	}
	if best > 250*time.Millisecond {
		t.Errorf("fastest VERSION took %v", best)
	}
	t.Logf("size %d bytes, fastest VERSION %v", st.Size(), best)
}
