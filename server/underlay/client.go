package underlay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	mu "github.com/guildhouse-co/kedge/models/underlay"
)

// ErrCredentials: a device's credential files are missing, unsafe or
// invalid; nothing is sent to it until its config changes.
var ErrCredentials = errors.New("device credentials")

// client is one device's gNMI client over TLS (mTLS with a client
// certificate, a password in metadata when configured). Credentials are
// read from files in the credentials directory when it is made.
type client struct {
	cc *grpc.ClientConn
	gc gpb.GNMIClient
}

// credFile resolves a file name from a device's config inside dir: names
// are relative to the credentials directory and may not leave it.
func credFile(dir, name string) (string, error) {
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("%w: %q is not a file name inside the credentials directory", ErrCredentials, name)
	}
	if dir == "" {
		return "", fmt.Errorf("%w: %q named but no credentials directory is configured", ErrCredentials, name)
	}
	return filepath.Join(dir, name), nil
}

// readSecret reads a file that must not be readable by group or others.
func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by group or others (mode %04o); chmod 600 it", ErrCredentials, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
	}
	return b, nil
}

// tlsConfig builds the client TLS configuration of a device.
func tlsConfig(d mu.Device, dir string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: d.ServerName}
	if c.ServerName == "" {
		c.ServerName = d.Address.String()
	}
	if d.CAFile != "" {
		p, err := credFile(dir, d.CAFile)
		if err != nil {
			return nil, err
		}
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrCredentials, p)
		}
	}
	if (d.CertFile == "") != (d.KeyFile == "") {
		return nil, fmt.Errorf("%w: cert-file and key-file go together", ErrCredentials)
	}
	if d.CertFile != "" {
		cp, err := credFile(dir, d.CertFile)
		if err != nil {
			return nil, err
		}
		kp, err := credFile(dir, d.KeyFile)
		if err != nil {
			return nil, err
		}
		certPEM, err := os.ReadFile(cp)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCredentials, err)
		}
		keyPEM, err := readSecret(kp)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("%w: %s and %s: %v", ErrCredentials, cp, kp, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// password is per-RPC username/password metadata (only over TLS).
type password struct{ user, pass string }

func (p password) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"username": p.user, "password": p.pass}, nil
}
func (password) RequireTransportSecurity() bool { return true }

// dial makes a device's client. It fails only on configuration and
// credential errors; reaching the device happens at the first RPC.
func dial(d mu.Device, dir string) (*client, error) {
	if !d.Address.IsValid() {
		return nil, fmt.Errorf("%w: no address", ErrCredentials)
	}
	tc, err := tlsConfig(d, dir)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}
	if d.Username != "" || d.PasswordFile != "" {
		var pw []byte
		if d.PasswordFile != "" {
			p, err := credFile(dir, d.PasswordFile)
			if err != nil {
				return nil, err
			}
			if pw, err = readSecret(p); err != nil {
				return nil, err
			}
		}
		opts = append(opts, grpc.WithPerRPCCredentials(password{user: d.Username, pass: strings.TrimRight(string(pw), "\r\n")}))
	}
	cc, err := grpc.NewClient(d.Endpoint(), opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.Endpoint(), err)
	}
	return &client{cc: cc, gc: gpb.NewGNMIClient(cc)}, nil
}

func (c *client) close() { c.cc.Close() }

// snapshot reads the owned paths into a canonical snapshot, for drift
// checks (no GoStructs: see models/underlay.Snapshot).
func (c *client) snapshot(ctx context.Context) (mu.Snapshot, error) {
	resp, err := c.gc.Get(ctx, &gpb.GetRequest{Path: mu.OwnedPaths(), Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		return nil, fmt.Errorf("get configuration: %w", err)
	}
	s := mu.Snapshot{}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			if err := s.Add(joinPath(n.GetPrefix(), u.GetPath()), jsonOf(u.GetVal())); err != nil {
				return nil, fmt.Errorf("get configuration: %w", err)
			}
		}
	}
	return s, nil
}

// containerSnapshot reads owned containers one by one (a Get naming a
// path that holds nothing fails whole with NOT_FOUND, so each goes alone).
func (c *client) containerSnapshot(ctx context.Context, paths []*gpb.Path) (mu.Snapshot, error) {
	s := mu.Snapshot{}
	for _, p := range paths {
		resp, err := c.gc.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_JSON_IETF})
		if status.Code(err) == codes.NotFound {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get %v: %w", p.GetElem(), err)
		}
		for _, n := range resp.GetNotification() {
			for _, u := range n.GetUpdate() {
				if err := s.Add(joinPath(n.GetPrefix(), u.GetPath()), jsonOf(u.GetVal())); err != nil {
					return nil, fmt.Errorf("get configuration: %w", err)
				}
			}
		}
	}
	return s, nil
}

func joinPath(pfx, p *gpb.Path) *gpb.Path {
	return &gpb.Path{Elem: append(append([]*gpb.PathElem{}, pfx.GetElem()...), p.GetElem()...)}
}

func jsonOf(v *gpb.TypedValue) []byte {
	if js := v.GetJsonIetfVal(); js != nil {
		return js
	}
	return v.GetJsonVal()
}

// set sends one SetRequest; with a commit id it is a commit-confirmed
// commit that rolls back after rollback unless confirmed.
func (c *client) set(ctx context.Context, req *gpb.SetRequest) error {
	if _, err := c.gc.Set(ctx, req); err != nil {
		return fmt.Errorf("set configuration: %w", err)
	}
	return nil
}

// commitRequest is the extension that makes a Set a commit-confirmed
// commit rolling back after rollback.
func commitRequest(id string, rollback time.Duration) *gnmi_ext.Extension {
	return &gnmi_ext.Extension{Ext: &gnmi_ext.Extension_Commit{Commit: &gnmi_ext.Commit{Id: id,
		Action: &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(rollback)}}}}}
}

func (c *client) confirm(ctx context.Context, id string) error {
	_, err := c.gc.Set(ctx, &gpb.SetRequest{Extension: []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: &gnmi_ext.Commit{Id: id,
		Action: &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}}}}}}})
	if err != nil {
		return fmt.Errorf("confirm commit %s: %w", id, err)
	}
	return nil
}

func (c *client) cancel(ctx context.Context, id string) error {
	_, err := c.gc.Set(ctx, &gpb.SetRequest{Extension: []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: &gnmi_ext.Commit{Id: id,
		Action: &gnmi_ext.Commit_Cancel{Cancel: &gnmi_ext.CommitCancel{}}}}}}})
	if err != nil {
		return fmt.Errorf("cancel commit %s: %w", id, err)
	}
	return nil
}

// subscribe streams the owned paths ON_CHANGE: each notification is
// passed to fn in order (a nil one marks the end of the initial sync). It
// returns when the stream ends; Unimplemented means the device has no
// subscriptions.
func (c *client) subscribe(ctx context.Context, fn func(*gpb.Notification)) error {
	sc, err := c.gc.Subscribe(ctx)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	var subs []*gpb.Subscription
	for _, p := range mu.OwnedPaths() {
		subs = append(subs, &gpb.Subscription{Path: p, Mode: gpb.SubscriptionMode_ON_CHANGE})
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_JSON_IETF, UpdatesOnly: false, Subscription: subs,
	}}}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		r, err := sc.Recv()
		if err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		switch {
		case r.GetSyncResponse():
			fn(nil)
		case r.GetUpdate() != nil:
			fn(r.GetUpdate())
		}
	}
}

// unreachable reports whether err means the device could not be reached
// (transport, TLS, timeout), as opposed to the device answering no.
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}
