package kube

// This file is the component's only access to the node's tree: what it
// reads (local) and the operations it writes. When typed accessors for
// the tree exist in gen/, they replace the strings here.

import (
	"slices"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// OwnerKube marks the mesh peers this component manages.
const OwnerKube = "kube"

// Tree prefixes whose changes make the component look again.
var watchedPrefixes = []string{
	"/kedge/mesh/config", "/kedge/mesh/state/public-key", "/kedge/mesh/state/listen-port",
	"/kedge/mesh/peers", "/kedge/system", "/kedge/posture/state/effective-level",
	"/kedge/posture/state/source", "/kedge/posture/state/last-transition/started",
	"/kedge/posture/cluster/config", "/kedge/pods",
}

// peer is one mesh peer's config as this component reads and writes it.
type peer struct {
	Name       string
	PublicKey  string
	Endpoint   string
	AllowedIPs []string
	Cluster    string
	Critical   bool
	Owner      string
}

func (p peer) equal(o peer) bool {
	return p.Name == o.Name && p.PublicKey == o.PublicKey && p.Endpoint == o.Endpoint &&
		slices.Equal(p.AllowedIPs, o.AllowedIPs) && p.Cluster == o.Cluster &&
		p.Critical == o.Critical && p.Owner == o.Owner
}

// podMeta is a registered pod's identity and the shell_state leaves this
// component owns.
type podMeta struct {
	ContainerID, IfName string
	Namespace, Name     string
	Tier, AllowedMode   string
	AllowedTargets      []string
}

// local is what the node's tree says, as far as this component cares.
type local struct {
	PublicKey      string
	ListenPort     uint16
	Addresses      []string
	Cluster, Role  string
	EffectiveLevel uint8
	Source         string
	LastTransition time.Time
	ClusterLevel   uint8 // mirrored config; 0: none
	ClusterObject  string
	Endpoint       string // /kedge/mesh/state/endpoint
	Peers          map[string]peer
	Pods           []podMeta
}

func readLocal(t *tree.Tree) local {
	l := local{Peers: map[string]peer{}}
	k := t.Root().Sub("kedge")
	if k == nil {
		return l
	}
	if m := k.Sub("mesh"); m != nil {
		if c := m.Sub("config"); c != nil {
			l.ListenPort = uint16(c.Get("listen-port").UintVal())
			l.Addresses = strs(c.Get("addresses"))
		}
		if s := m.Sub("state"); s != nil {
			l.PublicKey = s.Get("public-key").Str()
			if p := s.Get("listen-port").UintVal(); p != 0 {
				l.ListenPort = uint16(p) // the port in use wins
			}
			l.Endpoint = s.Get("endpoint").Str()
		}
		if ps := m.Sub("peers"); ps != nil {
			ps.Entries("peer", func(e *tree.Inst) bool {
				c := e.Sub("config")
				if c == nil {
					return true
				}
				p := peer{Name: c.Get("name").Str(), PublicKey: c.Get("public-key").Str(),
					Endpoint: c.Get("endpoint").Str(), AllowedIPs: strs(c.Get("allowed-ips")),
					Cluster: c.Get("cluster").Str(), Critical: c.Get("critical").BoolVal(), Owner: c.Get("owner").Str()}
				l.Peers[p.Name] = p
				return true
			})
		}
	}
	if s := k.Sub("system"); s != nil {
		if st := s.Sub("state"); st != nil {
			l.Cluster, l.Role = st.Get("cluster").Str(), st.Get("role").Str()
		}
		if c := s.Sub("config"); c != nil {
			l.Cluster, l.Role = or(c.Get("cluster").Str(), l.Cluster), or(c.Get("role").Str(), l.Role)
		}
	}
	if p := k.Sub("posture"); p != nil {
		if s := p.Sub("state"); s != nil {
			l.EffectiveLevel = uint8(s.Get("effective-level").UintVal())
			l.Source = s.Get("source").Str()
			if lt := s.Sub("last-transition"); lt != nil {
				if ns := lt.Get("started").UintVal(); ns != 0 {
					l.LastTransition = time.Unix(0, int64(ns))
				}
			}
		}
		if cl := p.Sub("cluster"); cl != nil {
			if c := cl.Sub("config"); c != nil {
				l.ClusterLevel = uint8(c.Get("level").UintVal())
				l.ClusterObject = c.Get("object").Str()
			}
		}
	}
	if pods := k.Sub("pods"); pods != nil {
		pods.Entries("pod", func(e *tree.Inst) bool {
			c := e.Sub("config")
			if c == nil {
				return true
			}
			l.Pods = append(l.Pods, podMeta{
				ContainerID: c.Get("container-id").Str(), IfName: c.Get("ifname").Str(),
				Namespace: c.Get("namespace").Str(), Name: c.Get("name").Str(),
				Tier: c.Get("tier").Str(), AllowedMode: c.Get("allowed-mode").Str(),
				AllowedTargets: strs(c.Get("allowed-targets")),
			})
			return true
		})
	}
	return l
}

// ops builds store operations.
type ops []store.Op

func (o *ops) set(path []*gpb.PathElem, v tree.Value) {
	*o = append(*o, store.Op{Kind: store.OpUpdate, Path: path, Val: tree.Typed(v)})
}

func (o *ops) del(path []*gpb.PathElem) {
	*o = append(*o, store.Op{Kind: store.OpDelete, Path: path})
}

func (o *ops) str(path []*gpb.PathElem, s string) {
	if s == "" {
		o.del(path)
		return
	}
	o.set(path, tree.String(s))
}

func (o *ops) list(path []*gpb.PathElem, ss []string) {
	if len(ss) == 0 {
		o.del(path)
		return
	}
	vs := make([]tree.Value, len(ss))
	for i, s := range ss {
		vs[i] = tree.String(s)
	}
	o.set(path, tree.ListValue(vs))
}

func elems(names ...string) []*gpb.PathElem {
	out := make([]*gpb.PathElem, len(names))
	for i, n := range names {
		out[i] = &gpb.PathElem{Name: n}
	}
	return out
}

func peerPath(name string, leaf ...string) []*gpb.PathElem {
	p := append(elems("kedge", "mesh", "peers"), &gpb.PathElem{Name: "peer", Key: map[string]string{"name": name}})
	if len(leaf) > 0 {
		p = append(p, elems(append([]string{"config"}, leaf...)...)...)
	}
	return p
}

// putPeer writes p as a whole (creating or updating it).
func (o *ops) putPeer(p peer) {
	o.str(peerPath(p.Name, "name"), p.Name)
	o.str(peerPath(p.Name, "public-key"), p.PublicKey)
	o.str(peerPath(p.Name, "endpoint"), p.Endpoint)
	o.list(peerPath(p.Name, "allowed-ips"), p.AllowedIPs)
	o.str(peerPath(p.Name, "cluster"), p.Cluster)
	if p.Critical {
		o.set(peerPath(p.Name, "critical"), tree.Bool(true))
	} else {
		o.del(peerPath(p.Name, "critical"))
	}
	o.str(peerPath(p.Name, "owner"), p.Owner)
}

func (o *ops) delPeer(name string) { o.del(peerPath(name)) }

// clusterLevel writes the mirrored cluster level (0 removes it).
func (o *ops) clusterLevel(level uint8, object string) {
	if level == 0 {
		o.del(elems("kedge", "posture", "cluster", "config", "level"))
		o.del(elems("kedge", "posture", "cluster", "config", "object"))
		return
	}
	o.set(elems("kedge", "posture", "cluster", "config", "level"), tree.Uint(uint64(level)))
	o.str(elems("kedge", "posture", "cluster", "config", "object"), object)
}

// podMeta writes a pod's shell_state leaves.
func (o *ops) podMeta(p podMeta) {
	base := append(elems("kedge", "pods"), &gpb.PathElem{Name: "pod",
		Key: map[string]string{"container-id": p.ContainerID, "ifname": p.IfName}}, &gpb.PathElem{Name: "config"})
	leaf := func(n string) []*gpb.PathElem { return append(slices.Clone(base), &gpb.PathElem{Name: n}) }
	o.str(leaf("tier"), p.Tier)
	o.str(leaf("allowed-mode"), p.AllowedMode)
	o.list(leaf("allowed-targets"), p.AllowedTargets)
}

// State leaves (CommitState): the node's endpoint and the mirror's health.
func (o *ops) endpoint(ep string) { o.str(elems("kedge", "mesh", "state", "endpoint"), ep) }

func (o *ops) clusterState(level uint8, object string, connected bool, lastSync time.Time) {
	base := elems("kedge", "posture", "cluster", "state")
	leaf := func(n string) []*gpb.PathElem { return append(slices.Clone(base), &gpb.PathElem{Name: n}) }
	if level == 0 {
		o.del(leaf("level"))
	} else {
		o.set(leaf("level"), tree.Uint(uint64(level)))
	}
	o.str(leaf("object"), object)
	o.set(leaf("connected"), tree.Bool(connected))
	if !lastSync.IsZero() {
		o.set(leaf("last-sync"), tree.Uint(uint64(lastSync.UnixNano())))
	}
}

func strs(v tree.Value) []string {
	var out []string
	for _, e := range v.Elems() {
		out = append(out, e.Str())
	}
	if len(out) == 0 && v.IsString() {
		out = []string{v.Str()}
	}
	return out
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
