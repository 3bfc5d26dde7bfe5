package probe

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if body == "<dir>" {
			os.MkdirAll(full, 0o777)
			continue
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func avail(r Report) map[Backend]bool {
	m := map[Backend]bool{}
	for _, r := range r.All() {
		m[r.Backend] = r.Available
		if r.Reason == "" {
			m[r.Backend+" has no reason"] = true
		}
	}
	return m
}

func TestRun(t *testing.T) {
	full := fakeRoot(t, map[string]string{
		"/dev/net/tun":                   "",
		"/sys/module/wireguard":          "<dir>",
		"/lib/modules/6.1.0/modules.dep": "kernel/net/8021q/8021q.ko: \n",
		"/proc/filesystems":              "nodev\tbpf\n",
		"/proc/mounts":                   "",
		"/dev/shm":                       "<dir>",
	})
	bare := fakeRoot(t, map[string]string{"/proc/filesystems": "nodev\tproc\n"})
	for _, tc := range []struct {
		name string
		env  Env
		want map[Backend]bool
	}{
		{"root, everything", Env{UID: 0, Root: full, Release: "6.1.0"},
			map[Backend]bool{Route: true, WGMesh: true, BPFMap: true, VLAN: true, Shm: true}},
		{"not root", Env{UID: 1000, Root: full, Release: "6.1.0"},
			map[Backend]bool{Route: false, WGMesh: false, BPFMap: false, VLAN: false, Shm: true}},
		{"root, bare machine", Env{UID: 0, Root: bare, Release: "6.1.0"},
			map[Backend]bool{Route: true, WGMesh: false, BPFMap: false, VLAN: false, Shm: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, avail(Run(tc.env))); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestRunHost(t *testing.T) {
	rs := Run(Host()).All()
	if len(rs) != 5 {
		t.Fatalf("got %d results: %+v", len(rs), rs)
	}
	for i, r := range rs {
		if r.Reason == "" {
			t.Errorf("%s: no reason", r.Backend)
		}
		if want := []Backend{Route, WGMesh, BPFMap, VLAN, Shm}[i]; r.Backend != want {
			t.Errorf("field %d holds %q's result, want %q's", i, r.Backend, want)
		}
	}
}
