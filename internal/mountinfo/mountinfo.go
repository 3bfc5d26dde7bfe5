// Package mountinfo reads the kernel's table of this process's mounts,
// /proc/self/mountinfo (proc(5)): which filesystem each mount point
// shows, from which device and from where inside it, and undoes the octal
// escapes that table and /proc/mounts write for spaces and the like.
package mountinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Self is this process's mount table.
const Self = "/proc/self/mountinfo"

// Mount is one line of the table.
type Mount struct {
	Dev    string // major:minor of the filesystem
	Root   string // the directory of the filesystem the mount shows at its top
	Point  string // the mount point
	FSType string
	Source string
	Super  string // the filesystem's own options (cgroup v1: its controllers)
}

// Read reads a mountinfo file; a line it cannot read is skipped.
func Read(file string) ([]Mount, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read mounts: %w", err)
	}
	var ms []Mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, z := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(z) < 2 {
			continue
		}
		m := Mount{Dev: a[2], Root: Unescape(a[3]), Point: Unescape(a[4]), FSType: z[0], Source: Unescape(z[1])}
		if len(z) > 2 {
			m.Super = z[2]
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// Unescape undoes the octal escapes (\040 for a space, \011, \012, \134)
// of a path in the mount tables.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
