package auth

import (
	"bytes"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// limitEnv is a Passwords over a users file with alice and master, on a
// fake clock, with argon2 replaced by a counting comparison (the real
// verification is tested elsewhere; here what matters is whether it ran).
type limitEnv struct {
	pws   *Passwords
	now   time.Time
	calls atomic.Int64
}

func newLimitEnv(t *testing.T) *limitEnv {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users.yaml")
	uf := &UsersFile{}
	for _, u := range []struct {
		name string
		tier Tier
	}{{"alice", Operator}, {"master", Master}} {
		if err := uf.Put(u.name, u.tier, u.name+"-password"); err != nil {
			t.Fatal(err)
		}
	}
	if err := uf.Save(p); err != nil {
		t.Fatal(err)
	}
	pws, err := NewPasswords(p, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &limitEnv{pws: pws, now: time.Unix(1_000_000, 0)}
	pws.now = func() time.Time { return e.now }
	hashes := map[string]string{}
	for _, u := range uf.Users {
		hashes[u.Hash] = u.Name + "-password"
	}
	pws.verify = func(hash, pw string) (bool, error) {
		e.calls.Add(1)
		return hashes[hash] == pw, nil
	}
	return e
}

func (e *limitEnv) check(t *testing.T, peer, user, pw string, want error) {
	t.Helper()
	_, err := e.pws.Check(peer, user, pw)
	if !errors.Is(err, want) {
		t.Fatalf("Check(%s, %s, %s) = %v, want %v", peer, user, pw, err, want)
	}
}

// One address gets PeerBurst failures, then one per PeerEvery; refused
// checks never run argon2, and other addresses are not affected.
func TestLoginLimitPerPeer(t *testing.T) {
	e := newLimitEnv(t)
	lim := DefaultLoginLimits
	for i := range lim.PeerBurst {
		e.check(t, "192.0.2.1", "alice", "guess-"+itoa(i), ErrBadCredentials)
	}
	// What used to be 35 guesses a second: the rest of them are refused
	// without a verification, the correct password included.
	for i := range 25 {
		e.check(t, "192.0.2.1", "alice", "guess-more-"+itoa(i), ErrRateLimited)
	}
	e.check(t, "192.0.2.1", "alice", "alice-password", ErrRateLimited)
	if got := e.calls.Load(); got != int64(lim.PeerBurst) {
		t.Fatalf("%d verifications, want %d", got, lim.PeerBurst)
	}
	_, err := e.pws.Check("192.0.2.1", "alice", "x")
	if !strings.Contains(err.Error(), "192.0.2.1") || !strings.Contains(err.Error(), "retry in 7s") {
		t.Fatalf("limit error %q does not say who and when", err)
	}
	// Another address is not limited.
	e.check(t, "198.51.100.7", "alice", "alice-password", nil)
	// Time refills the bucket: one more failure per PeerEvery.
	e.now = e.now.Add(lim.PeerEvery)
	e.check(t, "192.0.2.1", "alice", "one-more", ErrBadCredentials)
	e.check(t, "192.0.2.1", "alice", "and-another", ErrRateLimited)
	e.now = e.now.Add(lim.PeerEvery)
	e.check(t, "192.0.2.1", "alice", "alice-password", nil)
}

// A correct password gives back what it spent: valid logins, however
// many, never use up the budget.
func TestValidLoginsSpendNothing(t *testing.T) {
	e := newLimitEnv(t)
	lim := DefaultLoginLimits
	for i := range lim.PeerBurst - 1 {
		e.check(t, "192.0.2.1", "alice", "guess-"+itoa(i), ErrBadCredentials)
	}
	for range 1000 {
		e.check(t, "192.0.2.1", "alice", "alice-password", nil)
	}
	clear(e.pws.cache) // and through argon2, not only the cache
	for range 50 {
		e.check(t, "192.0.2.1", "master", "master-password", nil)
		clear(e.pws.cache)
	}
	e.check(t, "192.0.2.1", "alice", "last-guess", ErrBadCredentials)
	e.check(t, "192.0.2.1", "alice", "alice-password", ErrRateLimited)
}

// Many addresses guessing one user's password are stopped by the user's
// bucket, but that bucket cannot lock the real user out: a peer that has
// logged in as the user before skips it, with or without the cache.
func TestLoginLimitPerUserSparesKnownPeers(t *testing.T) {
	e := newLimitEnv(t)
	lim := DefaultLoginLimits
	e.check(t, "10.0.0.1", "master", "master-password", nil) // the real master, from their usual address
	for i := range lim.UserBurst + 30 {
		want := ErrBadCredentials
		if i >= lim.UserBurst {
			want = ErrRateLimited
		}
		e.check(t, "203.0.113."+itoa(i), "master", "guess", want) // one guess per address
	}
	if got := e.calls.Load(); got != int64(1+lim.UserBurst) {
		t.Fatalf("%d verifications, want %d", got, 1+lim.UserBurst)
	}
	// A new address is refused even with the right password while the
	// attack drains the bucket (the price of the per-user limit)...
	e.check(t, "10.9.9.9", "master", "master-password", ErrRateLimited)
	// ...but the master's own address is never refused for it.
	e.check(t, "10.0.0.1", "master", "master-password", nil)
	clear(e.pws.cache)
	e.check(t, "10.0.0.1", "master", "master-password", nil)
	// Other users are not affected by master's bucket.
	e.check(t, "10.9.9.9", "alice", "alice-password", nil)
}

// Concurrent guesses from one address cannot outrun the budget: exactly
// PeerBurst of them run argon2.
func TestLoginLimitConcurrentGuesses(t *testing.T) {
	e := newLimitEnv(t)
	var wg sync.WaitGroup
	var limited atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			_, err := e.pws.Check("192.0.2.1", "alice", "guess-"+itoa(i))
			if errors.Is(err, ErrRateLimited) {
				limited.Add(1)
			}
		})
	}
	wg.Wait()
	if got := e.calls.Load(); got != int64(DefaultLoginLimits.PeerBurst) {
		t.Fatalf("%d verifications of 200 concurrent guesses, want %d", got, DefaultLoginLimits.PeerBurst)
	}
	if limited.Load() != 200-int64(DefaultLoginLimits.PeerBurst) {
		t.Fatalf("%d refused, want %d", limited.Load(), 200-DefaultLoginLimits.PeerBurst)
	}
}

// Concurrent first logins with the same password share one argon2 run
// (a client opening many RPCs at once spends neither CPU nor budget per
// RPC).
func TestConcurrentColdLoginsShareOneRun(t *testing.T) {
	e := newLimitEnv(t)
	entered, release := make(chan struct{}), make(chan struct{})
	inner := e.pws.verify
	var once sync.Once
	e.pws.verify = func(hash, pw string) (bool, error) {
		once.Do(func() { close(entered) })
		<-release
		return inner(hash, pw)
	}
	const n = 30 // more than the peer's burst
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := e.pws.Check("192.0.2.1", "alice", "alice-password")
			errs <- err
		}()
	}
	<-entered
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent valid login: %v", err)
		}
	}
	if got := e.calls.Load(); got != 1 {
		t.Fatalf("%d argon2 runs for %d concurrent identical logins, want 1", got, n)
	}
}

// The limiter forgets the least spent buckets beyond Tracked, so a spray
// of names or addresses cannot grow it without bound.
func TestLimiterBounded(t *testing.T) {
	l := newLimiter(LoginLimits{PeerBurst: 2, PeerEvery: time.Second, UserBurst: 2, UserEvery: time.Second, Tracked: 50, KnownPeers: 2})
	now := time.Unix(0, 0)
	for i := range 1000 {
		tk, err := l.admit(now, "user-"+itoa(i), "peer-"+itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.spend(now, &tk); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.peers) > 50 || len(l.users) > 50 {
		t.Fatalf("%d peer and %d user buckets, want at most 50", len(l.peers), len(l.users))
	}
	for i := range 5 {
		l.succeeded(now, ticket{user: "u", peer: "p" + itoa(i)})
	}
	if got := l.known["u"]; len(got) != 2 || got[1] != "p4" {
		t.Fatalf("known peers %v, want the last 2", got)
	}
}

func TestPeerKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:5555":         "192.0.2.1",
		"[2001:db8:1:2:3::9]:80": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.1]:1":   "192.0.2.1",
		"[::1]:9339":             "::/64",
		"@":                      "@",
	} {
		if got := PeerKey(in); got != want {
			t.Errorf("PeerKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// A burst of rejections logs one WARN at once and one summary when the
// window ends, not a line per guess; a quiet window closes it.
func TestRejectLogAggregates(t *testing.T) {
	var buf bytes.Buffer
	r := newRejectLog(slog.New(slog.NewTextHandler(&buf, nil)))
	var pending []func()
	r.after = func(d time.Duration, fn func()) func() bool {
		if d != rejectWindow {
			t.Errorf("window %v", d)
		}
		pending = append(pending, fn)
		return func() bool { pending = nil; return true }
	}
	lines := func() []string { return strings.Split(strings.TrimSpace(buf.String()), "\n") }
	fire := func() {
		t.Helper()
		if len(pending) != 1 {
			t.Fatalf("%d window ends scheduled, want 1", len(pending))
		}
		fn := pending[0]
		pending = pending[:0]
		fn()
	}

	for i := range 35 {
		reason := "bad username or password"
		if i >= 10 {
			reason = "rate limited"
		}
		r.record(reason, "master", "192.0.2.1", "/gnmi.gNMI/Get", ErrBadCredentials)
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "level=WARN") || !strings.Contains(l[0], "user=master") {
		t.Fatalf("after 35 rejections the log holds:\n%s", buf.String())
	}
	fire()
	l := lines()
	if len(l) != 2 || !strings.Contains(l[1], "count=34") ||
		!strings.Contains(l[1], `reasons="rate limited=25 bad username or password=9"`) ||
		!strings.Contains(l[1], `users="master=34"`) || !strings.Contains(l[1], `peers="192.0.2.1=34"`) {
		t.Fatalf("summary:\n%s", buf.String())
	}
	// Many names: the summary names a bounded few.
	for i := range 100 {
		r.record("bad username or password", "user-"+itoa(i), "198.51.100.1", "/gnmi.gNMI/Set", ErrBadCredentials)
	}
	fire()
	if l := lines(); len(l) != 3 || !strings.Contains(l[2], "count=100") || !strings.Contains(l[2], "(others)=92") {
		t.Fatalf("summary of many names:\n%s", buf.String())
	}
	fire() // a quiet window: nothing logged, the window closes
	if len(lines()) != 3 || len(pending) != 0 {
		t.Fatalf("quiet window logged or rescheduled:\n%s", buf.String())
	}
	r.record("no usable credentials", "", "192.0.2.9", "/gnmi.gNMI/Get", errors.New("no credentials"))
	if l := lines(); len(l) != 4 || !strings.Contains(l[3], "192.0.2.9") {
		t.Fatalf("first rejection after a quiet window not logged at once:\n%s", buf.String())
	}
	// Closing logs what the open window counted and cancels its end.
	r.record("bad username or password", "bob", "192.0.2.9", "/gnmi.gNMI/Get", ErrBadCredentials)
	r.close()
	if l := lines(); len(l) != 5 || !strings.Contains(l[4], "count=1") || len(pending) != 0 {
		t.Fatalf("close did not log the window or left it scheduled (%d):\n%s", len(pending), buf.String())
	}
	r.record("bad username or password", "bob", "192.0.2.9", "/gnmi.gNMI/Get", ErrBadCredentials)
	if l := lines(); len(l) != 6 || len(pending) != 0 {
		t.Fatalf("after close a rejection is logged at once and nothing is scheduled (%d):\n%s", len(pending), buf.String())
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
