package notary

import (
	"fmt"
	"testing"

	"github.com/guildhouse-co/kedge/models/accord"
)

// The seed's notarization table, row by row: sampling share of session
// transits, flush mode, payload hashing, frame headers in session
// metadata. Mutations are recorded at every level (nothing samples them).
func TestFidelityFollowsTheSeedTable(t *testing.T) {
	want := map[uint8]Fidelity{
		5: {Level: 5, SamplingPercent: 10, Flush: accord.FlushBatched},
		4: {Level: 4, SamplingPercent: 50, Flush: accord.FlushBatched},
		3: {Level: 3, SamplingPercent: 100, Flush: accord.FlushBatched},
		2: {Level: 2, SamplingPercent: 100, Flush: accord.FlushImmediate},
		1: {Level: 1, SamplingPercent: 100, Flush: accord.FlushEveryRecord, PayloadHashing: true, FrameHeaders: true},
	}
	for lvl := accord.MinLevel; lvl <= accord.MaxLevel; lvl++ {
		a, err := accord.Default(lvl)
		if err != nil {
			t.Fatal(err)
		}
		if got := FidelityOf(a, nil); got != want[lvl] {
			t.Errorf("level %d: fidelity %+v, want %+v", lvl, got, want[lvl])
		}
	}
}

func TestFidelityOverrideAndUnknownFlush(t *testing.T) {
	a, _ := accord.Default(5)
	o := uint8(30)
	if got := FidelityOf(a, &o).SamplingPercent; got != 30 {
		t.Errorf("override 30: sampling %d", got)
	}
	o = 250
	if got := FidelityOf(a, &o).SamplingPercent; got != 100 {
		t.Errorf("override 250: sampling %d, want 100", got)
	}
	a.NotaryFlush = "sometimes"
	if got := FidelityOf(a, nil).Flush; got != accord.FlushEveryRecord {
		t.Errorf("unknown flush mode became %q, want the strictest (every-record)", got)
	}
}

// Sampling is by session id: the same answer every time, monotone in the
// share (a session sampled at 10% is sampled at 50%), and the share of
// sampled ids close to the percentage.
func TestSamplingIsDeterministicMonotoneAndProportional(t *testing.T) {
	const n = 20000
	counts := map[uint8]int{}
	shares := []uint8{0, 10, 50, 100}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("session-%d", i)
		prev := false
		for _, p := range shares {
			s := Sampled(id, p)
			if s != Sampled(id, p) {
				t.Fatalf("%s at %d%%: two answers", id, p)
			}
			if prev && !s {
				t.Fatalf("%s sampled at a lower share but not at %d%%", id, p)
			}
			prev = s
			if s {
				counts[p]++
			}
		}
	}
	if counts[0] != 0 || counts[100] != n {
		t.Errorf("0%% sampled %d, 100%% sampled %d of %d", counts[0], counts[100], n)
	}
	for _, p := range []uint8{10, 50} {
		got := float64(counts[p]) / n * 100
		if got < float64(p)-1.5 || got > float64(p)+1.5 {
			t.Errorf("%d%%: sampled %.2f%% of %d ids", p, got, n)
		}
	}
}
