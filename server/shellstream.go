package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/auth"
	"github.com/guildhouse-co/kedge/server/shellstream"
)

// shell is the daemon's Shellstream service and the Workload API client
// behind it.
type shell struct {
	svc     *shellstream.Service
	client  *workloadapi.Client
	bundles *lazyBundles
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// startShellstream creates the Shellstream service when a Workload API is
// configured: SATs are verified through it, tiers come from the policy's
// spiffe section, state goes to /kedge/sessions. The service's step joins
// the posture plan; it refuses handshakes until the engine applies the
// first level.
func (d *Daemon) startShellstream(parent context.Context, policy *auth.Policy) error {
	cfg := d.cfg
	if cfg.SPIFFESocket == "" {
		d.log.Info("shellstream off (no --spiffe-socket)")
		return nil
	}
	eps, err := parseEndpoints(cfg.ShellstreamEndpoints)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(cfg.SPIFFESocket))
	if err != nil {
		cancel()
		return fmt.Errorf("start shellstream: %w", err)
	}
	ts, err := shellstream.NewTreeState(d.st)
	if err != nil {
		cancel()
		client.Close()
		return fmt.Errorf("start shellstream: %w", err)
	}
	sh := &shell{client: client, bundles: &lazyBundles{}, cancel: cancel}
	var _ shellstream.Readiness = sh.bundles
	sh.svc, err = shellstream.New(shellstream.Options{
		Logger: d.log.With("component", "shellstream"), WorkloadAPI: client, Bundles: sh.bundles,
		Tiers: policyTiers{policy}, Accords: storeAccords{d.st}, State: ts, ServerID: cfg.ShellstreamID,
		Endpoints: eps, DrainTimeout: cfg.ShellstreamDrain, Recorder: d.transitRecorder(),
	})
	if err != nil {
		cancel()
		client.Close()
		return fmt.Errorf("start shellstream: %w", err)
	}
	sh.svc.Start(ctx)
	// The bundles stream from the agent; an agent that is not up yet
	// leaves handshakes denied as unavailable until it is.
	sh.wg.Add(1)
	go func() {
		defer sh.wg.Done()
		src, err := workloadapi.NewBundleSource(ctx, workloadapi.WithClient(client))
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				d.log.Warn("shellstream: no trust bundles from the Workload API", "addr", cfg.SPIFFESocket, "err", err)
			}
			return
		}
		sh.bundles.set(src)
		d.log.Info("shellstream: trust bundles from the Workload API", "addr", cfg.SPIFFESocket)
		<-ctx.Done()
		src.Close()
	}()
	d.shell = sh
	names := make([]string, 0, len(eps))
	for t, e := range eps {
		names = append(names, string(t)+"="+e.String())
	}
	d.log.Info("shellstream", "id", cfg.ShellstreamID, "workload_api", cfg.SPIFFESocket, "endpoints", names, "drain", cfg.ShellstreamDrain)
	return nil
}

// close ends the sessions (CLOSE with reason shutdown) and the Workload
// API client. It is safe to call more than once and on nil.
func (sh *shell) close() error {
	if sh == nil {
		return nil
	}
	var err error
	sh.once.Do(func() {
		err = sh.svc.Close()
		sh.cancel()
		sh.wg.Wait()
		err = errors.Join(err, sh.client.Close())
	})
	return err
}

// Shellstream returns the daemon's Shellstream service (nil when off).
func (d *Daemon) Shellstream() *shellstream.Service {
	if d.shell == nil {
		return nil
	}
	return d.shell.svc
}

// parseEndpoints reads "type=endpoint,type=endpoint".
func parseEndpoints(s string) (map[session.Type]shellstream.Endpoint, error) {
	out := map[session.Type]shellstream.Endpoint{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, ep, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("parse --shellstream-endpoints %q: want type=endpoint", part)
		}
		t, err := session.ParseType(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("parse --shellstream-endpoints: %w", err)
		}
		e, err := shellstream.ParseEndpoint(strings.TrimSpace(ep))
		if err != nil {
			return nil, fmt.Errorf("parse --shellstream-endpoints: %w", err)
		}
		out[t] = e
	}
	return out, nil
}

// shellAuthBypass lets the Shellstream RPC through the gNMI
// authenticator: Shellstream authenticates each session itself (SAT and
// proof of possession), and its peers hold SVIDs, not gNMI credentials.
func shellAuthBypass(a grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod == shellstream.FullMethod {
			return h(srv, ss)
		}
		return a(srv, ss, info, h)
	}
}

// policyTiers maps SPIFFE IDs through the tier policy.
type policyTiers struct{ p *auth.Policy }

func (t policyTiers) SPIFFETier(id string) (string, bool) {
	tier, ok := t.p.SPIFFETier(id)
	return string(tier), ok
}

// storeAccords reads the effective accord of a level (overrides
// included) from the tree.
type storeAccords struct{ st *store.Store }

func (s storeAccords) Accord(level uint8) (accord.Accord, error) {
	var a accord.Accord
	err := s.st.Read(func(t *tree.Tree) error {
		var err error
		a, err = accord.Effective(level, accord.OverridesFromTree(t))
		return err
	})
	return a, err
}

// lazyBundles answers from the Workload API's bundle source once it has
// arrived, and with an error before.
type lazyBundles struct {
	mu  sync.RWMutex
	src *workloadapi.BundleSource
}

var errNoBundles = errors.New("trust bundles not received from the Workload API yet")

func (b *lazyBundles) set(src *workloadapi.BundleSource) {
	b.mu.Lock()
	b.src = src
	b.mu.Unlock()
}

// Ready reports whether the bundles have arrived.
func (b *lazyBundles) Ready() bool { return b.get() != nil }

func (b *lazyBundles) get() *workloadapi.BundleSource {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.src
}

func (b *lazyBundles) GetJWTBundleForTrustDomain(td spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if s := b.get(); s != nil {
		return s.GetJWTBundleForTrustDomain(td)
	}
	return nil, errNoBundles
}

func (b *lazyBundles) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if s := b.get(); s != nil {
		return s.GetX509BundleForTrustDomain(td)
	}
	return nil, errNoBundles
}
