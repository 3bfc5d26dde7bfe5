// Package install puts kedge-cni on a node: it copies the plugin binary
// into the CNI bin dir and writes the kedge conflist, each atomically
// (temporary file in the same directory, fsync, rename), so a runtime
// scanning either directory never sees a half-written file. The daemon's
// DaemonSet init step calls Install (or runs "kedge-cni install").
package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Options say what to install where; zero fields take the defaults.
type Options struct {
	// Binary is the plugin to copy (default: the running executable).
	Binary string
	// BinDir is the CNI bin dir (default /opt/cni/bin).
	BinDir string
	// ConfDir is the CNI conf dir (default /etc/cni/net.d).
	ConfDir string
	// ConfName is the conflist's file name (default 10-kedge.conflist).
	ConfName string
	// Network is the network name (default "kedge").
	Network string
	// Socket is the daemon's socket written into the conf (empty: the
	// plugin's default, /run/kedge/kedge.sock).
	Socket string
	// Pools, when set, go into the conf's ipam.pools; otherwise the
	// plugin reads /kedge/pods/config/ipam-pools from the daemon.
	Pools []string
	// MTU of pod veths (0: kernel default).
	MTU int
}

func (o *Options) defaults() error {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		o.Binary = exe
	}
	if o.BinDir == "" {
		o.BinDir = "/opt/cni/bin"
	}
	if o.ConfDir == "" {
		o.ConfDir = "/etc/cni/net.d"
	}
	if o.ConfName == "" {
		o.ConfName = "10-kedge.conflist"
	}
	if o.Network == "" {
		o.Network = "kedge"
	}
	return nil
}

// Conflist renders the network configuration list Install writes.
func Conflist(o Options) ([]byte, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	ipam := map[string]any{"type": "kedge"}
	if len(o.Pools) > 0 {
		ipam["pools"] = o.Pools
	}
	p := map[string]any{"type": "kedge", "ipam": ipam}
	if o.Socket != "" {
		p["socket"] = o.Socket
	}
	if o.MTU > 0 {
		p["mtu"] = o.MTU
	}
	list := map[string]any{"cniVersion": "1.1.0", "name": o.Network, "plugins": []any{p}}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// Install copies the binary to BinDir/kedge and writes the conflist.
// The binary goes first, so a runtime that sees the conf finds the plugin.
func Install(o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	conf, err := Conflist(o)
	if err != nil {
		return err
	}
	src, err := os.Open(o.Binary)
	if err != nil {
		return fmt.Errorf("open plugin binary: %w", err)
	}
	defer src.Close()
	if err := writeAtomic(filepath.Join(o.BinDir, "kedge"), src, 0o755); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(o.ConfDir, o.ConfName), bytes.NewReader(conf), 0o644)
}

// writeAtomic writes r to path through a temporary file in the same
// directory and a rename, which replaces a running binary safely too
// (the old inode lives on for processes executing it).
func writeAtomic(path string, r io.Reader, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp file in %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, r); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Make the rename itself durable; failure here loses nothing
		// but durability, so it is not an error.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Main parses the "kedge-cni install" flags and runs Install.
func Main(args []string, stderr io.Writer) error {
	var o Options
	var pools multi
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.BinDir, "bin-dir", "/opt/cni/bin", "CNI bin dir")
	fs.StringVar(&o.ConfDir, "conf-dir", "/etc/cni/net.d", "CNI conf dir")
	fs.StringVar(&o.ConfName, "conf-name", "10-kedge.conflist", "conflist file name")
	fs.StringVar(&o.Network, "network", "kedge", "network name")
	fs.StringVar(&o.Socket, "socket", "", "daemon socket (default /run/kedge/kedge.sock)")
	fs.IntVar(&o.MTU, "mtu", 0, "pod veth MTU")
	fs.Var(&pools, "pool", "IPAM pool prefix (repeatable; default: the daemon's /kedge/pods/config/ipam-pools)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New("parse flags: unexpected arguments")
	}
	o.Pools = pools
	return Install(o)
}

type multi []string

func (m *multi) String() string     { return fmt.Sprint(*m) }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }
