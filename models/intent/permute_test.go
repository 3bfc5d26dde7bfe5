package intent

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestPermute(t *testing.T) {
	for n := range 50 {
		order := make([]int32, n)
		for i := range order {
			order[i] = int32(i)
		}
		rand.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
		want := make([]int, n)
		for i, o := range order {
			want[i] = int(o) * 10
		}
		got := make([]int, n)
		for i := range got {
			got[i] = i * 10
		}
		permute(slices.Clone(order), func(i, j int) { got[i], got[j] = got[j], got[i] })
		if !slices.Equal(want, got) {
			t.Fatalf("order %v: got %v, want %v", order, got, want)
		}
	}
}
