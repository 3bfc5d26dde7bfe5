package demo

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/guildhouse-co/kedge/server/hostlock"
)

func TestPlan(t *testing.T) {
	a, b := Plan("/srv/a/var", "ns", true), Plan("/srv/b/var", "ns", true)
	if bpffsMounted() {
		if a.PinDir == b.PinDir || !strings.HasPrefix(a.PinDir, "/sys/fs/bpf/kedge-demo-") || a.PinDir != Plan("/srv/a/var", "x", true).PinDir {
			t.Errorf("pin dirs %s and %s: want one per data dir, under /sys/fs/bpf", a.PinDir, b.PinDir)
		}
	} else if a.PinDir != "off" {
		t.Errorf("pin dir %s without bpffs at /sys/fs/bpf", a.PinDir)
	}
	if a.NetNS != "ns" || a.ShmPath != "/srv/a/var/"+SegmentFile || a.Socket != "/srv/a/var/"+SocketFile {
		t.Errorf("root plan %+v", a)
	}
	if n := Plan("/srv/a/var", "ns", false); n.NetNS != "" || n.PinDir != "off" || n.ShmPath != a.ShmPath {
		t.Errorf("non-root plan %+v: want no namespace, no pins, the segment in the data dir", n)
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := Load(dir); ok || err != nil {
		t.Fatalf("Load without a manifest: %v %v", ok, err)
	}
	in := Instance{DataDir: dir, NetNS: "n", NetNSCreated: true, PinDir: "/sys/fs/bpf/x", ShmPath: "/s", Socket: "/k"}
	if err := in.Save(); err != nil {
		t.Fatal(err)
	}
	got, ok, err := Load(dir)
	if !ok || err != nil || got != in {
		t.Fatalf("Load = %+v %v %v, want %+v", got, ok, err, in)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), ManifestFile) {
		t.Errorf("a damaged manifest: %v", err)
	}
}

// TestCleanWaitsForTheNode: while a daemon holds the data dir, Clean
// removes nothing and names it; once it is gone, Clean removes the
// segment, the socket, the lock files it left and the manifest, and
// nothing else.
func TestCleanWaitsForTheNode(t *testing.T) {
	dir := t.TempDir()
	in := Plan(dir, "", false)
	if err := in.Save(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{in.ShmPath, in.Socket, filepath.Join(dir, "users.yaml")} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	node, err := hostlock.DataDir(dir, hostlock.Holder{PID: os.Getpid(), DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var reports []string
	err = Clean(in, func(s string) { reports = append(reports, s) })
	if !errors.Is(err, hostlock.ErrHeld) || !strings.Contains(err.Error(), "nothing removed") || len(reports) != 0 {
		t.Fatalf("Clean while held: %v, reported %v", err, reports)
	}
	if _, err := os.Stat(in.ShmPath); err != nil {
		t.Fatalf("Clean while held removed the segment: %v", err)
	}
	// A killed node leaves its socket's lock file, unlocked.
	if err := os.WriteFile(in.Socket+".lock", []byte(`{"pid":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	node.Close()
	if err := Clean(in, func(s string) { reports = append(reports, s) }); err != nil {
		t.Fatal(err)
	}
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"users.yaml"}) {
		t.Errorf("left %v, want only users.yaml; reported %v", left, reports)
	}
	if len(reports) != 4 {
		t.Errorf("reported %q, want the segment, the socket, its lock file and the manifest", reports)
	}
}
