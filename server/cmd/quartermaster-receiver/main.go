// Command quartermaster-receiver is the reference Quartermaster receiver:
// it serves the ingestion service (kedge.quartermaster.ingest.v1), stores
// every node's notary log under --dir, and acknowledges a checkpoint only
// after verifying it. "quartermaster-receiver dump --dir DIR" prints what
// it holds as JSON lines.
//
//	quartermaster-receiver --listen 127.0.0.1:7900 --dir ./qm
//	quartermaster-receiver --listen :7900 --dir /var/lib/qm --tls-cert qm.pem --tls-key qm.key
//	quartermaster-receiver dump --dir ./qm [--origin kedge.notary/node-1]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/guildhouse-co/kedge/server/notary/receiver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "dump" {
		if err := dump(args[1:], stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "quartermaster-receiver:", err)
			return 1
		}
		return 0
	}
	fs := flag.NewFlagSet("quartermaster-receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7900", "TCP address to serve the ingestion service on")
	dir := fs.String("dir", "./quartermaster", "directory for the received logs")
	cert := fs.String("tls-cert", "", "server certificate (PEM); without it the listener is plaintext, loopback only")
	key := fs.String("tls-key", "", "server private key (PEM)")
	clientCA := fs.String("client-ca", "", "CA bundle; when set, nodes must present a certificate it signed (mTLS)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var opts []grpc.ServerOption
	if *cert != "" || *key != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(stderr, "quartermaster-receiver: load TLS key pair:", err)
			return 2
		}
		tc := &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				fmt.Fprintln(stderr, "quartermaster-receiver: read client CA:", err)
				return 2
			}
			tc.ClientCAs = x509.NewCertPool()
			if !tc.ClientCAs.AppendCertsFromPEM(pem) {
				fmt.Fprintln(stderr, "quartermaster-receiver: client CA holds no certificate")
				return 2
			}
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	} else if !loopback(*listen) {
		fmt.Fprintln(stderr, "quartermaster-receiver: plaintext only on a loopback address; give --tls-cert and --tls-key")
		return 2
	}
	r, err := receiver.New(*dir, log)
	if err != nil {
		fmt.Fprintln(stderr, "quartermaster-receiver:", err)
		return 1
	}
	defer r.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "quartermaster-receiver:", err)
		return 1
	}
	g := grpc.NewServer(opts...)
	r.Register(g)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		g.GracefulStop()
	}()
	log.Info("quartermaster receiver listening", "addr", ln.Addr().String(), "dir", *dir, "tls", *cert != "", "logs", r.Origins())
	if err := g.Serve(ln); err != nil {
		fmt.Fprintln(stderr, "quartermaster-receiver:", err)
		return 1
	}
	return 0
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// dump prints the entries of the logs under dir.
func dump(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "./quartermaster", "the receiver's directory")
	origin := fs.String("origin", "", "only this log (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	r, err := receiver.New(*dir, nil)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, o := range r.Origins() {
		if *origin != "" && o != *origin {
			continue
		}
		cp, _ := r.Checkpoint(o)
		fmt.Fprintf(stderr, "%s: %d entries, root %s\n", o, cp.Size, cp.Hash)
		es, err := r.Entries(o, 0)
		if err != nil {
			return err
		}
		for _, e := range es {
			b, err := protojson.Marshal(e)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, string(b))
		}
	}
	return nil
}
