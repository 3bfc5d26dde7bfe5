// Package gcpolicy sets the daemon's garbage-collector policy: how much
// garbage the heap may grow by between cycles (gc-percent, Go's GOGC) and
// the soft memory limit the collector steers under (memory-limit, Go's
// GOMEMLIMIT), from the configuration, the environment and the memory
// limit of the cgroup the daemon runs in.
//
// Why the daemon picks its own: a bulk load (100,000 routes in one Set or
// through gRIBI) allocates several hundred megabytes on its way to the
// kernel, and with Go's default of 100 the collector took about a quarter
// of the CPU of that load on a two-core node (BENCHMARKS.md, "Collector
// policy"). A higher percent trades peak heap for that CPU; the memory
// limit, taken from the cgroup where there is one, is what keeps the
// trade safe: near the limit the collector works harder instead of the
// kernel killing the daemon.
package gcpolicy

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultPercent is gc-percent's default: the heap may grow by twice its
// live size between cycles (Go's default is once).
const DefaultPercent = 200

// limitShare is the part of the cgroup's limit given to the Go runtime:
// the rest is for what the runtime does not count (memory mapped by the
// dataplane backends, the kernel's socket buffers charged to the cgroup)
// and for the time the collector needs to react.
const limitShare = 0.9

// Policy is the collector's policy and where each half came from.
type Policy struct {
	// Percent is GOGC: a negative value turns the collector off until
	// the memory limit is near.
	Percent     int
	PercentFrom string
	// Limit is the soft memory limit in bytes; 0 is none.
	Limit     int64
	LimitFrom string
}

// Sources are what Resolve reads besides the configuration; tests inject
// them.
type Sources struct {
	// Env looks up an environment variable.
	Env func(string) (string, bool)
	// Cgroup returns the memory limit of the cgroup the process runs in
	// and the file it came from; 0 when there is none.
	Cgroup func() (int64, string, error)
}

// Resolve decides the policy from the configuration's gc-percent and
// memory-limit ("auto", "off" or a size, see ParseLimit). GOGC and
// GOMEMLIMIT in the environment win over the configuration: the Go
// runtime has already applied them, and an operator who sets them means
// them.
func Resolve(percent int, limit string, src Sources) (Policy, error) {
	p := Policy{Percent: percent, PercentFrom: "gc-percent"}
	if v, ok := src.Env("GOGC"); ok && v != "" {
		n, err := parseGOGC(v)
		if err != nil {
			return Policy{}, err
		}
		p.Percent, p.PercentFrom = n, "GOGC"
	}
	if v, ok := src.Env("GOMEMLIMIT"); ok && v != "" {
		n, err := ParseLimit(v)
		if err != nil {
			return Policy{}, fmt.Errorf("read GOMEMLIMIT: %w", err)
		}
		p.Limit, p.LimitFrom = n, "GOMEMLIMIT"
		return p, nil
	}
	switch limit {
	case "off":
		p.LimitFrom = "memory-limit"
	case "auto", "":
		n, file, err := src.Cgroup()
		if err != nil {
			return Policy{}, fmt.Errorf("read cgroup memory limit: %w", err)
		}
		if n > 0 {
			p.Limit, p.LimitFrom = int64(float64(n)*limitShare), file
		} else {
			p.LimitFrom = "no cgroup limit"
		}
	default:
		n, err := ParseLimit(limit)
		if err != nil {
			return Policy{}, fmt.Errorf("read --memory-limit: %w", err)
		}
		p.Limit, p.LimitFrom = n, "memory-limit"
	}
	if p.Percent < 0 && p.Limit == 0 {
		return Policy{}, fmt.Errorf("resolve collector policy: a negative gc-percent (from %s) turns the collector off and needs a memory limit, which there is none of (%s)", p.PercentFrom, p.LimitFrom)
	}
	return p, nil
}

// parseGOGC reads GOGC as the runtime does: a number or "off".
func parseGOGC(v string) (int, error) {
	if v == "off" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("read GOGC %q: want a whole number or off", v)
	}
	return n, nil
}

// Apply sets the policy on the runtime.
func (p Policy) Apply() {
	debug.SetGCPercent(p.Percent)
	if p.Limit > 0 {
		debug.SetMemoryLimit(p.Limit)
	} else {
		debug.SetMemoryLimit(math.MaxInt64)
	}
}

// sizeUnits are the suffixes ParseLimit takes: Kubernetes' quantities
// (Ki, Mi, k, M ...) and GOMEMLIMIT's (KiB, MiB ...).
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseLimit reads a memory size: a whole number of bytes with an
// optional unit (900Mi, 1GiB, 512M, 1073741824). Sizes under 16 MiB are
// refused: the daemon does not start in less, and a limit that small
// would keep the collector running all the time.
func ParseLimit(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("memory size %q: want a positive whole number with an optional unit (Ki, Mi, Gi, KiB, MiB, GiB, k, M, G)", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory size %q: too large", s)
	}
	if n*mult < 16<<20 {
		return 0, fmt.Errorf("memory size %q: under the 16 MiB the daemon needs", s)
	}
	return n * mult, nil
}
