// Package plugin is the logic of kedge-cni, the CNI plugin of type
// "kedge": ADD, DEL, CHECK, STATUS and GC over the CNI skel, wiring a veth
// pair into the pod's network namespace and registering the attachment in
// the daemon's tree (/kedge/pods) with gNMI over the daemon's unix socket.
// The daemon, not the plugin, owns the pod's host routes and reprograms
// them on posture changes; the plugin never polls posture.
//
// Addressing. With ipam.type "kedge" (the default) addresses come from the
// built-in allocator (package cni/ipam): the pools are the conf's
// ipam.pools, else its subnet, else /kedge/pods/config/ipam-pools, and the
// allocation is claimed in the same Set that registers the pod. Any other
// ipam.type is a delegated IPAM plugin, run with pkg/invoke.
//
// Gateway. The pod's address sits on its interface as a /32 (/128) and
// every route leaves through the pool's first address, the gateway, which
// the plugin puts on the host-side veth as a /32 (/128): the same gateway
// on every host veth, no address spent per pod, no bridge, and pod-to-pod
// traffic on the node goes through the host's routes (which the daemon
// programs from the registration's addresses and host-ifname). The pod
// gets an on-link route to the gateway and a default route via it.
//
// Rollback. ADD records an undo step for each thing it did (delegated
// IPAM allocation, veth, registration) and runs them in reverse on any
// failure, so a failed ADD leaves no veth, allocation or registration.
// DEL is idempotent and succeeds when the netns or the pod is gone.
package plugin

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Plugin-specific CNI error codes (the specification leaves 100 and up to
// plugins).
const (
	// ErrPoolExhausted: no free address in any pool.
	ErrPoolExhausted uint = 100
	// ErrRegistry: the daemon refused the registration for a reason other
	// than being unreachable.
	ErrRegistry uint = 101
	// ErrLink: creating or configuring the veth pair failed.
	ErrLink uint = 102
	// ErrDelegate: the delegated IPAM plugin failed.
	ErrDelegate uint = 103
)

// Supported lists the CNI versions kedge-cni speaks.
var Supported = version.PluginSupports("0.4.0", "1.0.0", "1.1.0")

// IPAM is the conf's ipam section.
type IPAM struct {
	// Type is "kedge" (or empty) for the built-in allocator, else the name
	// of a delegated IPAM plugin on CNI_PATH.
	Type string `json:"type,omitempty"`
	// Pools override the daemon's /kedge/pods/config/ipam-pools.
	Pools []string `json:"pools,omitempty"`
}

// NetConf is kedge-cni's network configuration.
type NetConf struct {
	types.PluginConf
	// IPAM shadows the embedded generic section (JSON takes the shallower
	// field) so the pools parse.
	IPAM IPAM `json:"ipam"`
	// Socket is the daemon's unix socket (default /run/kedge/kedge.sock).
	Socket string `json:"socket,omitempty"`
	// Subnet is a single pool, shorthand for ipam.pools.
	Subnet string `json:"subnet,omitempty"`
	// MTU of the veth pair (0: kernel default).
	MTU int `json:"mtu,omitempty"`
	// Tier and AllowedMode are the registration's defaults; CNI_ARGS
	// (KEDGE_TIER, KEDGE_MODE) and runtimeConfig override them.
	Tier        string `json:"tier,omitempty"`
	AllowedMode string `json:"allowedMode,omitempty"`
	// TimeoutMS bounds each call to the daemon (default 2000; STATUS uses
	// at most 500).
	TimeoutMS     int `json:"timeoutMs,omitempty"`
	RuntimeConfig struct {
		Tier        string `json:"kedgeTier,omitempty"`
		AllowedMode string `json:"kedgeMode,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	// ValidAttachments is GC's keep list.
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

var (
	validTiers = map[string]bool{"": true, "master": true, "site-owner": true, "operator": true, "observer": true}
	validModes = map[string]bool{"": true, "overlay": true, "underlay": true}
)

// parseConf decodes and validates stdin, and the prevResult if any.
// Errors are CNI errors with the specification's codes.
func parseConf(stdin []byte) (*NetConf, error) {
	c := &NetConf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "decode network config", err.Error())
	}
	if c.Name == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", "missing name")
	}
	if !builtinIPAM(c) && len(c.IPAM.Pools) > 0 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", "ipam.pools apply only to ipam type kedge")
	}
	if _, err := c.pools(); err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", err.Error())
	}
	if !validTiers[c.Tier] || !validModes[c.AllowedMode] {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config",
			fmt.Sprintf("tier %q or allowedMode %q unknown", c.Tier, c.AllowedMode))
	}
	if c.MTU < 0 || c.MTU > 65535 {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network config", fmt.Sprintf("mtu %d", c.MTU))
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "decode prevResult", err.Error())
		}
	}
	return c, nil
}

func builtinIPAM(c *NetConf) bool { return c.IPAM.Type == "" || c.IPAM.Type == "kedge" }

// pools returns the conf's own pools (nil: ask the daemon).
func (c *NetConf) pools() ([]netip.Prefix, error) {
	raw := c.IPAM.Pools
	if len(raw) == 0 && c.Subnet != "" {
		raw = []string{c.Subnet}
	}
	var out []netip.Prefix
	for _, s := range raw {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("parse pool %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (c *NetConf) timeout() time.Duration {
	if c.TimeoutMS > 0 {
		return time.Duration(c.TimeoutMS) * time.Millisecond
	}
	return 2 * time.Second
}

// podArgs are the CNI_ARGS kedge-cni reads; unknown ones are ignored.
type podArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE types.UnmarshallableString //nolint:revive // names are the CNI_ARGS keys
	K8S_POD_NAME      types.UnmarshallableString //nolint:revive
	KEDGE_TIER        types.UnmarshallableString //nolint:revive
	KEDGE_MODE        types.UnmarshallableString //nolint:revive
}

// identity resolves tier and mode: CNI_ARGS over runtimeConfig over conf.
func (c *NetConf) identity(rawArgs string) (ns, name, tier, mode string, err error) {
	a := podArgs{}
	a.IgnoreUnknown = true
	if err := types.LoadArgs(rawArgs, &a); err != nil {
		return "", "", "", "", types.NewError(types.ErrInvalidEnvironmentVariables, "parse CNI_ARGS", err.Error())
	}
	tier = first(string(a.KEDGE_TIER), c.RuntimeConfig.Tier, c.Tier, "operator")
	mode = first(string(a.KEDGE_MODE), c.RuntimeConfig.AllowedMode, c.AllowedMode, "overlay")
	if !validTiers[tier] || !validModes[mode] {
		return "", "", "", "", types.NewError(types.ErrInvalidNetworkConfig, "invalid tier or mode",
			fmt.Sprintf("tier %q mode %q", tier, mode))
	}
	return string(a.K8S_POD_NAMESPACE), string(a.K8S_POD_NAME), tier, mode, nil
}

func first(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
