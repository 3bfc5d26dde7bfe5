package shellstream

import (
	"fmt"
	"testing"
	"time"
)

func TestNonceLog(t *testing.T) {
	l := newNonceLog(time.Minute, 3)
	t0 := time.Now()
	n := func(i int) []byte { return []byte(fmt.Sprintf("nonce-%02d-xxxxxxxxxx", i)) }
	if !l.remember(n(1), t0) || l.remember(n(1), t0.Add(59*time.Second)) {
		t.Fatal("a nonce inside the window was not refused")
	}
	if !l.remember(n(1), t0.Add(61*time.Second)) {
		t.Fatal("a nonce past the window was refused")
	}
	// Bounded: past max entries the oldest are forgotten.
	for i := 2; i <= 5; i++ {
		l.remember(n(i), t0.Add(62*time.Second))
	}
	if len(l.seen) > 3 || len(l.order) > 3 {
		t.Errorf("log holds %d/%d entries, max 3", len(l.seen), len(l.order))
	}
	if l.remember(n(5), t0.Add(63*time.Second)) {
		t.Error("the newest nonce was forgotten")
	}
}
