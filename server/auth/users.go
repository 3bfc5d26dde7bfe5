package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/guildhouse-co/kedge/server/fileperm"
)

// User is one entry of the users file.
type User struct {
	Name string `yaml:"name"`
	Tier Tier   `yaml:"tier"`
	// Hash is an argon2id PHC string (see HashPassword); the users file
	// never holds a plaintext password.
	Hash string `yaml:"hash"`
}

// UsersFile is the YAML document stored in the users file:
//
//	users:
//	  - name: master
//	    tier: master
//	    hash: $argon2id$v=19$m=19456,t=2,p=1$...$...
type UsersFile struct {
	Users []User `yaml:"users"`
}

// ErrNoUser marks a lookup of a name the users file does not hold.
var ErrNoUser = errors.New("no such user")

// LoadUsers reads and checks a users file. A file group or others may
// read or write, or that another user owns, is refused (fileperm).
func LoadUsers(path string) (*UsersFile, error) {
	// Password hashes allow offline guessing, and a writable file lets
	// anyone add a master: refuse a file other users can read or write.
	b, err := fileperm.ReadSecret(path, "users file")
	if err != nil {
		return nil, err
	}
	var uf UsersFile
	if err := yaml.Unmarshal(b, &uf); err != nil {
		return nil, fmt.Errorf("parse users file %s: %w", path, err)
	}
	if err := uf.check(); err != nil {
		return nil, fmt.Errorf("check users file %s: %w", path, err)
	}
	return &uf, nil
}

func (uf *UsersFile) check() error {
	seen := map[string]bool{}
	for i, u := range uf.Users {
		if u.Name == "" {
			return fmt.Errorf("user %d: empty name", i)
		}
		if seen[u.Name] {
			return fmt.Errorf("user %q: listed twice", u.Name)
		}
		seen[u.Name] = true
		t, err := ParseTier(string(u.Tier))
		if err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
		uf.Users[i].Tier = t
		if _, err := parsePHC(u.Hash); err != nil {
			return fmt.Errorf("user %q: %w", u.Name, err)
		}
	}
	return nil
}

// Lookup returns the named user.
func (uf *UsersFile) Lookup(name string) (User, error) {
	for _, u := range uf.Users {
		if u.Name == name {
			return u, nil
		}
	}
	return User{}, fmt.Errorf("look up %q: %w", name, ErrNoUser)
}

// Put adds or replaces a user with a fresh hash of password.
func (uf *UsersFile) Put(name string, tier Tier, password string) error {
	if name == "" {
		return errors.New("put user: empty name")
	}
	tier, err := ParseTier(string(tier))
	if err != nil {
		return fmt.Errorf("put user %q: %w", name, err)
	}
	h, err := HashPassword(password)
	if err != nil {
		return fmt.Errorf("put user %q: %w", name, err)
	}
	u := User{Name: name, Tier: tier, Hash: h}
	for i := range uf.Users {
		if uf.Users[i].Name == name {
			uf.Users[i] = u
			return nil
		}
	}
	uf.Users = append(uf.Users, u)
	return nil
}

// Save writes the users file atomically (temp file, fsync, rename) with
// mode 0600, so a running daemon never reads half a file and notices the
// change by the new inode.
func (uf *UsersFile) Save(path string) error {
	b, err := yaml.Marshal(uf)
	if err != nil {
		return fmt.Errorf("encode users file: %w", err)
	}
	return writeFileAtomic(path, b, 0o600)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Bootstrap creates the users file with a master user when it does not
// exist yet, writing the master's random password to passwordPath (0600).
// It reports whether it created the file. An existing users file is never
// touched.
func Bootstrap(usersPath, passwordPath string) (bool, error) {
	if _, err := os.Stat(usersPath); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("stat users file: %w", err)
	}
	pw, err := RandomPassword(32)
	if err != nil {
		return false, fmt.Errorf("bootstrap users: %w", err)
	}
	var uf UsersFile
	if err := uf.Put("master", Master, pw); err != nil {
		return false, fmt.Errorf("bootstrap users: %w", err)
	}
	// Password first: a crash between the two writes leaves no users file,
	// so the next start simply bootstraps again.
	if err := writeFileAtomic(passwordPath, []byte(pw+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("bootstrap users: %w", err)
	}
	if err := uf.Save(usersPath); err != nil {
		return false, fmt.Errorf("bootstrap users: %w", err)
	}
	return true, nil
}
