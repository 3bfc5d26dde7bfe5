// Package demo is what `make run` (kedge-daemon demo) needs to be safe to
// try on any machine: a node whose every trace is either inside a network
// namespace of its own or under its data dir, and the cleanup that
// removes them all (kedge-daemon demo-clean, make clean-run).
//
// As root the node acts in its own namespace (created if missing, with lo
// up and a veth eth0 holding 192.0.2.2/24, so example routes via
// 192.0.2.1 install), pins its BPF maps in a per-instance directory of
// /sys/fs/bpf (named from a hash of the data dir; never mounting bpffs),
// and keeps its VPP segment and unix socket under the data dir. As any
// other user it uses no namespace and changes no kernel state. What it
// created is recorded in the data dir's demo.json, so the cleanup removes
// exactly that, and only once no daemon holds it.
package demo

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/guildhouse-co/kedge/server/config"
)

// Files under the data dir.
const (
	// ManifestFile records what the demo created (Instance).
	ManifestFile = "demo.json"
	// SegmentFile is the demo's VPP governance segment.
	SegmentFile = "vpp-governance.shm"
	// SocketFile is the demo's unix socket.
	SocketFile = "kedge.sock"
)

// DefaultNetNS is the demo's namespace unless told otherwise.
const DefaultNetNS = "kedge-demo"

// bpffsRoot is where the per-instance pin dir goes (never mounted here).
const bpffsRoot = "/sys/fs/bpf"

// Instance is one demo node's paths, and what the demo created.
type Instance struct {
	DataDir string `json:"data_dir"`
	// NetNS is the namespace the node acts in ("" as non-root: none).
	NetNS string `json:"netns,omitempty"`
	// NetNSCreated says the demo created NetNS (so cleanup deletes it; a
	// namespace that was there before is left alone).
	NetNSCreated bool `json:"netns_created,omitempty"`
	// PinDir is the BPF pin dir ("off" without bpffs or root).
	PinDir  string `json:"pin_dir"`
	ShmPath string `json:"shm_path"`
	Socket  string `json:"socket"`
}

// Plan returns the instance for an absolute data dir: as root (root true)
// in namespace netns with a per-instance pin dir when bpffs is mounted at
// /sys/fs/bpf; otherwise without either.
func Plan(dataDir, netns string, root bool) Instance {
	in := Instance{DataDir: dataDir, PinDir: "off",
		ShmPath: filepath.Join(dataDir, SegmentFile), Socket: filepath.Join(dataDir, SocketFile)}
	if !root {
		return in
	}
	in.NetNS = netns
	if bpffsMounted() {
		sum := sha256.Sum256([]byte(dataDir))
		in.PinDir = filepath.Join(bpffsRoot, "kedge-demo-"+hex.EncodeToString(sum[:4]))
	}
	return in
}

// bpffsMounted reports whether a bpffs is mounted at /sys/fs/bpf: the
// demo pins there only then, rather than mount one on the host.
func bpffsMounted() bool {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) >= 3 && fs[1] == bpffsRoot && fs[2] == "bpf" {
			return true
		}
	}
	return false
}

// Apply sets c's dataplane paths to the instance's.
func (in Instance) Apply(c *config.Config) {
	c.DataDir, c.NetNS, c.BPFPinDir, c.ShmPath, c.Socket = in.DataDir, in.NetNS, in.PinDir, in.ShmPath, in.Socket
}

// Load reads the data dir's manifest (ok false when there is none).
func Load(dataDir string) (in Instance, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return Instance{}, false, nil
	}
	if err != nil {
		return Instance{}, false, fmt.Errorf("read demo manifest: %w", err)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return Instance{}, false, fmt.Errorf("read demo manifest %s: %w", filepath.Join(dataDir, ManifestFile), err)
	}
	return in, true, nil
}

// Save writes the manifest, before the demo creates anything, so a
// killed demo still leaves the cleanup its list.
func (in Instance) Save() error {
	b, err := json.MarshalIndent(in, "", "  ")
	if err != nil {
		return fmt.Errorf("encode demo manifest: %w", err)
	}
	if err := os.MkdirAll(in.DataDir, 0o711); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	tmp := filepath.Join(in.DataDir, ManifestFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write demo manifest: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(in.DataDir, ManifestFile)); err != nil {
		return fmt.Errorf("write demo manifest: %w", err)
	}
	return nil
}

// Guide is what the demo prints once the node is up: where to look at
// what it programmed and how to remove it. listen is the gNMI address.
func (in Instance) Guide(listen string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	if in.NetNS == "" {
		p("Kedge demo node is up, not as root: no network namespace and no kernel state (routes, the BPF")
		p("map and the mesh need root; the start log says which backends this machine allows and why).")
	} else {
		how := "existing"
		if in.NetNSCreated {
			how = "created by the demo, with eth0 192.0.2.2/24 for routes via 192.0.2.1"
		}
		p("Kedge demo node is up in its own network namespace %s (%s).", in.NetNS, how)
		p("Nothing it programs leaves that namespace, %s and the data dir.", orNone(in.PinDir))
		p("  its routes:      ip -n %s route show proto 107", in.NetNS)
		p("                   ip -n %s route show table all proto 107", in.NetNS)
		p("  its links:       ip -n %s link", in.NetNS)
		if in.PinDir != "off" {
			p("  BPF pins:        ls %s   (bpftool map dump pinned %s/posture_level)", in.PinDir, in.PinDir)
		}
	}
	p("  VPP segment:     %s", in.ShmPath)
	p("  unix socket:     %s", in.Socket)
	if listen != "" {
		p("  gNMI:            %s (user master, password in %s)", listen, filepath.Join(in.DataDir, "master.password"))
	}
	p("Stop it with Ctrl-C, then `make clean-run` (kedge-daemon demo-clean --data-dir %s) removes", in.DataDir)
	p("what it left: %s. The tree stays in the data dir (remove it for a fresh start).", in.leftovers())
	return b.String()
}

func orNone(pinDir string) string {
	if pinDir == "off" {
		return "the host's BPF pins (none: no bpffs at /sys/fs/bpf)"
	}
	return "its pin dir " + pinDir
}

// leftovers names what the cleanup removes.
func (in Instance) leftovers() string {
	var parts []string
	if in.NetNSCreated {
		parts = append(parts, "the namespace")
	}
	if in.PinDir != "off" {
		parts = append(parts, "the pins")
	}
	parts = append(parts, "the segment, the socket and the lock files")
	return strings.Join(parts, ", ")
}
