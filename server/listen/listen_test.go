package listen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9339": true, "127.3.4.5:1": true, "[::1]:9339": true, "localhost:9339": true,
		"0.0.0.0:9339": false, ":9339": false, "[::]:9339": false, "10.0.0.1:9339": false,
		"example.com:9339": false, "127.0.0.1": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestSelfSigned(t *testing.T) {
	dir := t.TempDir()
	cfg, gen, err := ServerTLS(TLSFiles{}, dir, []string{"node-a", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	if gen != filepath.Join(dir, "server.crt") || cfg.ClientAuth != tls.NoClientCert {
		t.Fatalf("generated %q, client auth %v", gen, cfg.ClientAuth)
	}
	fi, err := os.Stat(filepath.Join(dir, "server.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	b, _ := os.ReadFile(gen)
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "node-a", "192.0.2.7"} {
		if err := c.VerifyHostname(host); err != nil {
			t.Errorf("certificate not valid for %s: %v", host, err)
		}
	}
	// A second call reuses the files.
	if _, _, err := ServerTLS(TLSFiles{}, dir, []string{"node-a"}); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(gen)
	if string(b) != string(b2) {
		t.Fatal("self-signed certificate regenerated on second start")
	}
	// A new node name gets a new certificate that covers it.
	if _, _, err := ServerTLS(TLSFiles{}, dir, []string{"node-b"}); err != nil {
		t.Fatal(err)
	}
	b3, _ := os.ReadFile(gen)
	blk3, _ := pem.Decode(b3)
	c3, err := x509.ParseCertificate(blk3.Bytes)
	if err != nil || c3.VerifyHostname("node-b") != nil {
		t.Fatalf("renamed node's certificate: %v", err)
	}
	if _, _, err := ServerTLS(TLSFiles{Cert: gen}, dir, nil); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
	// With a CA: mTLS required.
	cfg, _, err = ServerTLS(TLSFiles{Cert: gen, Key: filepath.Join(dir, "server.key"), CA: gen}, dir, nil)
	if err != nil || cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Fatalf("mTLS config: %+v %v", cfg, err)
	}
}

func TestUnixPeerCreds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Unix(path, UnixOptions{GID: os.Getegid()})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	type result struct {
		pc  PeerCred
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		_, ai, err := PeerCreds{}.ServerHandshake(c)
		pc, _ := ai.(PeerCred)
		got <- result{pc, err}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, cai, err := PeerCreds{}.ClientHandshake(ctx, "", c)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.pc.UID != uint32(os.Geteuid()) || r.pc.GID != uint32(os.Getegid()) || r.pc.PID != uint32(os.Getpid()) {
			t.Fatalf("peer creds %+v, want uid %d gid %d pid %d", r.pc, os.Geteuid(), os.Getegid(), os.Getpid())
		}
	case <-ctx.Done():
		t.Fatal("no handshake")
	}
	if cai.(PeerCred).PID != uint32(os.Getpid()) {
		t.Fatalf("client side creds %+v", cai)
	}
	// A live socket is not taken over.
	if _, err := Unix(path, UnixOptions{GID: -1}); err == nil {
		t.Fatal("second listener on a live socket")
	}
	// TCP connections have no peer credentials.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	tc, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, _, err := (PeerCreds{}).ServerHandshake(tc); err == nil {
		t.Fatal("peer credentials from a TCP connection")
	}
}

func TestUnixStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	// Leave a socket file nobody serves (no unlink on close).
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Unix(path, UnixOptions{GID: -1})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	// A regular file is never removed.
	reg := filepath.Join(dir, "file")
	os.WriteFile(reg, nil, 0o600)
	if _, err := Unix(reg, UnixOptions{GID: -1}); err == nil {
		t.Fatal("listened over a regular file")
	}
}
