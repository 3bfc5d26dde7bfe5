package segment

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/guildhouse-co/kedge/dataplane/shm"
)

var defineRE = regexp.MustCompile(`^#define\s+(KEDGE_GOV_\w+)\s+(0x[0-9A-Fa-f]+|\d+)(u|ull)?\b`)

// TestHeaderDefines parses governance.h's numeric #defines and compares them
// with the Go constants. It needs no compiler, so it always runs.
func TestHeaderDefines(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "governance.h"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := defineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		v, err := strconv.ParseUint(m[2], 0, 64)
		if err != nil {
			t.Fatalf("parse %s: %v", m[0], err)
		}
		got[m[1]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"KEDGE_GOV_MAGIC":          uint64(shm.Magic),
		"KEDGE_GOV_LAYOUT_VERSION": uint64(shm.LayoutVersion),
		"KEDGE_GOV_HEADER_SIZE":    uint64(shm.HeaderSize),
		"KEDGE_GOV_SEGMENT_SIZE":   uint64(shm.SegmentSize),
		"KEDGE_GOV_LEVEL_UNSET":    uint64(shm.LevelUnset),
		"KEDGE_GOV_CHECK_MUL":      shm.CheckMul,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("governance.h #defines differ from the Go layout (-go +header):\n%s", diff)
	}
}

// cProgram prints the header's offsets, then maps the segment named by
// argv[1] and prints the snapshot kedge_gov_read takes: the plugin's view.
const cProgram = `#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "governance.h"

#define OFF(f) printf(#f "=%zu\n", offsetof(struct kedge_gov_segment, f))

int main(int argc, char **argv) {
	OFF(header.magic); OFF(header.layout_version); OFF(header.header_size);
	OFF(header.segment_size); OFF(header.writer_pid); OFF(state.sequence);
	OFF(state.posture_level); OFF(state.flags); OFF(state.timestamp_ns);
	OFF(state.check);
	printf("sizeof_state=%zu\nsizeof_segment=%zu\n", sizeof(struct kedge_gov_state), sizeof(struct kedge_gov_segment));
	printf("check_sample=%llu\n", (unsigned long long)kedge_gov_check(6, 3, 0xbeef, 1234567890123ull));
	if (argc < 2) return 0;
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) { perror("open"); return 2; }
	struct stat st;
	if (fstat(fd, &st) != 0) { perror("fstat"); return 2; }
	const struct kedge_gov_segment *seg = mmap(NULL, KEDGE_GOV_SEGMENT_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (seg == MAP_FAILED) { perror("mmap"); return 2; }
	printf("header_ok=%d\n", kedge_gov_header_ok(seg, (uint64_t)st.st_size));
	struct kedge_gov_snapshot snap = {0};
	int rc = kedge_gov_read(seg, &snap, 1000000);
	printf("read_rc=%d\nsequence=%llu\nlevel=%u\nflags=%u\ntimestamp_ns=%llu\n", rc,
	       (unsigned long long)snap.sequence, snap.posture_level, snap.flags,
	       (unsigned long long)snap.timestamp_ns);
	return 0;
}
`

// TestHeaderCompiled compiles a C reader against governance.h (whose static
// asserts must hold), checks its offsets against the Go constants, and has it
// read a segment the Go writer wrote.
func TestHeaderCompiled(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		if cc, err = exec.LookPath("cc"); err != nil {
			t.Skip("no C compiler (gcc or cc) on PATH; TestHeaderDefines still checks the #defines")
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "reader.c")
	bin := filepath.Join(dir, "reader")
	if err := os.WriteFile(src, []byte(cProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	wd = filepath.Dir(wd) // governance.h is beside the layout, in package shm
	if out, err := exec.Command(cc, "-std=c11", "-D_DEFAULT_SOURCE", "-Wall", "-Werror", "-O2", "-I", wd, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compile C reader against governance.h: %v\n%s", err, out)
	}

	seg := filepath.Join(dir, "kedge-governance")
	w, err := Open(seg, fixedClock(1234567890123))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, c := range []shm.Config{{Level: 5}, {Level: 4, Flags: 1}, {Level: 3, Flags: 0xbeef}} {
		if err := w.Set(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(bin, seg).Output()
	if err != nil {
		t.Fatalf("run C reader: %v", err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	itoa := func(n uint64) string { return strconv.FormatUint(n, 10) }
	want := map[string]string{
		"header.magic":          itoa(shm.OffMagic),
		"header.layout_version": itoa(shm.OffLayoutVersion),
		"header.header_size":    itoa(shm.OffHeaderSize),
		"header.segment_size":   itoa(shm.OffSegmentSize),
		"header.writer_pid":     itoa(shm.OffWriterPID),
		"state.sequence":        itoa(shm.OffSequence),
		"state.posture_level":   itoa(shm.OffLevel),
		"state.flags":           itoa(shm.OffFlags),
		"state.timestamp_ns":    itoa(shm.OffTimestampNs),
		"state.check":           itoa(shm.OffCheck),
		"sizeof_state":          itoa(shm.StateSize),
		"sizeof_segment":        itoa(uint64(shm.SegmentSize)),
		"check_sample":          itoa(shm.Check(6, 3, 0xbeef, 1234567890123)),
		"header_ok":             "1",
		"read_rc":               "0",
		"sequence":              "6",
		"level":                 "3",
		"flags":                 itoa(0xbeef),
		"timestamp_ns":          "1234567890123",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("C view of the layout differs from Go (-go +C):\n%s", diff)
	}
}
