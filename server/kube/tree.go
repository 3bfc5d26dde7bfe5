package kube

// This file is the component's only access to the node's tree: what it
// reads (local) and the operations it writes, through the typed readers
// and paths generated from yang/ (gen/kedgetree, gen/kedgepath).

import (
	"slices"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// OwnerKube marks the mesh peers this component manages.
const OwnerKube = "kube"

// Tree prefixes whose changes make the component look again.
var watchedPrefixes = func() []string {
	k := kedgepath.Root().Kedge()
	return []string{
		k.Mesh().Config().SchemaPath(), k.Mesh().State().PublicKey().SchemaPath(),
		k.Mesh().State().ListenPort().SchemaPath(), k.Mesh().Peers().SchemaPath(), k.System().SchemaPath(),
		k.Posture().State().EffectiveLevel().SchemaPath(), k.Posture().State().Source().SchemaPath(),
		k.Posture().State().LastTransition().Started().SchemaPath(),
		k.Posture().Cluster().Config().SchemaPath(), k.Pods().SchemaPath(),
	}
}()

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
	k := kedgetree.Of(t).Kedge()
	mc, ms := k.Mesh().Config(), k.Mesh().State()
	if p, ok := mc.ListenPort(); ok {
		l.ListenPort = p
	}
	l.Addresses = mc.Addresses()
	l.PublicKey, _ = ms.PublicKey()
	if p, ok := ms.ListenPort(); ok && p != 0 {
		l.ListenPort = p // the port in use wins
	}
	l.Endpoint, _ = ms.Endpoint()
	for e := range k.Mesh().Peers().Peer().All() {
		c := e.Config()
		var p peer
		p.Name, _ = c.Name()
		p.PublicKey, _ = c.PublicKey()
		p.Endpoint, _ = c.Endpoint()
		p.AllowedIPs = c.AllowedIps()
		p.Cluster, _ = c.Cluster()
		p.Critical, _ = c.Critical()
		p.Owner, _ = c.Owner()
		if p.Name == "" {
			p.Name, _ = e.Name()
		}
		l.Peers[p.Name] = p
	}
	sysState, sysConfig := k.System().State(), k.System().Config()
	l.Cluster, _ = sysState.Cluster()
	if v, ok := sysConfig.Cluster(); ok && v != "" {
		l.Cluster = v
	}
	if v, ok := sysState.Role(); ok {
		l.Role = string(v)
	}
	if v, ok := sysConfig.Role(); ok && v != "" {
		l.Role = string(v)
	}
	ps := k.Posture().State()
	l.EffectiveLevel, _ = ps.EffectiveLevel()
	if v, ok := ps.Source(); ok {
		l.Source = string(v)
	}
	if ns, ok := ps.LastTransition().Started(); ok && ns != 0 {
		l.LastTransition = time.Unix(0, int64(ns))
	}
	cc := k.Posture().Cluster().Config()
	l.ClusterLevel, _ = cc.Level()
	l.ClusterObject, _ = cc.Object()
	for e := range k.Pods().Pod().All() {
		c := e.Config()
		var m podMeta
		m.ContainerID, _ = e.ContainerId()
		m.IfName, _ = e.Ifname()
		m.Namespace, _ = c.Namespace()
		m.Name, _ = c.Name()
		if v, ok := c.Tier(); ok {
			m.Tier = string(v)
		}
		if v, ok := c.AllowedMode(); ok {
			m.AllowedMode = string(v)
		}
		m.AllowedTargets = c.AllowedTargets()
		l.Pods = append(l.Pods, m)
	}
	return l
}

// ops builds store operations.
type ops []store.Op

func (o *ops) add(op store.Op) { *o = append(*o, op) }

// putPeer writes p as a whole (creating or updating it).
func (o *ops) putPeer(p peer) {
	c := kedgepath.Root().Kedge().Mesh().Peers().Peer(p.Name).Config()
	o.add(store.Update(c.Name(), p.Name))
	o.add(store.Update(c.PublicKey(), p.PublicKey))
	o.str(c.Endpoint(), p.Endpoint)
	o.list(c.AllowedIps(), p.AllowedIPs)
	o.str(c.Cluster(), p.Cluster)
	if p.Critical {
		o.add(store.Update(c.Critical(), true))
	} else {
		o.add(store.Delete(c.Critical()))
	}
	o.str(c.Owner(), p.Owner)
}

func (o *ops) delPeer(name string) {
	o.add(store.Delete(kedgepath.Root().Kedge().Mesh().Peers().Peer(name)))
}

// clusterLevel writes the mirrored cluster level (0 removes it).
func (o *ops) clusterLevel(level uint8, object string) {
	c := kedgepath.Root().Kedge().Posture().Cluster().Config()
	if level == 0 {
		o.add(store.Delete(c.Level()))
		o.add(store.Delete(c.Object()))
		return
	}
	o.add(store.Update(c.Level(), level))
	o.str(c.Object(), object)
}

// podMeta writes a pod's shell_state leaves.
func (o *ops) podMeta(p podMeta) {
	c := kedgepath.Root().Kedge().Pods().Pod(p.ContainerID, p.IfName).Config()
	if p.Tier == "" {
		o.add(store.Delete(c.Tier()))
	} else {
		o.add(store.Update(c.Tier(), kedgepath.Tier(p.Tier)))
	}
	if p.AllowedMode == "" {
		o.add(store.Delete(c.AllowedMode()))
	} else {
		o.add(store.Update(c.AllowedMode(), kedgepath.PodAllowedMode(p.AllowedMode)))
	}
	o.list(c.AllowedTargets(), p.AllowedTargets)
}

// State leaves (CommitState): the node's endpoint and the mirror's health.
func (o *ops) endpoint(ep string) { o.str(kedgepath.Root().Kedge().Mesh().State().Endpoint(), ep) }

func (o *ops) clusterState(level uint8, object string, connected bool, lastSync time.Time) {
	s := kedgepath.Root().Kedge().Posture().Cluster().State()
	if level == 0 {
		o.add(store.Delete(s.Level()))
	} else {
		o.add(store.Update(s.Level(), level))
	}
	o.str(s.Object(), object)
	o.add(store.Update(s.Connected(), connected))
	if !lastSync.IsZero() {
		o.add(store.Update(s.LastSync(), uint64(lastSync.UnixNano())))
	}
}

// str sets a string leaf, or deletes it for "".
func (o *ops) str(p store.Leaf[string], v string) {
	if v == "" {
		o.add(store.Delete(p))
		return
	}
	o.add(store.Update(p, v))
}

// list sets a leaf-list, or deletes it when empty.
func (o *ops) list(p store.Leaf[[]string], vs []string) {
	if len(vs) == 0 {
		o.add(store.Delete(p))
		return
	}
	o.add(store.Update(p, vs))
}
