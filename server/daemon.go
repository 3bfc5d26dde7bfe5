// Package server wires the Kedge daemon together: it opens the tree
// store, bootstraps the users file, loads the tier policy, builds the
// gNMI target and serves it on the TCP listener (TLS by default, mTLS
// with a CA, plaintext only on loopback) and on the unix socket (peer
// credentials), opens the dataplane backends this machine allows and
// starts the components over them with the posture engine, and shuts all
// of it down in order. It holds wiring only; the pieces live in the
// subpackages: config (settings), gcpolicy (the collector's policy),
// auth (identities, tiers), listen (listeners), probe (what this machine
// allows the backends), posture (the engine), and the components routes,
// mesh, system (system state) and pods (the pod registry sweep), each
// with one lifecycle (New, Start(ctx), Close) and the posture step it
// contributes, and gribi (the gRIBI service, registered beside the gNMI
// target on both listeners).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/target"
	"github.com/guildhouse-co/kedge/models/rules"
	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/gribi"
	"github.com/guildhouse-co/kedge/server/kube"
	"github.com/guildhouse-co/kedge/server/listen"
	"github.com/guildhouse-co/kedge/server/probe"
	"github.com/guildhouse-co/kedge/yang"
)

// ShutdownTimeout bounds the graceful part of a shutdown: in-flight RPCs
// get this long, then open streams (Subscribe) are cut.
const ShutdownTimeout = 5 * time.Second

// Daemon is a running node. Create it with Start; stop it with Shutdown.
type Daemon struct {
	cfg   config.Config
	log   *slog.Logger
	st    *store.Store
	tgt   *target.Server
	grpcs []*grpc.Server
	tcpLn net.Listener
	unixL net.Listener
	errc  chan error
	strms *streams
	dp    *dataplane
	shell *shell
	authn *auth.Authenticator
	gribi *gribi.Service
	nt    *notaryParts
	obs   *observer
	kube  *kube.Component
	// claims are the host-wide resources held (see claim.go).
	claims *claims
}

// Start is StartContext with a background context: the daemon runs until
// Shutdown.
func Start(cfg config.Config, log *slog.Logger) (*Daemon, error) {
	return StartContext(context.Background(), cfg, log)
}

// StartContext brings the daemon up on a resolved configuration and
// returns once every listener is accepting. Everything it starts in the
// background (the posture engine, the components) runs under a context
// derived from ctx: it stops when ctx ends or at Shutdown.
func StartContext(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Daemon, err error) {
	// Refuse plaintext off the loopback before touching anything.
	if cfg.Listen != "" && cfg.Insecure && !listen.IsLoopback(cfg.Listen) {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, listen.ErrInsecureNonLoopback)
	}
	if err := applyGCPolicy(cfg, log); err != nil {
		return nil, err
	}
	applyTimeSlice(cfg, log)
	d := &Daemon{cfg: cfg, log: log, errc: make(chan error, 3), strms: newStreams()}
	defer func() {
		if err != nil {
			d.closeAll()
		}
	}()
	// 0711: others may traverse to a socket placed here but cannot list
	// the directory; every secret in it is 0600 on its own.
	if err := os.MkdirAll(cfg.DataDir, 0o711); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	log.Info("data dir", "path", cfg.DataDir, "node", cfg.NodeName, "netns", cfg.NetNS)
	// The data dir is this daemon's before anything in it is read.
	if err := d.claimDataDir(); err != nil {
		return nil, err
	}

	pwPath := filepath.Join(cfg.DataDir, "master.password")
	created, err := auth.Bootstrap(cfg.Users, pwPath)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created users file with user master; its password is in a 0600 file", "users", cfg.Users, "password_file", pwPath)
	} else {
		log.Info("users file", "path", cfg.Users)
	}
	pws, err := auth.NewPasswords(cfg.Users, runtime.NumCPU(), log)
	if err != nil {
		return nil, err
	}
	policy := auth.DefaultPolicy()
	if cfg.Policy != "" {
		if policy, err = auth.LoadPolicy(cfg.Policy); err != nil {
			return nil, err
		}
		log.Info("policy", "path", cfg.Policy)
	} else {
		log.Info("policy", "path", "built-in (root is master on the unix socket)")
	}
	authn := auth.NewAuthenticator(policy, pws, log)
	d.authn = authn

	probed := probe.Run(probe.Host())
	for _, r := range probed.All() {
		log.Info("dataplane backend", "backend", r.Backend, "available", r.Available, "why", r.Reason)
	}

	schema, err := yang.Schema()
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	so := store.Options{Logger: log}
	d.notaryStoreOptions(&so)
	if d.st, err = store.Open(filepath.Join(cfg.DataDir, "store"), schema, so); err != nil {
		return nil, err
	}
	// Every host-wide resource, listeners included, before any dataplane:
	// a second daemon fails here, naming the holder, having changed
	// nothing (see claims).
	if err := d.claim(probed, d.st); err != nil {
		return nil, err
	}
	// The semantic rules run in every commit they concern; the pod address
	// rule among them makes a concurrent claim of one address fail there
	// (pod addresses are claimed in the Set that registers the pod).
	for _, r := range rules.All() {
		d.st.AddValidator(r.Prefix, r.Check)
	}
	if err := d.startObserver(ctx); err != nil {
		return nil, err
	}
	if d.tgt, err = target.New(d.st, target.Options{Logger: log, Auth: auth.Authorizer{Policy: policy}}); err != nil {
		return nil, fmt.Errorf("create gnmi target: %w", err)
	}
	if err := d.startNotary(ctx, auth.Authorizer{Policy: policy}.Read); err != nil {
		return nil, err
	}
	if err := d.startShellstream(ctx, policy); err != nil {
		return nil, err
	}
	if err := d.startDataplane(ctx, probed); err != nil {
		return nil, err
	}
	if err := d.startGRIBI(ctx, policy); err != nil {
		return nil, err
	}
	if err := d.startKube(); err != nil {
		return nil, err
	}

	if d.claims.tcp != nil {
		if err := d.serveTCP(authn, pwPath); err != nil {
			return nil, err
		}
	}
	if d.claims.unix != nil {
		d.serveUnix(authn, pwPath)
	}
	if d.tcpLn == nil && d.unixL == nil {
		return nil, errors.New("start daemon: no listener (--listen and --socket both off)")
	}
	d.obs.serving.Store(true)
	if srv := d.obs.srv; srv != nil {
		go func() {
			if err := <-srv.Err(); err != nil {
				d.errc <- fmt.Errorf("serve metrics: %w", err)
			}
		}()
	}
	return d, nil
}

func (d *Daemon) newGRPC(creds credentials.TransportCredentials, a *auth.Authenticator) *grpc.Server {
	unary, stream := d.obs.interceptors()
	g := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(d.cfg.MaxMsgBytes),
		grpc.ChainUnaryInterceptor(append(unary, a.Unary)...),
		grpc.ChainStreamInterceptor(append(stream, shellAuthBypass(a.Stream), d.strms.interceptor)...),
		// Subscribe notifications are encoded once per commit for all
		// streams that select the same changes.
		d.tgt.GRPCServerOption(),
	)
	d.tgt.Register(g)
	d.gribi.Register(g)
	d.registerNotary(g)
	if d.shell != nil {
		d.shell.svc.Register(g)
	}
	d.grpcs = append(d.grpcs, g)
	return g
}

// serveTCP serves gNMI on the bound TCP listener.
func (d *Daemon) serveTCP(a *auth.Authenticator, pwPath string) error {
	cfg := d.cfg
	var creds credentials.TransportCredentials
	hint := ""
	if cfg.Insecure {
		creds = insecure.NewCredentials()
		hint = "--insecure"
	} else {
		tc, generated, err := listen.ServerTLS(listen.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA},
			filepath.Join(cfg.DataDir, "tls"), []string{cfg.NodeName})
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(tc)
		hint = "--tls-ca <ca.pem>"
		if generated != "" {
			d.log.Info("TLS with a self-signed certificate", "cert", generated)
			hint = "--skip-verify"
		}
		if cfg.TLSCA != "" {
			d.log.Info("mTLS: clients must present a certificate signed by the CA", "ca", cfg.TLSCA)
			hint += " --tls-cert <client.pem> --tls-key <client.key>"
		}
	}
	ln := d.claims.tcp
	d.tcpLn = ln
	g := d.newGRPC(creds, a)
	go func() { d.errc <- serveErr("tcp", g.Serve(ln)) }()
	d.log.Info("gNMI listening", "tcp", ln.Addr().String(), "tls", !cfg.Insecure, "mtls", cfg.TLSCA != "")
	d.log.Info("connect with gnmic",
		"cmd", fmt.Sprintf("gnmic -a %s %s -u master -p \"$(cat %s)\" capabilities", ln.Addr(), hint, pwPath))
	return nil
}

// serveUnix serves gNMI on the bound unix socket.
func (d *Daemon) serveUnix(a *auth.Authenticator, pwPath string) {
	ln := d.claims.unix
	d.unixL = ln
	g := d.newGRPC(listen.PeerCreds{}, a)
	go func() { d.errc <- serveErr("unix", g.Serve(ln)) }()
	d.log.Info("gNMI listening", "unix", d.cfg.Socket, "mode", "0660", "group", d.cfg.SocketGroup)
	msg, args := localHint(a, os.Geteuid(), os.Getegid(), d.cfg.Socket, pwPath)
	d.log.Info(msg, args...)
}

// localHint is the start log's "connect locally" line, for the user who
// started the daemon (the one likely to try it): a uid or gid the policy
// maps connects as itself; any other must log in with a password over the
// socket, and is told how to map its uid to a tier instead.
func localHint(a *auth.Authenticator, uid, gid int, socket, pwPath string) (string, []any) {
	if t, who, ok := a.UnixTier(uint32(uid), uint32(gid)); ok {
		return "connect locally (identity: your uid/gid)", []any{"identity", who, "tier", t,
			"cmd", fmt.Sprintf("gnmic -a unix://%s --insecure capabilities", socket)}
	}
	return "connect locally with a password (the policy gives your uid no tier)", []any{"uid", uid,
		"cmd", fmt.Sprintf("gnmic -a unix://%s --insecure -u master -p \"$(cat %s)\" capabilities", socket, pwPath),
		"or", fmt.Sprintf("map the uid to a tier in a --policy file (unix: {uids: {%d: operator}}) to connect as yourself", uid)}
}

func serveErr(which string, err error) error {
	if err == nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return fmt.Errorf("serve %s: %w", which, err)
}

// TCPAddr is the TCP listener's address (nil without one).
func (d *Daemon) TCPAddr() net.Addr {
	if d.tcpLn == nil {
		return nil
	}
	return d.tcpLn.Addr()
}

// SocketPath is the unix socket's path ("" without one).
func (d *Daemon) SocketPath() string {
	if d.unixL == nil {
		return ""
	}
	return d.cfg.Socket
}

// Err reports a listener that stopped serving on its own.
func (d *Daemon) Err() <-chan error { return d.errc }

// Shutdown stops the listeners gracefully: new connections are refused,
// open streams (Subscribe) are ended, in-flight unary RPCs (a Set's
// commit) may finish within timeout, then anything left is cut. Then it
// closes the target and the store.
func (d *Daemon) Shutdown(timeout time.Duration) error {
	// Shellstream sessions are told the node is going (CLOSE, reason
	// shutdown) before the listeners stop.
	if err := d.shell.close(); err != nil {
		d.log.Warn("close shellstream", "err", err)
	}
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, g := range d.grpcs {
			wg.Go(g.GracefulStop)
		}
		wg.Wait()
		close(done)
	}()
	d.strms.cancelAll()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.log.Warn("graceful stop timed out; cutting open streams", "timeout", timeout)
		for _, g := range d.grpcs {
			g.Stop()
		}
		<-done
	}
	return d.closeAll()
}

func (d *Daemon) closeAll() error {
	var errs []error
	// The observation listener goes first: from here on the node is
	// neither live nor ready, and the follower lets go of the store.
	if err := d.obs.close(); err != nil {
		errs = append(errs, err)
	}
	for _, g := range d.grpcs {
		g.Stop()
	}
	if d.tgt != nil {
		d.tgt.Close()
		d.tgt = nil
	}
	if err := d.shell.close(); err != nil {
		errs = append(errs, fmt.Errorf("close shellstream: %w", err))
	}
	if d.authn != nil {
		d.authn.Close()
		d.authn = nil
	}
	// The cluster engine stops before the dataplane and the store: it
	// writes into the tree.
	if d.kube != nil {
		_ = d.kube.Close()
		d.kube = nil
	}
	if d.gribi != nil {
		d.gribi.Close()
		d.gribi = nil
	}
	// The dataplane stops before the store closes: its last state writes
	// need the store, and its backends keep the kernel as it is.
	if err := d.dp.close(); err != nil {
		errs = append(errs, fmt.Errorf("close dataplane: %w", err))
	}
	d.dp = nil
	// The notary stops after the engine (which calls its step and emits
	// through it) and before the store it follows.
	if err := d.closeNotary(); err != nil {
		errs = append(errs, fmt.Errorf("close notary: %w", err))
	}
	if d.st != nil {
		if err := d.st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		d.st = nil
	}
	// Last: the listeners bound but never served, then the locks, once
	// nothing of this daemon uses what they guard.
	if err := d.claims.close(); err != nil {
		errs = append(errs, fmt.Errorf("release host resources: %w", err))
	}
	d.claims = nil
	return errors.Join(errs...)
}

// Run starts the daemon and serves until ctx is done (SIGTERM/SIGINT in
// main) or a listener fails, then shuts down. Every context the daemon
// uses derives from ctx.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	return RunWith(ctx, cfg, log, nil)
}

// RunWith is Run, calling started (when not nil) once the daemon serves.
func RunWith(ctx context.Context, cfg config.Config, log *slog.Logger, started func(*Daemon)) error {
	d, err := StartContext(ctx, cfg, log)
	if err != nil {
		return err
	}
	if started != nil {
		started(d)
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case serveErr = <-d.errc:
		log.Error("listener failed; shutting down", "err", serveErr)
	}
	return errors.Join(serveErr, d.Shutdown(ShutdownTimeout))
}
