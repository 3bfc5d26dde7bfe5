package tests

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/shellstream"
)

// ssEcho starts one echo endpoint per session type on unix sockets in
// dir (each connection: the preamble line, then every byte echoed) and
// returns the daemon's --shellstream-endpoints value.
func ssEcho(t testing.TB, dir string) string {
	t.Helper()
	var parts []string
	for _, typ := range session.Types {
		path := filepath.Join(dir, "ep-"+string(typ)+".sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var conns []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				go func() {
					defer c.Close()
					r := bufio.NewReader(c)
					if _, err := r.ReadBytes('\n'); err != nil {
						return
					}
					io.Copy(c, r)
				}()
			}
		}()
		t.Cleanup(func() {
			ln.Close()
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		})
		parts = append(parts, string(typ)+"=unix:"+path)
	}
	return strings.Join(parts, ",")
}

// ssPolicy writes a policy file: the built-in tiers, root as master on
// the unix socket, and spiffe maps IDs to tiers.
func ssPolicy(t testing.TB, dir string, spiffe map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("tiers:\n  master: {write: [\"/\"]}\n  site-owner: {write: [\"/\"], deny: [\"/kedge/accords\", \"/kedge/system\"]}\n")
	b.WriteString("  operator: {write: [\"/kedge/routes\"]}\n  observer: {write: []}\nunix:\n  uids:\n    0: master\n")
	if uid := os.Getuid(); uid != 0 {
		fmt.Fprintf(&b, "    %d: master\n", uid)
	}
	b.WriteString("spiffe:\n")
	for id, tier := range spiffe {
		fmt.Fprintf(&b, "  %q: %s\n", id, tier)
	}
	p := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ssTLS returns TLS client credentials that verify a daemon's
// self-signed certificate for its node name.
func ssTLS(t testing.TB, dataDir, node string) credentials.TransportCredentials {
	t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls", "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: node, MinVersion: tls.VersionTLS13})
}

func ssUnix(t testing.TB, sock string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// ssRecv reads frames until one of kind (DATA before it is skipped).
func ssRecv(t testing.TB, cs *shellstream.ClientSession, kind string) *pb.SessionResponse {
	t.Helper()
	for {
		f, err := cs.Recv()
		if err != nil {
			t.Fatalf("waiting for %s: %v", kind, err)
		}
		got := ""
		switch f.GetFrame().(type) {
		case *pb.SessionResponse_Data:
			continue
		case *pb.SessionResponse_Drain:
			got = "drain"
		case *pb.SessionResponse_PostureChange:
			got = "posture-change"
		case *pb.SessionResponse_Close:
			got = "close"
		default:
			got = fmt.Sprintf("%T", f.GetFrame())
		}
		if got != kind {
			t.Fatalf("got %s while waiting for %s", got, kind)
		}
		return f
	}
}

// ssEchoOnce sends payload and reads it back.
func ssEchoOnce(t testing.TB, cs *shellstream.ClientSession, payload string) {
	t.Helper()
	if err := cs.Send([]byte(payload)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < len(payload) {
		f, err := cs.Recv()
		if err != nil {
			t.Fatalf("echo: %v", err)
		}
		if f.GetData() == nil {
			t.Fatalf("echo: got %v", f)
		}
		got = append(got, f.GetData().GetPayload()...)
	}
	if string(got) != payload {
		t.Fatalf("echo %q, want %q", got, payload)
	}
}

// ssSessions returns /kedge/sessions state leaves by session id and leaf.
func ssSessions(t testing.TB, c gpb.GNMIClient) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	resp, err := c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, "/kedge/sessions")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		return out // nothing there yet is NOT_FOUND
	}
	leaves := map[string]string{}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			leaves[tree.RenderPath(append(n.GetPrefix().GetElem(), u.GetPath().GetElem()...))] = ssValue(u.GetVal())
		}
	}
	for p, v := range leaves {
		i := strings.Index(p, "session[id=")
		if i < 0 {
			continue
		}
		rest := p[i+len("session[id="):]
		id := rest[:strings.IndexByte(rest, ']')]
		leaf := p[strings.LastIndexByte(p, '/')+1:]
		if out[id] == nil {
			out[id] = map[string]string{}
		}
		out[id][leaf] = v
	}
	return out
}

func ssCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func ssValue(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_UintVal:
		return strconv.FormatUint(x.UintVal, 10)
	case *gpb.TypedValue_IntVal:
		return strconv.FormatInt(x.IntVal, 10)
	case *gpb.TypedValue_BoolVal:
		return strconv.FormatBool(x.BoolVal)
	case *gpb.TypedValue_LeaflistVal:
		var parts []string
		for _, e := range x.LeaflistVal.GetElement() {
			parts = append(parts, ssValue(e))
		}
		return strings.Join(parts, ",")
	}
	return v.String()
}

// startKedgeDaemon is startKedge that also returns the daemon.
func startKedgeDaemon(t testing.TB, cfg config.Config) (gpb.GNMIClient, func(), *server.Daemon) {
	t.Helper()
	d, err := server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() { d.Shutdown(5 * time.Second) })
	cc := ssUnix(t, d.SocketPath())
	return gpb.NewGNMIClient(cc), func() { d.Shutdown(5 * time.Second) }, d
}
