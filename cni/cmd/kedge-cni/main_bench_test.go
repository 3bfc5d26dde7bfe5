package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkBinary builds the plugin and reports its size and how long
// VERSION takes (process start to exit, the floor under every CNI call),
// p50 and p99 over 50 runs. A runtime's budget for a CNI call is seconds;
// these catch a heavy dependency creeping in. The size, which noise does
// not move, is also held under 24 MB.
func BenchmarkBinary(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "kedge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	st, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	const maxSize = 24 << 20
	if st.Size() > maxSize {
		b.Errorf("kedge-cni is %d bytes, over %d", st.Size(), maxSize)
	}
	var runs []time.Duration
	b.ResetTimer()
	for range b.N {
		for range 50 {
			cmd := exec.Command(bin)
			cmd.Env = []string{"CNI_COMMAND=VERSION"}
			cmd.Stdin = strings.NewReader(`{"cniVersion":"1.1.0"}`)
			start := time.Now()
			out, err := cmd.Output()
			runs = append(runs, time.Since(start))
			if err != nil || !strings.Contains(string(out), "1.1.0") {
				b.Fatalf("VERSION: %v %s", err, out)
			}
		}
	}
	slices.Sort(runs)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(st.Size())/(1<<20), "MB")
	b.ReportMetric(ms(runs[len(runs)/2]), "version-p50-ms")
	b.ReportMetric(ms(runs[len(runs)*99/100]), "version-p99-ms")
}
