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

	mu    sync.Mutex
	stamp fileStamp
	bad   fileStamp // a changed file that failed to load (logged once)
	users *UsersFile
	cache map[string]cacheEntry
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
	p := &Passwords{path: path, now: time.Now, log: log, sem: make(chan struct{}, concurrency), cache: map[string]cacheEntry{}}
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

// Check verifies name and password and returns the user's tier.
func (p *Passwords) Check(name, password string) (Tier, error) {
	mac := hmac.New(sha256.New, p.key[:])
	mac.Write([]byte(password))
	var sum [32]byte
	copy(sum[:], mac.Sum(nil))

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
			return e.tier, nil
		}
	}
	p.mu.Unlock()

	hash := u.Hash
	if err != nil {
		hash = p.dummy
	}
	p.sem <- struct{}{}
	ok, verr := VerifyPassword(hash, password)
	<-p.sem
	if err == nil && verr != nil {
		return "", fmt.Errorf("check password of %q: %w", name, verr)
	}
	if err != nil || !ok {
		return "", ErrBadCredentials
	}
	p.mu.Lock()
	// Cache only if the file did not change while argon2 ran.
	if cur, ok2 := p.users.Lookup(name); ok2 == nil && cur.Hash == hash {
		p.cache[name] = cacheEntry{mac: sum, hash: hash, tier: u.Tier, expires: p.now().Add(cacheTTL)}
	}
	p.mu.Unlock()
	return u.Tier, nil
}
