package main

import (
	"os/exec"
	"strings"
	"testing"
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
