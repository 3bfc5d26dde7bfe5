package mountinfo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/tests/needs"
)

func TestRead(t *testing.T) {
	f := filepath.Join(t.TempDir(), "mountinfo")
	table := "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n" +
		"35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n" +
		"41 31 0:38 /kubepods/pod1 /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n" +
		"50 22 0:40 / /mnt/with\\040space rw master:2 - tmpfs my\\040fs rw\n" +
		"not a mount line\n" +
		"51 22 0:41 / /short rw -\n"
	if err := os.WriteFile(f, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Dev: "253:0", Root: "/", Point: "/", FSType: "ext4", Source: "/dev/vda", Super: "rw,discard"},
		{Dev: "0:32", Root: "/", Point: "/sys/fs/cgroup/memory", FSType: "cgroup", Source: "cgroup", Super: "rw,memory"},
		{Dev: "0:38", Root: "/kubepods/pod1", Point: "/sys/fs/cgroup/unified", FSType: "cgroup2", Source: "cgroup2", Super: "rw"},
		{Dev: "0:40", Root: "/", Point: "/mnt/with space", FSType: "tmpfs", Source: "my fs", Super: "rw"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("mounts (-want +got):\n%s", d)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Fatal("read a missing file")
	}
}

// The table of this process: its root is mounted.
func TestReadSelf(t *testing.T) {
	ms, err := Read(Self)
	if err != nil {
		needs.Unavailable(t, "no %s here: %v", Self, err)
	}
	for _, m := range ms {
		if m.Point == "/" {
			return
		}
	}
	t.Fatalf("no mount at / among %d", len(ms))
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/cgroup/unified`: "/sys/fs/cgroup/unified",
		`/mnt/with\040space`:     "/mnt/with space",
		`/tab\011and\134slash`:   "/tab\tand\\slash",
		`/end\040`:               "/end ",
		`/odd\09`:                `/odd\09`,
		`/short\04`:              `/short\04`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
