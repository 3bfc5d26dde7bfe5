package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// importGraph is what `go list -deps -json` says of a set of packages:
// each package's direct imports, and the roots asked for.
type importGraph struct {
	imports map[string][]string
	roots   []string
}

func loadImports(t *testing.T, patterns ...string) importGraph {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps", "-json=ImportPath,Imports,DepOnly"}, patterns...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps %v: %v", patterns, err)
	}
	g := importGraph{imports: map[string][]string{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			DepOnly    bool
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		g.imports[p.ImportPath] = p.Imports
		if !p.DepOnly {
			g.roots = append(g.roots, p.ImportPath)
		}
	}
	if len(g.roots) == 0 {
		t.Fatalf("go list %v listed no packages", patterns)
	}
	return g
}

// path returns the import chain from a root to a package matching bad,
// not passing through any package in via (nil when there is none).
func (g importGraph) path(bad func(string) bool, via map[string]bool) []string {
	prev := map[string]string{}
	queue := slices.Clone(g.roots)
	seen := map[string]bool{}
	for _, r := range queue {
		seen[r] = true
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if bad(p) {
			chain := []string{p}
			for q, ok := prev[p]; ok; q, ok = prev[q] {
				chain = append([]string{q}, chain...)
			}
			return chain
		}
		if via[p] {
			continue
		}
		for _, imp := range g.imports[p] {
			if !seen[imp] {
				seen[imp] = true
				prev[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return nil
}

func prefixed(prefixes ...string) func(string) bool {
	return func(p string) bool {
		for _, pre := range prefixes {
			if p == pre || strings.HasPrefix(p, pre+"/") {
				return true
			}
		}
		return false
	}
}

// Kernel and storage libraries: what the contracts and the domain logic
// must not link.
var kernelLibs = []string{
	"github.com/vishvananda/netlink",
	"github.com/vishvananda/netns",
	"github.com/mdlayher/netlink",
	"github.com/mdlayher/genetlink",
	"golang.zx2c4.com/wireguard", // wireguard-go, wgctrl and wgtypes
	"github.com/cilium/ebpf",
	"go.etcd.io/bbolt",
}

// TestModelsLinkNoKernelLibrary: models/ (the accords, the intent, the
// rules, the underlay compiler) is pure domain logic and links no netlink,
// WireGuard, eBPF or bbolt code, and no gRPC transport. One exception is forced by the gNMI protobufs:
// github.com/openconfig/gnmi/proto/gnmi holds the gNMI service stubs
// beside its messages, so every user of gnmi/tree (whose paths are gNMI
// PathElems) links grpc through it; the test allows grpc by that road
// only, so a models package that imports grpc (or anything that does)
// itself fails it.
func TestModelsLinkNoKernelLibrary(t *testing.T) {
	g := loadImports(t, "github.com/guildhouse-co/kedge/models/...")
	if chain := g.path(prefixed(kernelLibs...), nil); chain != nil {
		t.Errorf("models links %s: %s", chain[len(chain)-1], strings.Join(chain, " -> "))
	}
	gpb := map[string]bool{"github.com/openconfig/gnmi/proto/gnmi": true}
	grpc := prefixed("google.golang.org/grpc")
	noTransport := func(p string) bool { return grpc(p) && !grpcStatusOnly[p] }
	if chain := g.path(noTransport, gpb); chain != nil {
		t.Errorf("models links gRPC other than through the gNMI protobufs: %s", strings.Join(chain, " -> "))
	}
}

// grpcStatusOnly are gRPC's status and code types with what they import:
// no transport. ygot's ytypes, which the underlay compiler's OpenConfig
// bindings (gen/oc) validate with, reports errors with them, so
// models/underlay links these and nothing else of gRPC.
var grpcStatusOnly = map[string]bool{
	"google.golang.org/grpc/codes":            true,
	"google.golang.org/grpc/status":           true,
	"google.golang.org/grpc/internal/status":  true,
	"google.golang.org/grpc/internal":         true,
	"google.golang.org/grpc/grpclog":          true,
	"google.golang.org/grpc/grpclog/internal": true,
	"google.golang.org/grpc/connectivity":     true,
	"google.golang.org/grpc/serviceconfig":    true,
}

// TestBackendContractsImportNoKernelLibrary: each dataplane backend's
// contract package (Config, Status, errors, interface) imports no kernel
// library, x/sys/unix or gRPC at all; the implementations beside
// them (route/kernel, wgmesh/wgdevice, bpfmap/pinned, shm/segment) do.
func TestBackendContractsImportNoKernelLibrary(t *testing.T) {
	for _, pkg := range []string{"route", "wgmesh", "bpfmap", "shm"} {
		g := loadImports(t, "github.com/guildhouse-co/kedge/dataplane/"+pkg)
		bad := prefixed(append(slices.Clone(kernelLibs), "golang.org/x/sys/unix", "google.golang.org/grpc",
			"github.com/guildhouse-co/kedge/dataplane/"+pkg+"/internal")...)
		if chain := g.path(bad, nil); chain != nil {
			t.Errorf("dataplane/%s links %s: %s", pkg, chain[len(chain)-1], strings.Join(chain, " -> "))
		}
	}
}

// TestLayeringCheckFails shows the dependency check failing where it
// must: the route implementation does link netlink.
func TestLayeringCheckFails(t *testing.T) {
	g := loadImports(t, "github.com/guildhouse-co/kedge/dataplane/route/kernel")
	chain := g.path(prefixed(kernelLibs...), nil)
	if len(chain) < 2 || chain[0] != "github.com/guildhouse-co/kedge/dataplane/route/kernel" {
		t.Fatalf("the check does not see route/kernel link netlink: %v", chain)
	}
}
