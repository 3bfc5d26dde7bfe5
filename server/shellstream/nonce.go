package shellstream

import (
	"sync"
	"time"
)

// nonceLog remembers ATTEST-INIT nonces for a window so a replayed one is
// refused. It is bounded: past max entries the oldest are forgotten early.
// The proof of possession covers the server's fresh challenge, so a
// replayed handshake fails there anyway; this refuses it one step sooner
// and says why.
type nonceLog struct {
	window time.Duration
	max    int

	mu    sync.Mutex
	seen  map[string]time.Time
	order []nonceEntry // in insertion (and so expiry) order
}

type nonceEntry struct {
	nonce string
	at    time.Time
}

func newNonceLog(window time.Duration, max int) *nonceLog {
	return &nonceLog{window: window, max: max, seen: map[string]time.Time{}}
}

// remember records nonce at now; it reports false when the nonce was seen
// within the window.
func (l *nonceLog) remember(nonce []byte, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := 0
	for ; i < len(l.order) && (now.Sub(l.order[i].at) >= l.window || len(l.order)-i >= l.max); i++ {
		if l.seen[l.order[i].nonce].Equal(l.order[i].at) {
			delete(l.seen, l.order[i].nonce)
		}
	}
	if i > 0 {
		l.order = append(l.order[:0], l.order[i:]...)
	}
	k := string(nonce)
	if at, ok := l.seen[k]; ok && now.Sub(at) < l.window {
		return false
	}
	l.seen[k] = now
	l.order = append(l.order, nonceEntry{nonce: k, at: now})
	return true
}
