package auth

import (
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rejectWindow is how often a run of rejected authentications is summed
// up in the log.
const rejectWindow = time.Minute

// rejectLog turns rejected authentications into few log lines: the first
// after a quiet spell is logged at once (one WARN with its reason, user
// and peer), the ones that follow within the window are only counted and
// summed up in one WARN when it ends, window after window while they go
// on. A guessing attack costs a line a minute, not a line a guess.
type rejectLog struct {
	log    *slog.Logger
	window time.Duration
	// after schedules fn once d has passed and returns a function that
	// cancels it (time.AfterFunc; tests run the window's end by hand).
	after func(d time.Duration, fn func()) (stop func() bool)

	mu      sync.Mutex
	stop    func() bool // cancels the scheduled end of the open window
	closed  bool
	open    bool // a window is running: rejections are counted
	total   int
	reasons map[string]int
	users   map[string]int
	peers   map[string]int
}

func newRejectLog(log *slog.Logger) *rejectLog {
	return &rejectLog{log: log, window: rejectWindow,
		after: func(d time.Duration, fn func()) func() bool { return time.AfterFunc(d, fn).Stop }}
}

// tally bounds the distinct users and peers a summary names: both come
// from the network, so an attacker chooses how many there are.
const tally = 8

// record notes one rejected authentication.
func (r *rejectLog) record(reason, user, peer, method string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.open || r.closed {
		r.open = !r.closed
		if !r.closed {
			r.stop = r.after(r.window, r.flush)
		}
		r.log.Warn("rejected authentication (more within "+r.window.String()+" are summed up)",
			"reason", reason, "user", clip(user), "peer", peer, "method", method, "err", err)
		return
	}
	if r.total == 0 {
		r.reasons, r.users, r.peers = map[string]int{}, map[string]int{}, map[string]int{}
	}
	r.total++
	r.reasons[reason]++
	count(r.users, clip(user))
	count(r.peers, peer)
}

// flush ends the window: it logs the window's rejections, if any, and
// keeps counting for another window; after a quiet window the next
// rejection is logged at once again.
func (r *rejectLog) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.total == 0 {
		r.open = false
		return
	}
	r.summarize("rejected authentications in the last " + r.window.String())
	r.stop = r.after(r.window, r.flush)
}

func (r *rejectLog) summarize(msg string) {
	r.log.Warn(msg, "count", r.total, "reasons", summary(r.reasons), "users", summary(r.users), "peers", summary(r.peers))
	r.total = 0
}

// close cancels the window's scheduled end and logs what it counted so
// far; later rejections are logged one by one (the daemon is stopping).
func (r *rejectLog) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		r.stop()
	}
	if r.total > 0 {
		r.summarize("rejected authentications in the last window (stopping)")
	}
	r.closed, r.open = true, false
}

func count(m map[string]int, k string) {
	if _, ok := m[k]; !ok && len(m) >= tally {
		k = "(others)"
	}
	m[k]++
}

// summary renders counts as "a=3 b=1", largest first.
func summary(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		name := k
		if name == "" {
			name = `""`
		}
		b.WriteString(name + "=" + strconv.Itoa(m[k]))
	}
	return b.String()
}

// clip bounds a client-chosen name in the log.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
