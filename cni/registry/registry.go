// Package registry is the CNI plugin's view of the daemon's pod registry:
// /kedge/pods in the daemon's tree, reached with gNMI over the daemon's
// unix socket. It depends only on grpc, the gNMI protobufs and the
// generated typed paths (gen/kedgepath, which depends on nothing else),
// never on the daemon's packages, so that the plugin binary stays small
// and starts fast; every call is one short RPC with the caller's deadline.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
)

// DefaultSocket is where the daemon listens unless configured otherwise.
const DefaultSocket = "/run/kedge/kedge.sock"

// ReasonAddressInUse is the google.rpc.ErrorInfo reason (domain "kedge")
// of a Set the daemon's uniqueness rule refused because it would give one
// address to two attachments: models/rules.ReasonPodAddressInUse. This
// package keeps its own copy so the plugin links none of the daemon's
// packages; the registry tests check the two agree, against the real rule.
const ReasonAddressInUse = "POD_ADDRESS_IN_USE"

// errorDomain is the ErrorInfo domain of the daemon's reasons.
const errorDomain = "kedge"

// Sentinels callers branch on.
var (
	// ErrUnavailable: the daemon could not be reached (socket missing,
	// refused, or the deadline passed). CNI callers map it to "try again
	// later".
	ErrUnavailable = errors.New("daemon unavailable")
	// ErrConflict: another attachment already holds an address the Set
	// tried to register.
	ErrConflict = errors.New("address conflict")
)

// Pod is one attachment as registered under /kedge/pods/pod.
type Pod struct {
	ContainerID string
	IfName      string
	Netns       string
	Namespace   string
	Name        string
	HostIfName  string
	Tier        string
	AllowedMode string
	Addresses   []netip.Prefix
}

// ID is the attachment's identity in log lines and sweep reports.
func (p Pod) ID() string { return p.ContainerID + "/" + p.IfName }

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	socket string
	conn   *grpc.ClientConn
	gnmi   gpb.GNMIClient
}

// Dial prepares a client for the daemon's socket. No connection is made
// until the first call; a missing socket fails here, fast, with
// ErrUnavailable.
func Dial(socket string) (*Client, error) {
	if socket == "" {
		socket = DefaultSocket
	}
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("stat socket %s: %w: %w", socket, ErrUnavailable, err)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w: %w", socket, ErrUnavailable, err)
	}
	// Start connecting now: the caller usually has local work (netns,
	// veth) to overlap with the handshake.
	conn.Connect()
	return &Client{socket: socket, conn: conn, gnmi: gpb.NewGNMIClient(conn)}, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Ping asks the daemon for its capabilities: the cheapest proof that it
// is up and answering.
func (c *Client) Ping(ctx context.Context) error {
	if _, err := c.gnmi.Capabilities(ctx, &gpb.CapabilityRequest{}); err != nil {
		return c.wrap("ping daemon", err)
	}
	return nil
}

// Pools returns /kedge/pods/config/ipam-pools (empty when unset).
func (c *Client) Pools(ctx context.Context) ([]netip.Prefix, error) {
	resp, err := c.gnmi.Get(ctx, &gpb.GetRequest{
		Path:     []*gpb.Path{kedgepath.Root().Kedge().Pods().Config().IpamPools().Path()},
		Type:     gpb.GetRequest_CONFIG,
		Encoding: gpb.Encoding_PROTO,
	})
	if status.Code(err) == codes.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, c.wrap("get ipam pools", err)
	}
	var out []netip.Prefix
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			for _, s := range strs(u.GetVal()) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return nil, fmt.Errorf("parse ipam pool %q: %w", s, err)
				}
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// Pods returns every registered attachment's config.
func (c *Client) Pods(ctx context.Context) ([]Pod, error) {
	return c.pods(ctx, kedgepath.Root().Kedge().Pods().PodAny().Config().Path())
}

// Addresses returns every attachment with only its identity and
// addresses filled in: what allocation needs, at a fraction of the
// response size of Pods (one leaf per pod instead of nine).
func (c *Client) Addresses(ctx context.Context) ([]Pod, error) {
	return c.pods(ctx, kedgepath.Root().Kedge().Pods().PodAny().Config().Addresses().Path())
}

func (c *Client) pods(ctx context.Context, path *gpb.Path) ([]Pod, error) {
	resp, err := c.gnmi.Get(ctx, &gpb.GetRequest{
		Path:     []*gpb.Path{path},
		Type:     gpb.GetRequest_CONFIG,
		Encoding: gpb.Encoding_PROTO,
	})
	if status.Code(err) == codes.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, c.wrap("get pods", err)
	}
	byID := map[[2]string]*Pod{}
	var order [][2]string
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			elems := append(slices.Clone(n.GetPrefix().GetElem()), u.GetPath().GetElem()...)
			var id [2]string
			for _, e := range elems {
				if cid, ifname, err := podList.ParseKeys(e); err == nil {
					id = [2]string{cid, ifname}
				}
			}
			if id[0] == "" {
				continue
			}
			p := byID[id]
			if p == nil {
				p = &Pod{ContainerID: id[0], IfName: id[1]}
				byID[id] = p
				order = append(order, id)
			}
			if err := p.setLeaf(schemaPath(elems), u.GetVal()); err != nil {
				return nil, err
			}
		}
	}
	out := make([]Pod, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// The pod config leaves a response may carry, by schema path.
var (
	podList = kedgepath.Root().Kedge().Pods().PodAny()
	podCfg  = podList.Config()
)

// schemaPath renders elems' names only: the schema path of the node they
// name.
func schemaPath(elems []*gpb.PathElem) string {
	var b strings.Builder
	for _, e := range elems {
		b.WriteByte('/')
		b.WriteString(e.GetName())
	}
	return b.String()
}

func (p *Pod) setLeaf(schema string, v *gpb.TypedValue) error {
	s := strs(v)
	one := ""
	if len(s) > 0 {
		one = s[0]
	}
	switch schema {
	case podCfg.Netns().SchemaPath():
		p.Netns = one
	case podCfg.Namespace().SchemaPath():
		p.Namespace = one
	case podCfg.Name().SchemaPath():
		p.Name = one
	case podCfg.HostIfname().SchemaPath():
		p.HostIfName = one
	case podCfg.Tier().SchemaPath():
		p.Tier = one
	case podCfg.AllowedMode().SchemaPath():
		p.AllowedMode = one
	case podCfg.Addresses().SchemaPath():
		for _, a := range s {
			pf, err := netip.ParsePrefix(a)
			if err != nil {
				return fmt.Errorf("parse pod address %q: %w", a, err)
			}
			p.Addresses = append(p.Addresses, pf)
		}
	}
	return nil
}

// strs flattens a scalar or leaf-list value to strings.
func strs(v *gpb.TypedValue) []string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return []string{x.StringVal}
	case *gpb.TypedValue_LeaflistVal:
		var out []string
		for _, e := range x.LeaflistVal.GetElement() {
			out = append(out, strs(e)...)
		}
		return out
	case *gpb.TypedValue_JsonIetfVal:
		return jsonStrs(x.JsonIetfVal)
	case *gpb.TypedValue_JsonVal:
		return jsonStrs(x.JsonVal)
	}
	return nil
}

func jsonStrs(b []byte) []string {
	var one string
	if json.Unmarshal(b, &one) == nil {
		return []string{one}
	}
	var many []string
	if json.Unmarshal(b, &many) == nil {
		return many
	}
	return nil
}

func podPath(containerID, ifname string) kedgepath.Kedge_Pods_PodPath {
	return kedgepath.Root().Kedge().Pods().Pod(containerID, ifname)
}

// podJSON is the JSON_IETF body of a pod's config container.
type podJSON struct {
	ContainerID string   `json:"container-id"`
	IfName      string   `json:"ifname"`
	Netns       string   `json:"netns,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Name        string   `json:"name,omitempty"`
	HostIfName  string   `json:"host-ifname,omitempty"`
	Tier        string   `json:"tier,omitempty"`
	AllowedMode string   `json:"allowed-mode,omitempty"`
	Addresses   []string `json:"addresses,omitempty"`
}

// Register creates or replaces the attachment's config in one Set. With
// the daemon's uniqueness rule installed, a Set that would reuse an address
// another attachment holds fails as a whole with ErrConflict, which is
// what makes allocation race-free: the check and the claim are one commit.
func (c *Client) Register(ctx context.Context, p Pod) error {
	body := podJSON{ContainerID: p.ContainerID, IfName: p.IfName, Netns: p.Netns, Namespace: p.Namespace,
		Name: p.Name, HostIfName: p.HostIfName, Tier: p.Tier, AllowedMode: p.AllowedMode}
	for _, a := range p.Addresses {
		body.Addresses = append(body.Addresses, a.String())
	}
	js, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode pod %s: %w", p.ID(), err)
	}
	_, err = c.gnmi.Set(ctx, &gpb.SetRequest{Replace: []*gpb.Update{{
		Path: podPath(p.ContainerID, p.IfName).Config().Path(),
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: js}},
	}}})
	if err != nil {
		return c.wrap("register pod "+p.ID(), err)
	}
	return nil
}

// Remove deletes the attachment's entry; removing one that is not there
// succeeds (gNMI delete semantics), which keeps CNI DEL idempotent.
func (c *Client) Remove(ctx context.Context, containerID, ifname string) error {
	_, err := c.gnmi.Set(ctx, &gpb.SetRequest{Delete: []*gpb.Path{podPath(containerID, ifname).Path()}})
	if err != nil {
		return c.wrap("remove pod "+containerID+"/"+ifname, err)
	}
	return nil
}

// wrap classifies an RPC error once: unreachable daemon, address
// conflict, or anything else with the daemon's message.
func (c *Client) wrap(what string, err error) error {
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s via %s: %w: %s", what, c.socket, ErrUnavailable, st.Message())
	case hasReason(st, ReasonAddressInUse):
		return fmt.Errorf("%s: %w: %s", what, ErrConflict, st.Message())
	}
	return fmt.Errorf("%s: %s: %s", what, st.Code(), st.Message())
}

// GNMI exposes the raw client for callers that need a path this package
// does not wrap (tests, the installer's pool seeding).
func (c *Client) GNMI() gpb.GNMIClient { return c.gnmi }

// hasReason reports whether st carries the daemon's ErrorInfo reason.
func hasReason(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain && info.GetReason() == reason {
			return true
		}
	}
	return false
}
