package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/fileperm"
	"github.com/guildhouse-co/kedge/server/listen"
)

// The daemon refuses to start on a users file or TLS key that group or
// others can read or write, and on a policy file or client CA bundle they
// can write, naming the file and the chmod that fixes it; a policy others
// may only read is fine (it holds no secret).
func TestStartRefusesExposedFiles(t *testing.T) {
	type files struct{ users, policy, key, ca string }
	setup := func(t *testing.T) (config.Config, files) {
		c := testConfig(t)
		f := files{users: c.Users, policy: filepath.Join(c.DataDir, "policy.yaml"),
			key: filepath.Join(c.DataDir, "server.key"), ca: filepath.Join(c.DataDir, "ca.pem")}
		if err := os.WriteFile(f.policy, []byte(auth.DefaultPolicyYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := listen.SelfSigned([]string{"localhost"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert := filepath.Join(c.DataDir, "server.crt")
		for p, b := range map[string][]byte{cert: certPEM, f.key: keyPEM, f.ca: newCA(t).pem} {
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		c.Policy, c.TLSCert, c.TLSKey, c.TLSCA = f.policy, cert, f.key, f.ca
		return c, f
	}
	for _, tc := range []struct {
		name string
		file func(files) string
		mode fs.FileMode
		fix  string // "" means the daemon starts
	}{
		{"users readable by others", func(f files) string { return f.users }, 0o644, "chmod 600"},
		{"users writable by group", func(f files) string { return f.users }, 0o620, "chmod 600"},
		{"users readable by group", func(f files) string { return f.users }, 0o640, "chmod 600"},
		{"tls key readable by group", func(f files) string { return f.key }, 0o640, "chmod 600"},
		{"tls key readable by others", func(f files) string { return f.key }, 0o604, "chmod 600"},
		{"policy writable by others", func(f files) string { return f.policy }, 0o606, "chmod go-w"},
		{"policy writable by group", func(f files) string { return f.policy }, 0o660, "chmod go-w"},
		{"ca writable by group", func(f files) string { return f.ca }, 0o664, "chmod go-w"},
		{"policy readable by all", func(f files) string { return f.policy }, 0o644, ""},
		{"ca readable by all", func(f files) string { return f.ca }, 0o644, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, f := setup(t)
			p := tc.file(f)
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			d, err := Start(c, testLogger(t))
			if tc.fix == "" {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				d.Shutdown(time.Second)
				return
			}
			if err == nil {
				d.Shutdown(time.Second)
				t.Fatalf("started with %s at mode %04o", p, tc.mode)
			}
			if !errors.Is(err, fileperm.ErrInsecure) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.fix+" "+p) {
				t.Fatalf("error %q does not name %s and the fix %q", err, p, tc.fix)
			}
		})
	}
}
