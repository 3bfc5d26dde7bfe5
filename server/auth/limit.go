package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// ErrRateLimited is returned, without checking the password, for a login
// from a peer address, or against a user name, that has used up its
// failed-login budget; the error says when to retry.
var ErrRateLimited = errors.New("too many failed logins")

// LoginLimits bound password guessing. Every password check that has to
// run argon2 spends one token of its peer's bucket and, unless the peer
// has logged in as that user before, one of the user's bucket; a correct
// password gives them back, so valid logins never use the budget up. A
// check that finds either bucket empty is refused at once, without
// verifying the password.
//
// The per-peer bucket stops one address from guessing fast; the per-user
// bucket stops many addresses from guessing one user's password between
// them. That one could be drained by an attacker to lock the real user
// out, so it does not apply to a peer that has logged in as the user
// before: the master at their usual address is never refused for someone
// else's failures, only for their own peer's. (The unix socket is always
// there for root, which the built-in policy maps to master without a
// password.)
type LoginLimits struct {
	// PeerBurst failures from one peer address (an IPv6 peer counts by
	// its /64) are allowed at once, then one more every PeerEvery.
	PeerBurst int
	PeerEvery time.Duration
	// UserBurst failures against one user name from peers that never
	// logged in as it are allowed at once, then one more every UserEvery.
	UserBurst int
	UserEvery time.Duration
	// Tracked bounds the buckets kept of each kind; beyond it the fullest
	// (least recently failing) are forgotten.
	Tracked int
	// KnownPeers bounds how many peers are remembered per user.
	KnownPeers int
}

// DefaultLoginLimits: 10 failures at once, then 10 a minute per address;
// 20 at once, then 20 a minute per user from unknown addresses.
var DefaultLoginLimits = LoginLimits{
	PeerBurst: 10, PeerEvery: 6 * time.Second,
	UserBurst: 20, UserEvery: 3 * time.Second,
	Tracked: 10000, KnownPeers: 16,
}

// bucket is a token bucket: tokens as of at, refilled one per every up
// to burst.
type bucket struct {
	tokens float64
	at     time.Time
}

func (b *bucket) level(now time.Time, burst int, every time.Duration) float64 {
	t := b.tokens + float64(now.Sub(b.at))/float64(every)
	return min(t, float64(burst))
}

// limiter holds the buckets. It is safe for concurrent use.
type limiter struct {
	lim LoginLimits

	mu    sync.Mutex
	peers map[string]*bucket
	users map[string]*bucket
	known map[string][]string // user → peers that logged in as it, most recent last
}

func newLimiter(l LoginLimits) *limiter {
	return &limiter{lim: l, peers: map[string]*bucket{}, users: map[string]*bucket{}, known: map[string][]string{}}
}

// ticket is an admitted check: which buckets it may spend.
type ticket struct {
	user, peer string
	userBucket bool // the peer is not known for the user
	spent      bool
}

// admit decides whether a check may run at all; it spends nothing.
func (l *limiter) admit(now time.Time, user, peer string) (ticket, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	tk := ticket{user: user, peer: peer, userBucket: !l.isKnown(user, peer)}
	return tk, l.available(now, tk)
}

// spend takes one token from each bucket of the ticket before an argon2
// run, refusing if another check took the last one meanwhile.
func (l *limiter) spend(now time.Time, tk *ticket) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.available(now, *tk); err != nil {
		return err
	}
	l.take(l.peers, tk.peer, now, l.lim.PeerBurst, l.lim.PeerEvery, -1)
	if tk.userBucket {
		l.take(l.users, tk.user, now, l.lim.UserBurst, l.lim.UserEvery, -1)
	}
	tk.spent = true
	return nil
}

// succeeded gives a spent ticket's tokens back and remembers the peer as
// known for the user.
func (l *limiter) succeeded(now time.Time, tk ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if tk.spent {
		l.take(l.peers, tk.peer, now, l.lim.PeerBurst, l.lim.PeerEvery, +1)
		if tk.userBucket {
			l.take(l.users, tk.user, now, l.lim.UserBurst, l.lim.UserEvery, +1)
		}
	}
	ps := l.known[tk.user]
	for i, p := range ps {
		if p == tk.peer {
			ps = append(ps[:i], ps[i+1:]...)
			break
		}
	}
	ps = append(ps, tk.peer)
	if len(ps) > l.lim.KnownPeers {
		ps = ps[len(ps)-l.lim.KnownPeers:]
	}
	l.known[tk.user] = ps
}

func (l *limiter) isKnown(user, peer string) bool {
	for _, p := range l.known[user] {
		if p == peer {
			return true
		}
	}
	return false
}

// available reports ErrRateLimited, with the wait, when a bucket the
// ticket needs holds less than one token (callers hold mu).
func (l *limiter) available(now time.Time, tk ticket) error {
	if b := l.peers[tk.peer]; b != nil {
		if lv := b.level(now, l.lim.PeerBurst, l.lim.PeerEvery); lv < 1 {
			return fmt.Errorf("%w from %s: retry in %s", ErrRateLimited, tk.peer, wait(lv, l.lim.PeerEvery))
		}
	}
	if b := l.users[tk.user]; tk.userBucket && b != nil {
		if lv := b.level(now, l.lim.UserBurst, l.lim.UserEvery); lv < 1 {
			return fmt.Errorf("%w for user %q from addresses it never logged in from: retry in %s",
				ErrRateLimited, tk.user, wait(lv, l.lim.UserEvery))
		}
	}
	return nil
}

func wait(level float64, every time.Duration) time.Duration {
	return time.Duration((1-level)*float64(every)).Round(time.Second) + time.Second
}

// take adds d tokens to the named bucket (creating it full), keeping at
// most Tracked buckets: a full bucket is the same as none, so those go
// first, then the fullest.
func (l *limiter) take(m map[string]*bucket, key string, now time.Time, burst int, every time.Duration, d float64) {
	b := m[key]
	if b == nil {
		if d > 0 {
			return // nothing spent, nothing to give back
		}
		if len(m) >= l.lim.Tracked {
			l.prune(m, now, burst, every)
		}
		b = &bucket{tokens: float64(burst), at: now}
		m[key] = b
	}
	b.tokens, b.at = min(b.level(now, burst, every)+d, float64(burst)), now
	if b.tokens >= float64(burst) {
		delete(m, key)
	}
}

func (l *limiter) prune(m map[string]*bucket, now time.Time, burst int, every time.Duration) {
	fullest, best := "", -1.0
	for k, b := range m {
		lv := b.level(now, burst, every)
		if lv >= float64(burst) {
			delete(m, k)
			continue
		}
		if lv > best {
			fullest, best = k, lv
		}
	}
	if len(m) >= l.lim.Tracked {
		delete(m, fullest)
	}
}

// PeerKey names a peer for the limiter: an IP address without its port,
// an IPv6 address by its /64 (one host gets a whole /64), anything else
// as given.
func PeerKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
