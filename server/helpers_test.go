package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/config"
)

// Passwords of the users every test daemon knows.
const (
	masterPW   = "master-password-for-tests"
	operatorPW = "operator-password-for-tests"
	observerPW = "observer-password-for-tests"
)

// testConfig returns a resolved configuration under a fresh temp dir,
// with a users file holding master, op (operator) and obs (observer).
func testConfig(t testing.TB) config.Config {
	t.Helper()
	dir := t.TempDir()
	c := config.Defaults()
	c.DataDir = dir
	c.Listen = "127.0.0.1:0"
	c.Socket = filepath.Join(dir, "kedge.sock")
	c.NodeName = "kedge-test-node"
	c.Dataplane = "off" // dataplane tests pass their own paths
	c.MetricsListen = "off"
	if err := c.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	uf := &auth.UsersFile{}
	for _, u := range []struct {
		name string
		tier auth.Tier
		pw   string
	}{{"master", auth.Master, masterPW}, {"op", auth.Operator, operatorPW}, {"obs", auth.Observer, observerPW}} {
		if err := uf.Put(u.name, u.tier, u.pw); err != nil {
			t.Fatal(err)
		}
	}
	if err := uf.Save(c.Users); err != nil {
		t.Fatal(err)
	}
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

func startDaemon(t *testing.T, c config.Config) *Daemon {
	t.Helper()
	d, err := Start(c, testLogger(t))
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Shutdown(time.Second) })
	return d
}

// dial returns a gNMI client over conn options, closed at cleanup.
func dial(t testing.TB, target string, opts ...grpc.DialOption) gpb.GNMIClient {
	t.Helper()
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return gpb.NewGNMIClient(conn)
}

// tlsClient trusts the daemon's self-signed certificate (verifying it,
// not skipping verification) and presents cert when given.
func tlsClient(t testing.TB, d *Daemon, cert *tls.Certificate) gpb.GNMIClient {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(d.cfg.DataDir, "tls", "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	tc := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	return dial(t, d.TCPAddr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
}

func unixClient(t testing.TB, d *Daemon) gpb.GNMIClient {
	t.Helper()
	return dial(t, "unix://"+d.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func ctxAs(t testing.TB, user, pw string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if user != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "username", user, "password", pw)
	}
	return ctx
}

func gp(t testing.TB, s string) *gpb.Path {
	t.Helper()
	elems, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return &gpb.Path{Elem: elems}
}

func uval(n uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
}

func jsonIETF(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

// postureLevel reads /kedge/posture/config/level (0 when unset).
func postureLevel(t *testing.T, c gpb.GNMIClient, ctx context.Context) uint64 {
	t.Helper()
	resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/posture")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatalf("get posture: %v", err)
	}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			if tree.RenderPath(append(n.GetPrefix().GetElem(), u.GetPath().GetElem()...)) == "/kedge/posture/config/level" {
				return u.GetVal().GetUintVal()
			}
		}
	}
	return 0
}

func setLevel(c gpb.GNMIClient, ctx context.Context, t *testing.T, level uint64) error {
	_, err := c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/posture/config/level"), Val: uval(level)}}})
	return err
}

// testCA is a throwaway CA that signs client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kedge test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// client issues a client certificate with the given CN (and DNS SAN).
func (ca *testCA) client(t *testing.T, cn string, dns ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func insecureCreds() grpc.DialOption { return grpc.WithTransportCredentials(insecure.NewCredentials()) }
