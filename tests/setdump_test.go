package tests

// Env-gated instruments for the single-route benchmarks: where a slow
// Set falls against the collector's cycles, which only a dump of every
// Set (or an execution trace) shows; p99 alone does not.

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"testing"
	"time"
)

// processStart approximates the runtime's own start, so a dump's times
// line up with GODEBUG=gctrace=1's "@…s" within a few milliseconds.
var processStart = time.Now()

// setDump records every Set of setEach when KEDGE_BENCH_SETDUMP names a
// file (appended to, one line a Set: start since the process started,
// RPC and RPC-to-kernel times, collector cycles completed before and
// after; a Set in a cycle that ends after it shows none, so compare the
// start with gctrace's cycles).
type setDump struct {
	f      *os.File
	sample []metrics.Sample
}

func newSetDump(b *testing.B) *setDump {
	name := os.Getenv("KEDGE_BENCH_SETDUMP")
	if name == "" {
		return nil
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatalf("open set dump: %v", err)
	}
	b.Cleanup(func() { f.Close() })
	return &setDump{f: f, sample: []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}}
}

func (d *setDump) cycles() uint64 {
	metrics.Read(d.sample)
	return d.sample[0].Value.Uint64()
}

func (d *setDump) record(i int, t0 time.Time, rpc, lat time.Duration, gc0, gc1 uint64) {
	fmt.Fprintf(d.f, "%d start=%.1fms rpc=%dus after=%dus gc=%d->%d\n", i,
		float64(t0.Sub(processStart).Microseconds())/1000, rpc.Microseconds(), (lat - rpc).Microseconds(), gc0, gc1)
}

// startTrace starts an execution trace into the file named by
// KEDGE_BENCH_TRACE (with suffix) and returns its stop.
func startTrace(b *testing.B, suffix string) func() {
	name := os.Getenv("KEDGE_BENCH_TRACE")
	if name == "" {
		return func() {}
	}
	f, err := os.Create(name + suffix)
	if err != nil {
		b.Fatalf("create trace: %v", err)
	}
	// CPU samples land in the trace too, with their goroutine. The rate
	// asked for before StartCPUProfile stays (it prints that it cannot
	// set its own); the kernel's timer tick may give fewer.
	runtime.SetCPUProfileRate(2000)
	if err := pprof.StartCPUProfile(io.Discard); err != nil {
		b.Fatalf("start cpu profile: %v", err)
	}
	if err := trace.Start(f); err != nil {
		b.Fatalf("start trace: %v", err)
	}
	return func() {
		trace.Stop()
		pprof.StopCPUProfile()
		f.Close()
	}
}

// traceMark logs a step of Set i in the execution trace, when one runs,
// so a slow Set can be found in it.
func traceMark(step string, i int) {
	if trace.IsEnabled() {
		trace.Log(context.Background(), step, strconv.Itoa(i))
	}
}
