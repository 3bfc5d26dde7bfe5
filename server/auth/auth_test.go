package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/guildhouse-co/kedge/gnmi/target"
)

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q is not a PHC argon2id string", h)
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct horsE", false}, {"", false}} {
		got, err := VerifyPassword(h, tc.pw)
		if err != nil || got != tc.want {
			t.Errorf("VerifyPassword(%q) = %v, %v; want %v", tc.pw, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "plaintext", "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5", "$argon2id$v=19$m=8,t=1,p=1$!!$a2V5"} {
		if _, err := VerifyPassword(bad, "x"); !errors.Is(err, ErrBadHash) {
			t.Errorf("VerifyPassword(%q): got %v, want ErrBadHash", bad, err)
		}
	}
}

func TestRandomPassword(t *testing.T) {
	a, err := RandomPassword(32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RandomPassword(32)
	if len(a) != 32 || a == b {
		t.Fatalf("RandomPassword: %q, %q", a, b)
	}
}

func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	users, pwFile := filepath.Join(dir, "users.yaml"), filepath.Join(dir, "master.password")
	created, err := Bootstrap(users, pwFile)
	if err != nil || !created {
		t.Fatalf("Bootstrap: %v, %v", created, err)
	}
	for _, p := range []string{users, pwFile} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	pwb, _ := os.ReadFile(pwFile)
	pw := strings.TrimSpace(string(pwb))
	ub, _ := os.ReadFile(users)
	if len(pw) < 24 || strings.Contains(string(ub), pw) {
		t.Fatalf("password %q (len %d) or users file leaks it:\n%s", pw, len(pw), ub)
	}
	uf, err := LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uf.Lookup("master")
	if err != nil || u.Tier != Master {
		t.Fatalf("master user: %+v, %v", u, err)
	}
	if ok, _ := VerifyPassword(u.Hash, pw); !ok {
		t.Fatal("master.password does not match the hash")
	}
	created, err = Bootstrap(users, pwFile)
	if err != nil || created {
		t.Fatalf("second Bootstrap: %v, %v; want untouched", created, err)
	}
}

func TestLoadUsersRejects(t *testing.T) {
	h, _ := HashPassword("pw-pw-pw-pw")
	for name, body := range map[string]string{
		"plaintext":  "users:\n- {name: a, tier: master, hash: hunter2}\n",
		"bad tier":   "users:\n- {name: a, tier: admin, hash: '" + h + "'}\n",
		"duplicate":  "users:\n- {name: a, tier: master, hash: '" + h + "'}\n- {name: a, tier: observer, hash: '" + h + "'}\n",
		"empty name": "users:\n- {name: '', tier: master, hash: '" + h + "'}\n",
	} {
		p := filepath.Join(t.TempDir(), "users.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := LoadUsers(p); err == nil {
			t.Errorf("%s: LoadUsers accepted:\n%s", name, body)
		}
	}
}

func TestPasswordsCacheAndReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users.yaml")
	uf := &UsersFile{}
	uf.Put("alice", Operator, "alice-password-1")
	if err := uf.Save(p); err != nil {
		t.Fatal(err)
	}
	pws, err := NewPasswords(p, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	pws.now = func() time.Time { return now }

	if tier, err := pws.Check("127.0.0.1", "alice", "alice-password-1"); err != nil || tier != Operator {
		t.Fatalf("Check: %v, %v", tier, err)
	}
	if _, ok := pws.cache["alice"]; !ok {
		t.Fatal("successful check not cached")
	}
	// A wrong password is refused even with a cached entry, and is not
	// cached itself.
	if _, err := pws.Check("127.0.0.1", "alice", "alice-password-2"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := pws.Check("127.0.0.1", "bob", "alice-password-1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	// Timed-out entries are re-verified (still correct, so still OK).
	now = now.Add(2 * cacheTTL)
	if _, err := pws.Check("127.0.0.1", "alice", "alice-password-1"); err != nil {
		t.Fatalf("after TTL: %v", err)
	}

	// Changing the users file (new password, new tier) drops the cache
	// at once: the old password stops working.
	uf.Put("alice", Observer, "alice-password-2")
	if err := uf.Save(p); err != nil {
		t.Fatal(err)
	}
	if _, err := pws.Check("127.0.0.1", "alice", "alice-password-1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after users file change: %v", err)
	}
	if tier, err := pws.Check("127.0.0.1", "alice", "alice-password-2"); err != nil || tier != Observer {
		t.Fatalf("new password: %v, %v", tier, err)
	}

	// A broken users file keeps the last good one.
	os.WriteFile(p, []byte("users: [oops"), 0o600)
	if tier, err := pws.Check("127.0.0.1", "alice", "alice-password-2"); err != nil || tier != Observer {
		t.Fatalf("after broken file: %v, %v", tier, err)
	}
	// A removed users file revokes every password, cached or not.
	os.Remove(p)
	if _, err := pws.Check("127.0.0.1", "alice", "alice-password-2"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("after removal: %v", err)
	}
	// And a restored one works again.
	if err := uf.Save(p); err != nil {
		t.Fatal(err)
	}
	if _, err := pws.Check("127.0.0.1", "alice", "alice-password-2"); err != nil {
		t.Fatalf("after restore: %v", err)
	}
}

func TestDefaultPolicyWrites(t *testing.T) {
	p := DefaultPolicy()
	type row struct {
		tier Tier
		path string
		want bool
	}
	var got, want []row
	for _, r := range []row{
		{Master, "/kedge/accords/level[level=3]/config/drain", true},
		{Master, "/", true},
		{SiteOwner, "/kedge/posture/config/level", true},
		{SiteOwner, "/kedge/accords/level[level=3]/config/drain", false},
		{SiteOwner, "/kedge/system/config/node-name", false},
		{SiteOwner, "/kedge", false}, // would delete /kedge/accords
		{SiteOwner, "/", false},
		{SiteOwner, "/kedge/systems", true}, // element match, not string prefix
		{Operator, "/kedge/routes", true},
		{Operator, "/kedge/routes/route[prefix=10.0.0.0/8][table=254]/config/device", true},
		{Operator, "/kedge/pods/pod[container-id=abc][ifname=eth0]", true},
		{Operator, "/kedge/mesh/peers/peer[name=n2]/config/endpoint", true},
		{Operator, "/kedge/mesh/config/listen-port", false},
		{Operator, "/kedge/underlay/mutations/mutation[id=1]", true},
		{Operator, "/kedge/underlay/devices", false},
		{Operator, "/kedge/posture/config/level", false},
		{Operator, "/kedge/routesx", false},
		{Operator, "/kedge", false},
		{Observer, "/kedge/routes", false},
		// Module-qualified names are the same paths to the tree, so to
		// the policy too.
		{SiteOwner, "/kedge:kedge/kedge:accords/level[level=3]", false},
		{SiteOwner, "/kedge:kedge/accords", false},
		{Operator, "/kedge:kedge/kedge:routes/route[prefix=10.0.0.0/8][table=254]", true},
		// Wildcards in a written path are treated as touching everything.
		{SiteOwner, "/kedge/*/level[level=3]", false},
		{SiteOwner, "/kedge/...", false},
		{Operator, "/kedge/*", false},
	} {
		ok, _ := p.MayWrite(r.tier, r.path)
		got = append(got, row{r.tier, r.path, ok})
		want = append(want, r)
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(row{})); d != "" {
		t.Fatalf("MayWrite (-want +got):\n%s", d)
	}
}

func TestPolicyKeys(t *testing.T) {
	p, err := ParsePolicy([]byte(`
tiers:
  operator:
    write:
      - /kedge/routes/route[prefix=*][table=254]
      - /kedge/pods/pod[container-id=*]
  site-owner:
    write: ["/kedge"]
    deny: ["/kedge/routes/route[table=100]"]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tier Tier
		path string
		want bool
	}{
		{Operator, "/kedge/routes/route[prefix=10.0.0.0/8][table=254]/config", true},
		{Operator, "/kedge/routes/route[prefix=10.0.0.0/8][table=100]/config", false},
		{Operator, "/kedge/routes/route", false}, // every entry, not only table 254
		{Operator, "/kedge/pods/pod[container-id=c1][ifname=eth0]", true},
		{SiteOwner, "/kedge/routes/route[prefix=10.0.0.0/8][table=254]", true},
		{SiteOwner, "/kedge/routes/route[prefix=10.0.0.0/8][table=100]/config/device", false},
		{SiteOwner, "/kedge/routes/route", false}, // includes table 100
		{SiteOwner, "/kedge/routes/route[prefix=*][table=*]", false},
	} {
		if got, why := p.MayWrite(tc.tier, tc.path); got != tc.want {
			t.Errorf("MayWrite(%s, %s) = %v (%s), want %v", tc.tier, tc.path, got, why, tc.want)
		}
	}
}

func TestSiteOwnerSpelling(t *testing.T) {
	p, err := ParsePolicy([]byte("tiers:\n  site_owner: {write: [/kedge]}\ncertificates: {a: site_owner}\nunix: {gids: {5: site_owner}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ok, why := p.MayWrite(SiteOwner, "/kedge/posture"); !ok {
		t.Fatalf("site_owner rules not applied to site-owner: %s", why)
	}
	if tr, _ := p.CertificateTier("a"); tr != SiteOwner {
		t.Fatalf("certificate tier %q", tr)
	}
	if tr, _, _ := p.UnixTier(99, 5); tr != SiteOwner {
		t.Fatalf("unix tier %q", tr)
	}
}

func TestParsePolicyRejects(t *testing.T) {
	for name, body := range map[string]string{
		"unknown tier":      "tiers:\n  admin: {write: [/]}\n",
		"unknown key":       "tier:\n  master: {write: [/]}\n",
		"bad path":          "tiers:\n  master: {write: ['/a[b']}\n",
		"bad cert tier":     "certificates: {x: root}\n",
		"bad unix tier":     "unix: {uids: {0: root}}\n",
		"negative uid text": "unix: {uids: {-1: master}}\n",
	} {
		if _, err := ParsePolicy([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAuthorizer(t *testing.T) {
	a := Authorizer{Policy: DefaultPolicy()}
	ctx := context.Background()
	if err := a.Read(ctx); !errors.Is(err, target.ErrUnauthenticated) {
		t.Fatalf("Read without identity: %v", err)
	}
	if err := a.Write(ctx, []string{"/kedge/routes"}); !errors.Is(err, target.ErrUnauthenticated) {
		t.Fatalf("Write without identity: %v", err)
	}
	obs := WithIdentity(ctx, Identity{Name: "o", Tier: Observer, Method: MethodPassword})
	if err := a.Read(obs); err != nil {
		t.Fatalf("observer Read: %v", err)
	}
	if err := a.Write(obs, []string{"/kedge/routes"}); !errors.Is(err, target.ErrPermissionDenied) {
		t.Fatalf("observer Write: %v", err)
	}
	op := WithIdentity(ctx, Identity{Name: "op", Tier: Operator, Method: MethodPassword})
	if err := a.Write(op, []string{"/kedge/routes/route[prefix=10.0.0.0/8][table=254]"}); err != nil {
		t.Fatalf("operator Write route: %v", err)
	}
	err := a.Write(op, []string{"/kedge/routes", "/kedge/posture/config/level"})
	if !errors.Is(err, target.ErrPermissionDenied) || !strings.Contains(err.Error(), "/kedge/posture/config/level") ||
		!strings.Contains(err.Error(), "operator") {
		t.Fatalf("operator Write posture: %v", err)
	}
}

// The shipped example policy is the built-in one plus examples, so the
// two must agree on every tier rule.
func TestDeployPolicyExample(t *testing.T) {
	p, err := LoadPolicy("../../deploy/daemon/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultPolicy()
	for _, tier := range Tiers {
		for _, path := range []string{"/", "/kedge", "/kedge/accords/x", "/kedge/system", "/kedge/posture/config/level",
			"/kedge/routes/route[prefix=10.0.0.0/8][table=254]", "/kedge/mesh/peers", "/kedge/mesh/config"} {
			a, _ := p.MayWrite(tier, path)
			b, _ := def.MayWrite(tier, path)
			if a != b {
				t.Errorf("tier %s path %s: example %v, built-in %v", tier, path, a, b)
			}
		}
	}
	if tr, ok := p.CertificateTier("noc.example.net"); !ok || tr != SiteOwner {
		t.Errorf("example certificate mapping: %v %v", tr, ok)
	}
	if tr, _, ok := p.UnixTier(0, 0); !ok || tr != Master {
		t.Errorf("example unix mapping: %v %v", tr, ok)
	}
}
