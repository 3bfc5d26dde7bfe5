package server

import (
	"errors"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/hostlock"
	"github.com/guildhouse-co/kedge/server/listen"
	"github.com/guildhouse-co/kedge/tests/needs"
)

func TestPasswordIdentities(t *testing.T) {
	c := testConfig(t)
	d := startDaemon(t, c)
	cl := tlsClient(t, d, nil)

	// Authentication failures: all Unauthenticated, before any handler.
	for _, tc := range []struct{ name, user, pw string }{
		{"no credentials", "", ""},
		{"wrong password", "master", "not-the-password"},
		{"unknown user", "mallory", masterPW},
		{"empty password", "master", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cl.Capabilities(ctxAs(t, tc.user, tc.pw), &gpb.CapabilityRequest{})
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("Capabilities: got %v, want Unauthenticated", err)
			}
			if err := setLevel(cl, ctxAs(t, tc.user, tc.pw), t, 3); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("Set: got %v, want Unauthenticated", err)
			}
		})
	}

	master := ctxAs(t, "master", masterPW)
	caps, err := cl.Capabilities(master, &gpb.CapabilityRequest{})
	if err != nil {
		t.Fatalf("Capabilities as master: %v", err)
	}
	if len(caps.GetSupportedModels()) == 0 {
		t.Fatalf("Capabilities lists no models: %v", caps)
	}
	if err := setLevel(cl, master, t, 4); err != nil {
		t.Fatalf("Set as master: %v", err)
	}
	if got := postureLevel(t, cl, master); got != 4 {
		t.Fatalf("level after master Set = %d, want 4", got)
	}

	// Observer: reads yes, writes no.
	obs := ctxAs(t, "obs", observerPW)
	if got := postureLevel(t, cl, obs); got != 4 {
		t.Fatalf("observer Get level = %d, want 4", got)
	}
	err = setLevel(cl, obs, t, 2)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("observer Set: got %v, want PermissionDenied", err)
	}

	// Operator: its prefixes yes, anything else no, and a denied Set
	// changes nothing (the route in the same request is not written).
	op := ctxAs(t, "op", operatorPW)
	route := "/kedge/routes/route[prefix=10.9.0.0/16][table=254]/config"
	if _, err := cl.Set(op, &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, route), Val: jsonIETF(`{"device":"eth0"}`)}}}); err != nil {
		t.Fatalf("operator Set route: %v", err)
	}
	_, err = cl.Set(op, &gpb.SetRequest{Update: []*gpb.Update{
		{Path: gp(t, "/kedge/routes/route[prefix=10.8.0.0/16][table=254]/config"), Val: jsonIETF(`{"device":"eth1"}`)},
		{Path: gp(t, "/kedge/posture/config/level"), Val: uval(1)},
	}})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator Set posture: got %v, want PermissionDenied", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "/kedge/posture/config/level") || !strings.Contains(msg, "operator") {
		t.Fatalf("denial %q does not name the path and the tier", msg)
	}
	if got := postureLevel(t, cl, master); got != 4 {
		t.Fatalf("level after denied Set = %d, want 4", got)
	}
	_, err = cl.Get(master, &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=10.8.0.0/16][table=254]")}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("route from the denied Set: got %v, want NotFound", err)
	}
	resp, err := cl.Get(master, &gpb.GetRequest{Path: []*gpb.Path{gp(t, route+"/device")}, Encoding: gpb.Encoding_PROTO})
	if err != nil || len(resp.GetNotification()) == 0 || len(resp.GetNotification()[0].GetUpdate()) != 1 ||
		resp.GetNotification()[0].GetUpdate()[0].GetVal().GetStringVal() != "eth0" {
		t.Fatalf("operator's route: %v %v", resp, err)
	}
}

func TestUnixPeerCredentials(t *testing.T) {
	needs.Root(t, "the built-in policy maps uid 0 to master")
	c := testConfig(t)
	// --socket-group by name: pick a group other than ours if there is one.
	gid := os.Getegid()
	if g, err := user.LookupGroupId("1"); err == nil {
		gid = 1
		c.SocketGroup = g.Name
	} else {
		c.SocketGroup = strconv.Itoa(gid)
	}
	d := startDaemon(t, c)
	fi, err := os.Stat(d.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v, want socket 0660", fi.Mode())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Gid) != gid {
		t.Fatalf("socket group %d, want %d (--socket-group %s)", st.Gid, gid, c.SocketGroup)
	}
	cl := unixClient(t, d)
	ctx := ctxAs(t, "", "")
	if _, err := cl.Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("Capabilities over the socket: %v", err)
	}
	if err := setLevel(cl, ctx, t, 5); err != nil {
		t.Fatalf("Set as root over the socket: %v", err)
	}
	if got := postureLevel(t, cl, ctx); got != 5 {
		t.Fatalf("level = %d, want 5", got)
	}
}

func TestUnixPolicyMapping(t *testing.T) {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	for _, tc := range []struct {
		name    string
		policy  string
		readErr codes.Code
		setErr  codes.Code
	}{
		{"uid observer", "unix:\n  uids: {" + itoa(uid) + ": observer}\n", codes.OK, codes.PermissionDenied},
		{"gid operator", "unix:\n  gids: {" + itoa(gid) + ": operator}\n", codes.OK, codes.PermissionDenied},
		{"uid beats gid", "unix:\n  uids: {" + itoa(uid) + ": master}\n  gids: {" + itoa(gid) + ": observer}\n", codes.OK, codes.OK},
		{"no tier", "unix: {}\n", codes.Unauthenticated, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			c.Policy = filepath.Join(c.DataDir, "policy.yaml")
			body := "tiers:\n  master: {write: [\"/\"]}\n  operator: {write: [/kedge/routes]}\n" + tc.policy
			if err := os.WriteFile(c.Policy, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			d := startDaemon(t, c)
			cl := unixClient(t, d)
			ctx := ctxAs(t, "", "")
			if _, err := cl.Capabilities(ctx, &gpb.CapabilityRequest{}); status.Code(err) != tc.readErr {
				t.Fatalf("Capabilities: got %v, want %v", err, tc.readErr)
			}
			if err := setLevel(cl, ctx, t, 2); status.Code(err) != tc.setErr {
				t.Fatalf("Set: got %v, want %v", err, tc.setErr)
			}
			if tc.readErr == codes.Unauthenticated {
				// An unmapped peer may still log in with a password.
				if err := setLevel(cl, ctxAs(t, "master", masterPW), t, 2); err != nil {
					t.Fatalf("unmapped peer with password: %v", err)
				}
				if err := setLevel(cl, ctxAs(t, "master", "wrong"), t, 2); status.Code(err) != codes.Unauthenticated {
					t.Fatalf("unmapped peer with a wrong password: got %v", err)
				}
			}
		})
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

func TestMutualTLS(t *testing.T) {
	c := testConfig(t)
	ca := newCA(t)
	c.TLSCA = filepath.Join(c.DataDir, "ca.pem")
	if err := os.WriteFile(c.TLSCA, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	c.Policy = filepath.Join(c.DataDir, "policy.yaml")
	policy := auth.DefaultPolicyYAML + "\n" // then override certificates
	policy = strings.Replace(policy, "certificates: {}", "certificates:\n  admin-cert: master\n  ops.example: operator", 1)
	if err := os.WriteFile(c.Policy, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, c)

	admin := tlsClient(t, d, ca.client(t, "admin-cert"))
	ctx := ctxAs(t, "", "")
	if _, err := admin.Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("Capabilities with admin cert: %v", err)
	}
	if err := setLevel(admin, ctx, t, 3); err != nil {
		t.Fatalf("Set with admin cert: %v", err)
	}

	// No CN: the first DNS SAN is the identity.
	ops := tlsClient(t, d, ca.client(t, "", "ops.example"))
	if err := setLevel(ops, ctx, t, 1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator cert Set posture: got %v, want PermissionDenied", err)
	}
	if got := postureLevel(t, ops, ctx); got != 3 {
		t.Fatalf("level = %d, want 3", got)
	}

	// A verified certificate the policy does not map: rejected, unless a
	// password comes with it.
	stranger := tlsClient(t, d, ca.client(t, "stranger"))
	if _, err := stranger.Capabilities(ctx, &gpb.CapabilityRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unmapped cert: got %v, want Unauthenticated", err)
	}
	if _, err := stranger.Capabilities(ctxAs(t, "obs", observerPW), &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("unmapped cert with password: %v", err)
	}

	// No client certificate: the TLS handshake itself fails.
	anon := tlsClient(t, d, nil)
	if _, err := anon.Capabilities(ctxAs(t, "master", masterPW), &gpb.CapabilityRequest{}); err == nil {
		t.Fatal("Capabilities without a client certificate succeeded under mTLS")
	}
	// A certificate from another CA: also refused.
	other := tlsClient(t, d, newCA(t).client(t, "admin-cert"))
	if _, err := other.Capabilities(ctx, &gpb.CapabilityRequest{}); err == nil {
		t.Fatal("Capabilities with a foreign CA's certificate succeeded")
	}
}

func TestInsecure(t *testing.T) {
	c := testConfig(t)
	c.Insecure = true
	c.Listen = "0.0.0.0:0"
	_, err := Start(c, testLogger(t))
	if !errors.Is(err, listen.ErrInsecureNonLoopback) {
		t.Fatalf("Start --insecure on 0.0.0.0: got %v, want ErrInsecureNonLoopback", err)
	}
	// The failed start released everything: a loopback start on the same
	// data dir works (the store lock is free) and serves plaintext.
	c.Listen = "127.0.0.1:0"
	d := startDaemon(t, c)
	cl := dial(t, d.TCPAddr().String(), insecureCreds())
	if _, err := cl.Capabilities(ctxAs(t, "master", masterPW), &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("Capabilities over plaintext loopback: %v", err)
	}
	if _, err := cl.Capabilities(ctxAs(t, "", ""), &gpb.CapabilityRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no credentials over plaintext: got %v, want Unauthenticated", err)
	}
}

func TestOversizedMessage(t *testing.T) {
	c := testConfig(t)
	c.MaxMsgBytes = 16 << 10
	d := startDaemon(t, c)
	cl := tlsClient(t, d, nil)
	master := ctxAs(t, "master", masterPW)
	big := `{"device":"eth0","owner":"` + strings.Repeat("x", 64<<10) + `"}`
	_, err := cl.Set(master, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: gp(t, "/kedge/routes/route[prefix=10.7.0.0/16][table=254]/config"), Val: jsonIETF(big)}}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized Set: got %v, want ResourceExhausted", err)
	}
	// Still serving, and nothing was written.
	if err := setLevel(cl, master, t, 2); err != nil {
		t.Fatalf("Set after oversized message: %v", err)
	}
	_, err = cl.Get(master, &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=10.7.0.0/16][table=254]")}})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("route from the oversized Set: got %v, want NotFound", err)
	}
}

func TestBootstrapAndRestart(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t)
	c.DataDir = dir
	c.Users = filepath.Join(dir, "users.yaml") // fresh: bootstrapped
	c.Socket = filepath.Join(dir, "kedge.sock")
	d, err := Start(c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "master.password")
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("master.password mode %v, want 0600", fi.Mode().Perm())
	}
	pwb, _ := os.ReadFile(pwFile)
	pw := strings.TrimSpace(string(pwb))
	if len(pw) < 24 {
		t.Fatalf("master password has %d characters, want 24+", len(pw))
	}
	users, _ := os.ReadFile(c.Users)
	if strings.Contains(string(users), pw) {
		t.Fatal("users file contains the plaintext password")
	}
	if !strings.Contains(string(users), "$argon2id$") {
		t.Fatalf("users file holds no argon2id hash:\n%s", users)
	}
	cl := tlsClient(t, d, nil)
	if err := setLevel(cl, ctxAs(t, "master", pw), t, 2); err != nil {
		t.Fatalf("Set with the bootstrapped password: %v", err)
	}
	if err := d.Shutdown(5 * time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := os.Stat(c.Socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after shutdown: %v", err)
	}

	// Second start: the users file and password are kept, the tree
	// survived.
	d2 := startDaemon(t, c)
	pwb2, _ := os.ReadFile(pwFile)
	if string(pwb2) != string(pwb) {
		t.Fatal("restart changed master.password")
	}
	if got := postureLevel(t, tlsClient(t, d2, nil), ctxAs(t, "master", pw)); got != 2 {
		t.Fatalf("level after restart = %d, want 2", got)
	}
}

func TestStaleAndLiveSocket(t *testing.T) {
	c := testConfig(t)
	d := startDaemon(t, c)
	// A second daemon on the same socket (other data dir) is refused
	// while the first serves.
	c2 := testConfig(t)
	c2.Socket = d.SocketPath()
	_, err := Start(c2, testLogger(t))
	if !errors.Is(err, hostlock.ErrHeld) || !strings.Contains(err.Error(), "data dir "+c.DataDir) {
		t.Fatalf("second daemon on a live socket: got %v, want it held by the first (data dir %s)", err, c.DataDir)
	}
}

// TestSecondDaemonSameDataDir: a second daemon on a running one's data
// dir fails at once naming it, before it reads a file there.
func TestSecondDaemonSameDataDir(t *testing.T) {
	c := testConfig(t)
	startDaemon(t, c)
	c2 := c
	c2.Listen, c2.Socket = "127.0.0.1:0", filepath.Join(t.TempDir(), "kedge.sock")
	_, err := Start(c2, testLogger(t))
	var he *hostlock.HeldError
	if !errors.As(err, &he) || he.Holder.PID != os.Getpid() || he.Holder.DataDir != c.DataDir ||
		!strings.Contains(err.Error(), "data dir "+c.DataDir+" is held by pid") {
		t.Fatalf("second daemon on the same data dir: %v", err)
	}
}

func TestSubscribeIdentities(t *testing.T) {
	d := startDaemon(t, testConfig(t))
	cl := tlsClient(t, d, nil)
	if err := setLevel(cl, ctxAs(t, "master", masterPW), t, 4); err != nil {
		t.Fatal(err)
	}
	once := &gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_ONCE, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/posture/config/level")}},
	}}}
	// subscribe returns the leaf values up to sync_response.
	subscribe := func(c gpb.GNMIClient, user, pw string) ([]uint64, error) {
		st, err := c.Subscribe(ctxAs(t, user, pw))
		if err != nil {
			return nil, err
		}
		// A stream the server already refused reports io.EOF on Send;
		// the refusal's status comes from Recv.
		if err := st.Send(once); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		var vals []uint64
		for {
			r, err := st.Recv()
			if err != nil {
				return vals, err
			}
			if r.GetSyncResponse() {
				return vals, nil
			}
			for _, u := range r.GetUpdate().GetUpdate() {
				vals = append(vals, u.GetVal().GetUintVal())
			}
		}
	}
	if vals, err := subscribe(cl, "obs", observerPW); err != nil || len(vals) != 1 || vals[0] != 4 {
		t.Fatalf("observer ONCE: %v, %v", vals, err)
	}
	if _, err := subscribe(cl, "", ""); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous Subscribe: got %v, want Unauthenticated", err)
	}
	if _, err := subscribe(cl, "obs", "wrong"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong password Subscribe: got %v, want Unauthenticated", err)
	}
	if os.Geteuid() == 0 {
		if vals, err := subscribe(unixClient(t, d), "", ""); err != nil || len(vals) != 1 {
			t.Fatalf("root ONCE over the socket: %v, %v", vals, err)
		}
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	c := testConfig(t)
	d, err := Start(c, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cl := tlsClient(t, d, nil)
	st, err := cl.Subscribe(ctxAs(t, "obs", observerPW))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Subscription: []*gpb.Subscription{{Path: gp(t, "/kedge/posture"), Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}}); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := st.Recv()
		if err != nil {
			t.Fatalf("stream before shutdown: %v", err)
		}
		if r.GetSyncResponse() {
			break
		}
	}
	// The grace period is far longer than the test allows: the stream
	// must be ended by shutdown, not by the timeout.
	start := time.Now()
	if err := d.Shutdown(time.Minute); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("shutdown with an open stream took %v", el)
	}
	if _, err := st.Recv(); err == nil {
		t.Fatal("stream still open after shutdown")
	}
}
