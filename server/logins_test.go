package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// lockedBuffer is a log sink safe for the daemon's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tlsClientFrom is tlsClient with the connection's source address set.
func tlsClientFrom(t *testing.T, d *Daemon, src string) gpb.GNMIClient {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(d.cfg.DataDir, "tls", "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	return dial(t, d.TCPAddr().String(),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"})),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr)
		}))
}

// 35 wrong passwords in a row from one address: the first ten are
// checked (UNAUTHENTICATED), the rest refused unchecked
// (RESOURCE_EXHAUSTED, saying when to retry), the whole run is one WARN
// line, and the master's correct password from another address is
// accepted at once.
func TestPasswordGuessingIsLimited(t *testing.T) {
	c := testConfig(t)
	var logs lockedBuffer
	d, err := Start(c, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(time.Second) })

	attacker := tlsClientFrom(t, d, "127.0.0.1")
	var codesSeen []codes.Code
	for i := range 35 {
		_, err := attacker.Capabilities(ctxAs(t, "master", "guess-"+strconv.Itoa(i)), &gpb.CapabilityRequest{})
		codesSeen = append(codesSeen, status.Code(err))
		if i == 34 && !strings.Contains(status.Convert(err).Message(), "retry in") {
			t.Errorf("limited login's message %q does not say when to retry", status.Convert(err).Message())
		}
	}
	for i, c := range codesSeen {
		want := codes.Unauthenticated
		if i >= 10 {
			want = codes.ResourceExhausted
		}
		if c != want {
			t.Fatalf("guess %d: %v, want %v (all: %v)", i, c, want, codesSeen)
		}
	}
	if n := strings.Count(logs.String(), "rejected authentication"); n != 1 {
		t.Fatalf("%d log lines for 35 rejected logins, want 1:\n%s", n, logs.String())
	}
	// The real master, elsewhere, is not slowed by the attacker's failures.
	master := tlsClientFrom(t, d, "127.0.0.2")
	start := time.Now()
	if _, err := master.Capabilities(ctxAs(t, "master", masterPW), &gpb.CapabilityRequest{}); err != nil {
		t.Fatalf("master from another address: %v", err)
	}
	t.Logf("master's login took %v", time.Since(start))
	// The attacker's address stays limited, even for a correct password.
	if _, err := attacker.Capabilities(ctxAs(t, "master", masterPW), &gpb.CapabilityRequest{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("limited address with the right password: %v", err)
	}
}
