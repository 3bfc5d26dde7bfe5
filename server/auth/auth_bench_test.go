package auth

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkPasswordCheck compares a full argon2id verification (first
// login, or after the users file changed) with a cached check (every
// later RPC of the same user), which is what keeps a Set storm with
// username/password metadata from paying argon2 per RPC.
func BenchmarkPasswordCheck(b *testing.B) {
	p := filepath.Join(b.TempDir(), "users.yaml")
	uf := &UsersFile{}
	if err := uf.Put("alice", Operator, "alice-password"); err != nil {
		b.Fatal(err)
	}
	if err := uf.Save(p); err != nil {
		b.Fatal(err)
	}
	pws, err := NewPasswords(p, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	const coldN, warmN = 20, 20000
	for b.Loop() {
		cold := make([]time.Duration, 0, coldN)
		for range coldN {
			pws.mu.Lock()
			clear(pws.cache)
			pws.mu.Unlock()
			t0 := time.Now()
			if _, err := pws.Check("127.0.0.1", "alice", "alice-password"); err != nil {
				b.Fatal(err)
			}
			cold = append(cold, time.Since(t0))
		}
		warm := make([]time.Duration, 0, warmN)
		for range warmN {
			t0 := time.Now()
			if _, err := pws.Check("127.0.0.1", "alice", "alice-password"); err != nil {
				b.Fatal(err)
			}
			warm = append(warm, time.Since(t0))
		}
		slices.Sort(cold)
		slices.Sort(warm)
		b.ReportMetric(float64(pct(cold, 50).Microseconds()), "argon2-p50-µs")
		b.ReportMetric(float64(pct(cold, 99).Microseconds()), "argon2-p99-µs")
		b.ReportMetric(float64(pct(warm, 50).Nanoseconds()), "cached-p50-ns")
		b.ReportMetric(float64(pct(warm, 99).Nanoseconds()), "cached-p99-ns")
		b.ReportMetric(float64(pct(cold, 50))/float64(pct(warm, 50)), "argon2/cached")
	}
}

func pct(s []time.Duration, p int) time.Duration { return s[(len(s)-1)*p/100] }
