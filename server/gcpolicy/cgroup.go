package gcpolicy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/guildhouse-co/kedge/internal/mountinfo"
)

// unlimitedV1 is where cgroup v1 says "no limit": the largest page
// multiple below 2^63 (9223372036854771712); anything from 2^62 up is
// taken as none.
const unlimitedV1 = int64(1) << 62

// CgroupLimit returns the memory limit of the cgroup this process runs in
// (the lowest of its cgroup's and its ancestors', under cgroup v2's
// memory.max and cgroup v1's memory.limit_in_bytes, whichever the
// machine mounts) and the file that set it; 0 when there is none.
func CgroupLimit() (int64, string, error) { return cgroupLimit("/") }

// cgroupLimit reads the process's cgroups under root (the file system's
// root; tests give a directory standing in for it).
func cgroupLimit(root string) (int64, string, error) {
	mounts, err := cgroupMounts(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return 0, "", err
	}
	groups, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, "", fmt.Errorf("read cgroup membership: %w", err)
	}
	var best int64
	var from string
	for line := range strings.Lines(string(groups)) {
		// hierarchy-id:controllers:path; v2 is "0::path".
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		var m *mount
		var file string
		switch {
		case f[0] == "0" && f[1] == "":
			m, file = mounts.v2, "memory.max"
		case hasController(f[1], "memory"):
			m, file = mounts.v1memory, "memory.limit_in_bytes"
		}
		if m == nil {
			continue
		}
		n, at, err := lowestLimit(root, m, f[2], file)
		if err != nil {
			return 0, "", err
		}
		if n > 0 && (best == 0 || n < best) {
			best, from = n, at
		}
	}
	return best, from, nil
}

func hasController(list, c string) bool {
	for x := range strings.SplitSeq(list, ",") {
		if x == c {
			return true
		}
	}
	return false
}

// mount is where a cgroup hierarchy is mounted and which of its cgroups
// the mount shows at its top (not "/" inside a cgroup namespace or a
// bind mount of a subtree).
type mount struct {
	root  string
	point string
}

type mounts struct {
	v2, v1memory *mount
}

// cgroupMounts finds the cgroup v2 mount and the v1 memory controller's
// in a mountinfo file.
func cgroupMounts(file string) (mounts, error) {
	all, err := mountinfo.Read(file)
	if err != nil {
		return mounts{}, err
	}
	var ms mounts
	for _, m := range all {
		switch {
		case m.FSType == "cgroup2" && ms.v2 == nil:
			ms.v2 = &mount{root: m.Root, point: m.Point}
		case m.FSType == "cgroup" && ms.v1memory == nil && hasController(m.Super, "memory"):
			ms.v1memory = &mount{root: m.Root, point: m.Point}
		}
	}
	return ms, nil
}

// lowestLimit reads file in the cgroup at path and in each ancestor the
// mount shows, returning the lowest limit and the file it came from.
func lowestLimit(root string, m *mount, cg, file string) (int64, string, error) {
	cg, top := path.Clean(cg), path.Clean(m.root)
	rel, ok := cg, true
	if top != "/" {
		rel, ok = strings.CutPrefix(cg, top)
		ok = ok && (rel == "" || rel[0] == '/')
	}
	if !ok {
		// The cgroup is outside what the mount shows (another
		// namespace's view): nothing to read.
		return 0, "", nil
	}
	var best int64
	var from string
	for dir := path.Clean("/" + rel); ; dir = path.Dir(dir) {
		at := path.Join(m.point, dir, file)
		n, err := readLimit(filepath.Join(root, at))
		if err != nil {
			return 0, "", err
		}
		if n > 0 && (best == 0 || n < best) {
			best, from = n, at
		}
		if dir == "/" {
			return best, from, nil
		}
	}
}

// readLimit reads a memory.max or memory.limit_in_bytes file; 0 is none
// ("max", a v1 "unlimited", or no such file at that level).
func readLimit(file string) (int64, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read memory limit: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read memory limit %s: %q is not a number of bytes", file, s)
	}
	if n >= unlimitedV1 {
		return 0, nil
	}
	return n, nil
}
