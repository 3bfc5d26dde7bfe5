package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Where a node listens by default: the daemon's socket under /run, else
// under its default data dir (where it goes when /run/kedge is not
// usable).
const (
	defaultSocket   = "/run/kedge/kedge.sock"
	fallbackSocket  = "/var/lib/kedge/kedge.sock"
	envAddr         = "KEDGE_ADDR"
	envUser         = "KEDGE_USER"
	envPassword     = "KEDGE_PASSWORD"
	maxMessageBytes = 256 << 20
)

// connOpts are the global connection flags.
type connOpts struct {
	addr         string
	tlsCA        string
	tlsCert      string
	tlsKey       string
	serverName   string
	skipVerify   bool
	insecure     bool
	user         string
	passwordFile string
}

// defaultAddr is $KEDGE_ADDR, else the daemon's socket.
func defaultAddr() string {
	if a := os.Getenv(envAddr); a != "" {
		return a
	}
	if _, err := os.Stat(defaultSocket); err != nil {
		if _, err := os.Stat(fallbackSocket); err == nil {
			return "unix://" + fallbackSocket
		}
	}
	return "unix://" + defaultSocket
}

func (o connOpts) unix() bool { return strings.HasPrefix(o.addr, "unix:") }

// password returns the password for --user: from --password-file, else
// $KEDGE_PASSWORD, else a prompt when stdin is a terminal. It never
// depends on a terminal alone: scripts use the file or the environment.
func (o connOpts) password(stdin io.Reader, stderr io.Writer) (string, error) {
	if o.passwordFile != "" {
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	if p := os.Getenv(envPassword); p != "" {
		return p, nil
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(stderr, "password for %s: ", o.user)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	return "", fmt.Errorf("%w: --user %s needs a password: --password-file FILE or $%s (no terminal to prompt on)", errUsage, o.user, envPassword)
}

// creds returns the transport credentials: none on the unix socket (the
// daemon identifies the caller by its uid) and with --insecure (the
// daemon allows plaintext on loopback only), TLS otherwise, with a client
// certificate for mTLS.
func (o connOpts) creds() (credentials.TransportCredentials, error) {
	if o.unix() || o.insecure {
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.skipVerify, ServerName: o.serverName}
	if tc.ServerName == "" {
		if h, _, err := net.SplitHostPort(o.addr); err == nil {
			tc.ServerName = h
		}
	}
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read --tls-ca %s: no PEM certificates", o.tlsCA)
		}
		tc.RootCAs = pool
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return nil, fmt.Errorf("%w: --tls-cert and --tls-key go together", errUsage)
	}
	if o.tlsCert != "" {
		c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return credentials.NewTLS(tc), nil
}

// dial connects to the node: a gNMI client and the connection (other
// services of the node use it too; close it when done).
func (o connOpts) dial(stdin io.Reader, stderr io.Writer) (gpb.GNMIClient, *grpc.ClientConn, error) {
	if o.addr == "" {
		return nil, nil, fmt.Errorf("%w: --addr is empty", errUsage)
	}
	creds, err := o.creds()
	if err != nil {
		return nil, nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes))}
	if o.user != "" {
		pw, err := o.password(stdin, stderr)
		if err != nil {
			return nil, nil, err
		}
		// gNMI's username/password metadata, as gnmic and gnmi_cli send it.
		md := metadata.Pairs("username", o.user, "password", pw)
		opts = append(opts,
			grpc.WithUnaryInterceptor(func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, inv grpc.UnaryInvoker, co ...grpc.CallOption) error {
				return inv(metadata.NewOutgoingContext(ctx, md), m, req, reply, cc, co...)
			}),
			grpc.WithStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, m string, s grpc.Streamer, co ...grpc.CallOption) (grpc.ClientStream, error) {
				return s(metadata.NewOutgoingContext(ctx, md), d, cc, m, co...)
			}))
	}
	cc, err := grpc.NewClient(o.addr, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", o.addr, err)
	}
	return gpb.NewGNMIClient(cc), cc, nil
}

// readLines delivers stdin's lines on a channel, closed at EOF.
func readLines(r io.Reader) <-chan string {
	c := make(chan string)
	go func() {
		defer close(c)
		s := bufio.NewScanner(r)
		for s.Scan() {
			c <- strings.TrimSpace(s.Text())
		}
	}()
	return c
}

// errUsage marks a malformed command line (exit 2).
var errUsage = errors.New("usage")
