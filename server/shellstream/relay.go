package shellstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Endpoint is the local service a session type's DATA is relayed to: a
// unix socket or a loopback TCP address, so what sits behind Kedge is
// reachable only through it.
type Endpoint struct {
	Network string // "unix" or "tcp"
	Address string
}

// ParseEndpoint reads "unix:/path", a bare absolute path, or a loopback
// "host:port" ("tcp:127.0.0.1:2222", "[::1]:2222").
func ParseEndpoint(s string) (Endpoint, error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		s = strings.TrimPrefix(s, "unix:")
		fallthrough
	case strings.HasPrefix(s, "/"):
		if !strings.HasPrefix(s, "/") {
			return Endpoint{}, fmt.Errorf("parse endpoint %q: a unix socket path must be absolute", s)
		}
		return Endpoint{Network: "unix", Address: s}, nil
	}
	s = strings.TrimPrefix(s, "tcp:")
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parse endpoint %q: want unix:/path or a loopback address:port: %w", s, err)
	}
	if !ap.Addr().IsLoopback() {
		return Endpoint{}, fmt.Errorf("parse endpoint %q: not a loopback address", s)
	}
	return Endpoint{Network: "tcp", Address: ap.String()}, nil
}

func (e Endpoint) String() string { return e.Network + ":" + e.Address }

func (e Endpoint) dial(ctx context.Context, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(ctx, e.Network, e.Address)
}

// Preamble is the first line the endpoint reads on a new connection
// (JSON, newline-terminated): who the session is and what it may do.
// Everything after it is the session's byte stream.
type Preamble struct {
	Version        int      `json:"kedge-shellstream"`
	Session        string   `json:"session"`
	Peer           string   `json:"peer"`
	Tier           string   `json:"tier"`
	Type           string   `json:"type"`
	Node           string   `json:"node"`
	Cluster        string   `json:"cluster"`
	Capabilities   []string `json:"capabilities"`
	EffectiveLevel uint8    `json:"effective-level"`
}

func writePreamble(c net.Conn, l *live, timeout time.Duration) error {
	b, err := json.Marshal(Preamble{Version: 1, Session: l.id, Peer: l.peer, Tier: l.tier, Type: string(l.typ),
		Node: l.node, Cluster: l.cluster, Capabilities: capsToStrings(l.caps), EffectiveLevel: l.effective})
	if err != nil {
		return fmt.Errorf("encode preamble: %w", err)
	}
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write preamble: %w", err)
	}
	return c.SetWriteDeadline(time.Time{})
}
