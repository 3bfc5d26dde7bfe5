package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// cacheTTL bounds how long a verified password is trusted without
// re-running argon2; a changed users file drops the cache at once.
const cacheTTL = time.Minute

// Passwords checks username/password pairs against a users file. It
// rereads the file when its identity (inode, size, mtime) changes, and
// caches successful checks for a short time so a Set storm does not pay
// argon2 on every RPC. It is safe for concurrent use.
type Passwords struct {
	path string
	now  func() time.Time
	key  [32]byte      // per-process HMAC key: the cache never holds passwords
	sem  chan struct{} // bounds concurrent argon2 runs (memory, CPU)
	// dummy is verified for unknown users so that a miss costs as much
	// as a wrong password and does not reveal which names exist.
	dummy string

	log *slog.Logger
	// lim bounds failed logins per peer and per user (see LoginLimits).
	lim *limiter
	// verify is VerifyPassword (tests count the argon2 runs).
	verify func(hash, pw string) (bool, error)

	mu    sync.Mutex
	stamp fileStamp
	bad   fileStamp // a changed file that failed to load (logged once)
	users *UsersFile
	cache map[string]cacheEntry
	// flights are the argon2 runs in progress, by user and password HMAC:
	// concurrent checks of the same pair wait for one run instead of
	// each spending a token and a run.
	flights map[flightKey]*flight
}

type flightKey struct {
	name string
	mac  [32]byte
}

type flight struct {
	done chan struct{}
	tier Tier
	err  error
}

type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

type cacheEntry struct {
	mac     [32]byte // HMAC(key, password)
	hash    string   // the hash it was verified against
	tier    Tier
	expires time.Time
}

// ErrBadCredentials is returned for an unknown user or a wrong password;
// the two are deliberately indistinguishable.
var ErrBadCredentials = errors.New("bad username or password")

// NewPasswords returns a checker over the users file at path; the file
// must exist and parse. concurrency bounds parallel argon2 runs (each
// takes 19 MiB), so a flood of bad logins queues instead of exhausting
// memory.
func NewPasswords(path string, concurrency int, log *slog.Logger) (*Passwords, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Passwords{path: path, now: time.Now, log: log, sem: make(chan struct{}, concurrency), cache: map[string]cacheEntry{},
		lim: newLimiter(DefaultLoginLimits), verify: VerifyPassword, flights: map[flightKey]*flight{}}
	if _, err := rand.Read(p.key[:]); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	if _, err := p.current(); err != nil {
		return nil, err
	}
	d, err := HashPassword(string(p.key[:8]))
	if err != nil {
		return nil, fmt.Errorf("new passwords: %w", err)
	}
	p.dummy = d
	return p, nil
}

// current returns the users file, reloading it (and dropping the cache)
// when it changed on disk. A file that changed into something invalid
// keeps the last good contents, so a half-edited file cannot lock
// everyone out; a removed file revokes every password. Reload problems
// are logged once per change of the file.
func (p *Passwords) current() (*UsersFile, error) {
	fi, err := os.Stat(p.path)
	if errors.Is(err, os.ErrNotExist) && p.users != nil {
		if p.stamp != (fileStamp{}) {
			p.log.Warn("users file removed: every password login is refused until it returns", "path", p.path)
			p.users, p.stamp = &UsersFile{}, fileStamp{}
			clear(p.cache)
		}
		return p.users, nil
	}
	if err != nil {
		return p.users, fmt.Errorf("stat users file: %w", err)
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
	if p.users != nil && (st == p.stamp || st == p.bad) {
		return p.users, nil
	}
	uf, err := LoadUsers(p.path)
	if err != nil {
		if p.users != nil {
			p.bad = st
			p.log.Error("users file changed but does not load; keeping the previous one", "path", p.path, "err", err)
			return p.users, nil
		}
		return nil, err
	}
	p.users, p.stamp, p.bad = uf, st, fileStamp{}
	clear(p.cache)
	p.log.Info("users file loaded", "path", p.path, "users", len(uf.Users))
	return uf, nil
}

// Check verifies name and password, sent from peer (see PeerKey), and
// returns the user's tier. Failed checks are limited per peer and per
// user (LoginLimits): past the limit it returns an error wrapping
// ErrRateLimited without looking at the password. A wrong password or
// unknown user is ErrBadCredentials, indistinguishably.
func (p *Passwords) Check(peer, name, password string) (Tier, error) {
	mac := hmac.New(sha256.New, p.key[:])
	mac.Write([]byte(password))
	var sum [32]byte
	copy(sum[:], mac.Sum(nil))

	tk, err := p.lim.admit(p.now(), name, peer)
	if err != nil {
		return "", err
	}
	p.mu.Lock()
	uf, loadErr := p.current()
	if uf == nil {
		p.mu.Unlock()
		return "", fmt.Errorf("check password: %w", loadErr)
	}
	u, err := uf.Lookup(name)
	if err == nil {
		if e, ok := p.cache[name]; ok && e.hash == u.Hash && p.now().Before(e.expires) && hmac.Equal(e.mac[:], sum[:]) {
			p.mu.Unlock()
			p.lim.succeeded(p.now(), tk)
			return e.tier, nil
		}
	}
	key := flightKey{name: name, mac: sum}
	if f, ok := p.flights[key]; ok {
		p.mu.Unlock()
		<-f.done
		if f.err == nil {
			p.lim.succeeded(p.now(), tk)
		}
		return f.tier, f.err
	}
	f := &flight{done: make(chan struct{})}
	p.flights[key] = f
	p.mu.Unlock()

	f.tier, f.err = p.verifyOnce(&tk, name, u, err == nil, password, sum)
	p.mu.Lock()
	delete(p.flights, key)
	p.mu.Unlock()
	close(f.done)
	return f.tier, f.err
}

// verifyOnce runs argon2 for one check, after spending its tokens.
func (p *Passwords) verifyOnce(tk *ticket, name string, u User, known bool, password string, sum [32]byte) (Tier, error) {
	if err := p.lim.spend(p.now(), tk); err != nil {
		return "", err
	}
	hash := u.Hash
	if !known {
		hash = p.dummy
	}
	p.sem <- struct{}{}
	ok, verr := p.verify(hash, password)
	<-p.sem
	if known && verr != nil {
		return "", fmt.Errorf("check password of %q: %w", name, verr)
	}
	if !known || !ok {
		return "", ErrBadCredentials
	}
	p.lim.succeeded(p.now(), *tk)
	p.mu.Lock()
	// Cache only if the file did not change while argon2 ran.
	if cur, err := p.users.Lookup(name); err == nil && cur.Hash == hash {
		p.cache[name] = cacheEntry{mac: sum, hash: hash, tier: u.Tier, expires: p.now().Add(cacheTTL)}
	}
	p.mu.Unlock()
	return u.Tier, nil
}
