package gcpolicy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(kv ...string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1], true
			}
		}
		return "", false
	}
}

func cgroupOf(n int64, file string) func() (int64, string, error) {
	return func() (int64, string, error) { return n, file, nil }
}

func TestResolve(t *testing.T) {
	const gi = 1 << 30
	for _, tc := range []struct {
		name    string
		percent int
		limit   string
		src     Sources
		want    Policy
	}{
		{"defaults in a cgroup", 200, "auto", Sources{env(), cgroupOf(gi, "/c/memory.max")},
			Policy{200, "gc-percent", gi * 9 / 10, "/c/memory.max"}},
		{"no cgroup limit", 200, "auto", Sources{env(), cgroupOf(0, "")},
			Policy{200, "gc-percent", 0, "no cgroup limit"}},
		{"limit off", 150, "off", Sources{env(), cgroupOf(gi, "/c/memory.max")},
			Policy{150, "gc-percent", 0, "memory-limit"}},
		{"limit given", 200, "512Mi", Sources{env(), cgroupOf(gi, "/c/memory.max")},
			Policy{200, "gc-percent", 512 << 20, "memory-limit"}},
		{"environment wins", 200, "512Mi", Sources{env("GOGC", "50", "GOMEMLIMIT", "2GiB"), cgroupOf(gi, "/c/memory.max")},
			Policy{50, "GOGC", 2 * gi, "GOMEMLIMIT"}},
		{"GOGC off with a cgroup limit", 200, "auto", Sources{env("GOGC", "off"), cgroupOf(gi, "/c/memory.max")},
			Policy{-1, "GOGC", gi * 9 / 10, "/c/memory.max"}},
		{"empty environment values are unset", 200, "auto", Sources{env("GOGC", "", "GOMEMLIMIT", ""), cgroupOf(0, "")},
			Policy{200, "gc-percent", 0, "no cgroup limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.percent, tc.limit, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestResolveRefuses(t *testing.T) {
	broken := func() (int64, string, error) { return 0, "", errors.New("read mounts: permission denied") }
	for _, tc := range []struct {
		name    string
		percent int
		limit   string
		src     Sources
		want    string
	}{
		{"bad GOGC", 200, "auto", Sources{env("GOGC", "lots"), cgroupOf(0, "")}, `read GOGC "lots": want a whole number or off`},
		{"bad GOMEMLIMIT", 200, "auto", Sources{env("GOMEMLIMIT", "1 GiB"), cgroupOf(0, "")}, `read GOMEMLIMIT: memory size "1 GiB"`},
		{"bad memory-limit", 200, "lots", Sources{env(), cgroupOf(0, "")}, `read --memory-limit: memory size "lots"`},
		{"collector off without a limit", -1, "auto", Sources{env(), cgroupOf(0, "")}, "a negative gc-percent (from gc-percent) turns the collector off and needs a memory limit"},
		{"GOGC off without a limit", 200, "off", Sources{env("GOGC", "off"), cgroupOf(0, "")}, "a negative gc-percent (from GOGC)"},
		{"cgroup unreadable", 200, "auto", Sources{env(), broken}, "read cgroup memory limit: read mounts: permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(tc.percent, tc.limit, tc.src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]int64{
		"1073741824": 1 << 30, "900Mi": 900 << 20, "1GiB": 1 << 30, "2Gi": 2 << 30, "512M": 512e6,
		"1G": 1e9, "64MB": 64e6, "32768KiB": 32 << 20, "20000k": 20e6, "1Ti": 1 << 40,
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Mi", "-1Gi", "0", "1.5Gi", "1 Gi", "1gi", "8Mi", "12345", "99999999999Ti", "0x10000000"} {
		if n, err := ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q) = %d, want an error", in, n)
		}
	}
}

// fakeRoot lays out files under a temporary directory standing in for /.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	v2Mount     = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
	hybridMount = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
		"32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n" +
		"41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
)

func TestCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    map[string]string
		want     int64
		wantFrom string
	}{
		{"v2, the pod's limit below the container's", map[string]string{
			"proc/self/mountinfo":                        v2Mount,
			"proc/self/cgroup":                           "0::/kubepods/pod1/ctr\n",
			"sys/fs/cgroup/kubepods/pod1/ctr/memory.max": "max\n",
			"sys/fs/cgroup/kubepods/pod1/memory.max":     "1073741824\n",
			"sys/fs/cgroup/kubepods/memory.max":          "8589934592\n",
		}, 1 << 30, "/sys/fs/cgroup/kubepods/pod1/memory.max"},
		{"v2, no limit anywhere", map[string]string{
			"proc/self/mountinfo": v2Mount,
			"proc/self/cgroup":    "0::/system.slice/kedge.service\n",
			"sys/fs/cgroup/system.slice/kedge.service/memory.max": "max\n",
		}, 0, ""},
		{"v2 in a cgroup namespace", map[string]string{
			"proc/self/mountinfo":      "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":         "0::/\n",
			"sys/fs/cgroup/memory.max": "536870912\n",
		}, 512 << 20, "/sys/fs/cgroup/memory.max"},
		{"v2 mount of a subtree", map[string]string{
			"proc/self/mountinfo":          "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":             "0::/kubepods/pod1/ctr\n",
			"sys/fs/cgroup/ctr/memory.max": "268435456\n",
		}, 256 << 20, "/sys/fs/cgroup/ctr/memory.max"},
		{"cgroup outside the mount's subtree", map[string]string{
			"proc/self/mountinfo":      "30 23 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
			"proc/self/cgroup":         "0::/kubepods/pod10/ctr\n",
			"sys/fs/cgroup/memory.max": "268435456\n",
		}, 0, ""},
		{"hybrid, v1 memory limited", map[string]string{
			"proc/self/mountinfo": hybridMount,
			"proc/self/cgroup":    "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n",
			"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "2147483648\n",
			"sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":     "9223372036854771712\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                 "9223372036854771712\n",
		}, 2 << 30, "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes"},
		{"hybrid, v1 unlimited", map[string]string{
			"proc/self/mountinfo": hybridMount,
			"proc/self/cgroup":    "4:memory:/process_api/abc\n0::/\n",
			"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0, ""},
		{"v1 memory beside another controller, mount point with a space", map[string]string{
			"proc/self/mountinfo":           "35 31 0:32 / /cg\\040v1 rw - cgroup cgroup rw,cpuacct,memory\n",
			"proc/self/cgroup":              "4:cpuacct,memory:/a\n",
			"cg v1/a/memory.limit_in_bytes": "1073741824\n",
		}, 1 << 30, "/cg v1/a/memory.limit_in_bytes"},
		{"no cgroup mounts", map[string]string{
			"proc/self/mountinfo": "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
			"proc/self/cgroup":    "0::/\n",
		}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, from, err := cgroupLimit(fakeRoot(t, tc.files))
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want || from != tc.wantFrom {
				t.Fatalf("got %d from %q, want %d from %q", n, from, tc.want, tc.wantFrom)
			}
		})
	}
}

func TestCgroupLimitRefusesGarbage(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"proc/self/mountinfo":        v2Mount,
		"proc/self/cgroup":           "0::/a\n",
		"sys/fs/cgroup/a/memory.max": "lots\n",
	})
	_, _, err := cgroupLimit(root)
	if err == nil || !strings.Contains(err.Error(), `"lots" is not a number of bytes`) {
		t.Fatalf("got %v, want the file's garbage named", err)
	}
	if _, _, err := cgroupLimit(t.TempDir()); err == nil || !strings.Contains(err.Error(), "read mounts") {
		t.Fatalf("got %v, want read mounts to fail", err)
	}
}
