package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/server/listen"
)

// Authenticator turns a connection's credentials into an Identity. Its
// interceptors attach the identity to the RPC's context or fail the RPC
// with codes.Unauthenticated before any handler runs.
type Authenticator struct {
	policy    *Policy
	passwords *Passwords
	log       *slog.Logger
	rejects   *rejectLog
}

// NewAuthenticator returns an authenticator; passwords may be nil (no
// password logins).
func NewAuthenticator(policy *Policy, passwords *Passwords, log *slog.Logger) *Authenticator {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{policy: policy, passwords: passwords, log: log, rejects: newRejectLog(log)}
}

// Close ends the authenticator's background work: the summary of
// rejected authentications still being counted is logged now.
func (a *Authenticator) Close() { a.rejects.close() }

// UnixTier says which tier, if any, the policy gives a unix socket peer
// with these credentials, and the identity name it would get.
func (a *Authenticator) UnixTier(uid, gid uint32) (Tier, string, bool) {
	return a.policy.UnixTier(uid, gid)
}

// errUnauthenticated is what callers see: no hint of which part failed.
var errUnauthenticated = status.Error(codes.Unauthenticated, "authentication required: client certificate, username/password metadata, or unix socket peer with a tier")

// Identify authenticates the RPC whose context is ctx.
func (a *Authenticator) Identify(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, errors.New("identify: no peer in context")
	}
	switch info := p.AuthInfo.(type) {
	case listen.PeerCred:
		if t, name, ok := a.policy.UnixTier(info.UID, info.GID); ok {
			return Identity{Name: name, Tier: t, Method: MethodUnix}, nil
		}
		// A peer the policy does not map (it got through the socket's
		// 0660 mode by group) may still log in with a password.
		if _, hasUser := userPass(ctx); !hasUser {
			return Identity{}, fmt.Errorf("identify unix peer uid %d gid %d pid %d: no tier in the policy", info.UID, info.GID, info.PID)
		}
	case credentials.TLSInfo:
		if len(info.State.VerifiedChains) > 0 && len(info.State.PeerCertificates) > 0 {
			name := certName(info.State.PeerCertificates[0])
			if t, ok := a.policy.CertificateTier(name); ok {
				return Identity{Name: name, Tier: t, Method: MethodCertificate}, nil
			}
			// Fall through: a verified but unmapped certificate may still
			// come with a password.
			if _, hasUser := userPass(ctx); !hasUser {
				return Identity{}, fmt.Errorf("identify certificate %q: no tier in the policy", name)
			}
		}
	}
	return a.password(ctx)
}

func (a *Authenticator) password(ctx context.Context) (Identity, error) {
	up, ok := userPass(ctx)
	if !ok {
		return Identity{}, errors.New("identify: no credentials")
	}
	if a.passwords == nil {
		return Identity{}, errors.New("identify: password logins are disabled")
	}
	t, err := a.passwords.Check(peerKey(ctx), up[0], up[1])
	if err != nil {
		return Identity{}, fmt.Errorf("identify user %q: %w", up[0], err)
	}
	return Identity{Name: up[0], Tier: t, Method: MethodPassword}, nil
}

// userPass returns gNMI's username/password metadata (the convention of
// gnmic, gnmi_cli and the gNMI specification's authentication note).
func userPass(ctx context.Context) ([2]string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return [2]string{}, false
	}
	u, p := md.Get("username"), md.Get("password")
	if len(u) != 1 || len(p) != 1 || u[0] == "" {
		return [2]string{}, false
	}
	return [2]string{u[0], p[0]}, true
}

// certName is a certificate's identity: the subject CN, else the first
// DNS SAN, else the first URI SAN.
func certName(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.URIs) > 0:
		return c.URIs[0].String()
	}
	return ""
}

// peerKey names the RPC's peer for the login limiter: its IP address
// (an IPv6 one by its /64), or uid:N for a unix socket peer.
func peerKey(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	if pc, ok := p.AuthInfo.(listen.PeerCred); ok {
		return fmt.Sprintf("uid:%d", pc.UID)
	}
	if p.Addr == nil {
		return ""
	}
	return PeerKey(p.Addr.String())
}

func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	id, err := a.Identify(ctx)
	if err != nil {
		user, _ := userPass(ctx)
		reason := "no usable credentials"
		switch {
		case errors.Is(err, ErrRateLimited):
			reason = "rate limited"
		case errors.Is(err, ErrBadCredentials):
			reason = "bad username or password"
		}
		a.log.Debug("rejected unauthenticated rpc", "method", method, "peer", peerKey(ctx), "err", err)
		a.rejects.record(reason, user[0], peerKey(ctx), method, err)
		if errors.Is(err, ErrRateLimited) {
			// Saying so is no hint to a guesser (the limit is per address
			// and per name, known or not) and tells a user what to do.
			return nil, status.Error(codes.ResourceExhausted, err.Error())
		}
		return nil, errUnauthenticated
	}
	a.log.Debug("authenticated rpc", "method", method, "identity", id.String())
	return WithIdentity(ctx, id), nil
}

// Unary is the unary server interceptor.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

// Stream is the stream server interceptor.
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &identStream{ServerStream: ss, ctx: ctx})
}

type identStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identStream) Context() context.Context { return s.ctx }
