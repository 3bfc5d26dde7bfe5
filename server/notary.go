package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/dataplane/bpfmap"
	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	notarymodel "github.com/guildhouse-co/kedge/models/notary"
	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/listen"
	"github.com/guildhouse-co/kedge/server/notary"
	"github.com/guildhouse-co/kedge/server/posture"
	"github.com/guildhouse-co/kedge/server/shellstream"
)

// notaryParts is the daemon's notary (issue 14): the annotator the store
// is opened with, the component, its query service and the connection to
// Quartermaster.
type notaryParts struct {
	ann *notary.Annotator
	n   *notary.Notary
	svc *notary.Service
	cc  *grpc.ClientConn
	// kernelRoutes lists the kernel's routes for the forensic snapshot,
	// once the route backend runs.
	mu           sync.Mutex
	kernelRoutes func() ([]string, error)
}

// notaryStoreOptions prepares the store for the notary: every config
// commit carries its annotation, and the log is kept until the notary
// holds it.
func (d *Daemon) notaryStoreOptions(o *store.Options) {
	if d.cfg.Notary != "on" {
		return
	}
	d.nt = &notaryParts{ann: notary.NewAnnotator(identityOf)}
	o.Annotate = d.nt.ann.Annotate
	o.KeepLog = true
}

// identityOf is the writer of a commit: the gNMI caller the interceptors
// authenticated.
func identityOf(ctx context.Context) (notarymodel.Writer, bool) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return notarymodel.Writer{}, false
	}
	return notarymodel.Writer{Identity: id.Name, Tier: string(id.Tier), Method: string(id.Method)}, true
}

// startNotary opens the notary, catches it up with the store and starts
// it under ctx; its service answers at read tier.
func (d *Daemon) startNotary(ctx context.Context, read func(ctx context.Context) error) error {
	if d.nt == nil {
		return nil
	}
	cfg := d.cfg
	log := d.log.With("component", "notary")
	o := notary.Options{Dir: filepath.Join(cfg.DataDir, "notary"), Node: cfg.NodeName, Store: d.st, CommitLog: d.st,
		Annotator: d.nt.ann, Logger: log, Endpoint: cfg.Quartermaster,
		KernelRoutes: func(context.Context) ([]string, error) {
			d.nt.mu.Lock()
			f := d.nt.kernelRoutes
			d.nt.mu.Unlock()
			if f == nil {
				return nil, nil
			}
			return f()
		}}
	if cfg.Quartermaster != "" {
		creds, err := quartermasterCreds(cfg.Quartermaster, cfg.QuartermasterCA, cfg.QuartermasterCert, cfg.QuartermasterKey, cfg.QuartermasterInsecure)
		if err != nil {
			return err
		}
		if cfg.QuartermasterInsecure && !listen.IsLoopback(cfg.Quartermaster) {
			log.Warn("shipping the notary log to Quartermaster in plaintext", "quartermaster", cfg.Quartermaster)
		}
		if d.nt.cc, err = grpc.NewClient(cfg.Quartermaster, grpc.WithTransportCredentials(creds)); err != nil {
			return fmt.Errorf("connect to quartermaster: %w", err)
		}
		o.Upstream = d.nt.cc
	}
	n, err := notary.Open(o)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		n.Close()
		return err
	}
	d.nt.n = n
	d.nt.svc = notary.NewService(n, read)
	return nil
}

func quartermasterCreds(addr, ca, cert, key string, plain bool) (credentials.TransportCredentials, error) {
	if plain {
		return insecure.NewCredentials(), nil
	}
	host, _, _ := net.SplitHostPort(addr)
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("read quartermaster CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read quartermaster CA %s: no certificates", ca)
		}
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("load quartermaster client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return credentials.NewTLS(tc), nil
}

// registerNotary adds the query service to a gRPC server.
func (d *Daemon) registerNotary(g *grpc.Server) {
	if d.nt != nil && d.nt.svc != nil {
		d.nt.svc.Register(g)
	}
}

// notarySteps are the posture steps the notary contributes: its fidelity
// (StageNotary) and the forensic snapshot, which it records as an
// artifact (without the notary the snapshot is still kept in the store).
func (d *Daemon) notarySteps() []posture.Step {
	var emit posture.ForensicEmitter
	var steps []posture.Step
	if d.nt != nil && d.nt.n != nil {
		emit = d.nt.n.EmitForensic
		steps = append(steps, d.nt.n.Step())
	}
	return append(steps, posture.ForensicStep(d.st, emit))
}

// onPostureReport records every posture transition as an artifact.
func (d *Daemon) onPostureReport(r posture.Report) {
	if d.nt != nil && d.nt.n != nil {
		d.nt.n.RecordTransition(r)
	}
}

// setKernelRoutes gives the forensic snapshot the route backend's view of
// the kernel.
func (d *Daemon) setKernelRoutes(f func() ([]string, error)) {
	if d.nt == nil {
		return
	}
	d.nt.mu.Lock()
	d.nt.kernelRoutes = f
	d.nt.mu.Unlock()
}

// Notary returns the daemon's notary (nil with --notary off).
func (d *Daemon) Notary() *notary.Notary {
	if d.nt == nil {
		return nil
	}
	return d.nt.n
}

func (d *Daemon) closeNotary() error {
	if d.nt == nil {
		return nil
	}
	var err error
	if d.nt.n != nil {
		err = d.nt.n.Close()
		d.nt.n = nil
	}
	if d.nt.cc != nil {
		d.nt.cc.Close()
		d.nt.cc = nil
	}
	return err
}

// level1Allowlist wraps the BPF backend so the level-1 egress allowlist
// always holds the Quartermaster endpoint (the seed flushes every record
// to it at level 1) and the monitoring endpoints the routes keep at level
// 1, and nothing else.
type level1Allowlist struct {
	b     posture.BPFMapSetter
	d     *Daemon
	qm    string
	cache []netip.Prefix // the last resolution of qm
}

func (d *Daemon) level1Allowlist(b posture.BPFMapSetter) posture.BPFMapSetter {
	return &level1Allowlist{b: b, d: d, qm: d.cfg.Quartermaster}
}

func (a *level1Allowlist) Set(ctx context.Context, cfg bpfmap.Config) error {
	cfg.Allowlist = append(cfg.Allowlist, a.quartermaster(ctx)...)
	_ = a.d.st.Read(func(t *tree.Tree) error {
		cfg.Allowlist = append(cfg.Allowlist, level1Endpoints(t)...)
		return nil
	})
	return a.b.Set(ctx, cfg)
}

// quartermaster resolves the endpoint's host; at level 1 the resolver may
// be unreachable, so the last answer is kept.
func (a *level1Allowlist) quartermaster(ctx context.Context) []netip.Prefix {
	if a.qm == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(a.qm)
	if err != nil {
		return a.cache
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Prefix{netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())}
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		a.d.log.Warn("resolve the quartermaster endpoint for the level-1 allowlist; keeping the last answer", "host", host, "err", err)
		return a.cache
	}
	var out []netip.Prefix
	for _, ip := range ips {
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	a.cache = out
	return out
}

// level1Endpoints are the service endpoints level 1 keeps reachable:
// monitoring endpoints, and any endpoint of the quartermaster service.
func level1Endpoints(t *tree.Tree) []netip.Prefix {
	var out []netip.Prefix
	for in := range kedgetree.Of(t).Kedge().Routes().Endpoints().Endpoint().All() {
		c := in.Config()
		kind, _ := c.Kind()
		svc, _ := c.Service()
		if kind != kedgepath.EndpointKindMonitoring && svc != accord.ServiceQuartermaster {
			continue
		}
		pfx, _ := c.Prefix()
		if p, err := netip.ParsePrefix(pfx); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// transitRecorder hands Shellstream's session transits to the notary
// (nil without the notary, so Shellstream emits none).
func (d *Daemon) transitRecorder() shellstream.Recorder {
	if d.nt == nil || d.nt.n == nil {
		return nil
	}
	return notaryRecorder{d.nt.n}
}

type notaryRecorder struct{ n *notary.Notary }

// Transit records one transit; it never blocks (RecordTransit drops when
// the notary's queue is full, and counts it).
func (r notaryRecorder) Transit(e shellstream.Event) {
	t := notarymodel.Transit{
		SessionID: e.SessionID, Kind: string(e.Kind),
		// The node's own level is the seed's posture_level_at_transit
		// ("while the cluster was at level 3"); the session's governing
		// level (the stricter of both sides) is kept beside it.
		Level: e.LocalLevel, SessionLevel: e.PostureLevel, Time: e.Time,
		PeerSPIFFEID: e.Peer, PeerNode: e.Node, PeerCluster: e.Cluster, Tier: e.Tier, SessionType: e.Type,
		Reason: e.Reason,
	}
	for _, f := range e.FrameHeaders {
		t.Frames = append(t.Frames, notarymodel.FrameHeader{Inbound: f.Inbound, Type: f.Kind, Seq: f.Seq,
			Length: uint32(min(f.PayloadBytes, 1<<31)), Time: f.Time, PayloadSHA256: f.PayloadSHA256})
	}
	r.n.RecordTransit(t)
}
