package yang_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	goyang "github.com/openconfig/goyang/pkg/yang"

	kyang "github.com/guildhouse-co/kedge/yang"
)

// containers is the public tree of issue 2: every data container with its
// leaves as name:kind, where kind is the resolved YANG kind, a trailing *
// marks a leaf-list and ! a mandatory leaf. State containers list only what
// they add: TestStateRepeatsConfig checks they repeat their config sibling.
var containers = []struct {
	path   string
	ro     bool
	leaves string
}{
	{"/kedge/system/config", false, "node-name:string cluster:string role:enumeration"},
	{"/kedge/system/state", true, "version:string boot-time:uint64"},
	{"/kedge/posture/config", false, "level:uint8"},
	{"/kedge/posture/state", true, "effective-level:uint8 source:enumeration sequence:uint64"},
	{"/kedge/posture/state/last-transition", true, "from-level:uint8 to-level:uint8 started:uint64 duration-ns:uint64 result:enumeration"},
	{"/kedge/posture/state/last-transition/steps/step/state", true, "index:uint8 name:string started:uint64 duration-ns:uint64 result:enumeration error:string"},
	{"/kedge/posture/cluster/config", false, "level:uint8 object:string"},
	{"/kedge/posture/cluster/state", true, "connected:boolean last-sync:uint64"},
	{"/kedge/posture/history/transition/state", true, "sequence:uint64 from-level:uint8 to-level:uint8 started:uint64 duration-ns:uint64 result:enumeration"},
	{"/kedge/accords/accord/config", false, "level:uint8 overlay-mode:enumeration keepalive-seconds:uint16 health-check-seconds:uint16 handshake:enumeration allowed-session-types:string* underlay-mutation-tiers:enumeration* compiler-frozen:boolean underlay-drift-interval-ms:uint32 route-policy:enumeration notary-sampling-percent:uint8 notary-flush:enumeration notary-payload-hashing:boolean forensic-snapshot:boolean vpp-flow-policy:enumeration"},
	{"/kedge/accords/accord/state", true, ""},
	{"/kedge/mesh/config", false, "interface:string listen-port:uint16 mtu:uint16 addresses:union*"},
	{"/kedge/mesh/state", true, "public-key:string endpoint:string status:enumeration error:string"},
	{"/kedge/mesh/peers/peer/config", false, "name:string public-key:string! endpoint:string allowed-ips:union* persistent-keepalive:uint16 cluster:string critical:boolean reconnect:uint64 owner:string"},
	{"/kedge/mesh/peers/peer/state", true, "last-handshake:uint64 rx-bytes:uint64 tx-bytes:uint64 status:enumeration error:string"},
	{"/kedge/routes/route/config", false, "prefix:union table:uint32 next-hop:union device:string metric:uint32 class:enumeration owner:string tier:enumeration"},
	{"/kedge/routes/route/state", true, "status:enumeration reason:string"},
	{"/kedge/routes/endpoints/endpoint/config", false, "name:string prefix:union! kind:enumeration service:string"},
	{"/kedge/routes/endpoints/endpoint/state", true, ""},
	{"/kedge/pods/config", false, "ipam-pools:union*"},
	{"/kedge/pods/state", true, ""},
	{"/kedge/pods/pod/config", false, "container-id:string ifname:string netns:string namespace:string name:string addresses:union* host-ifname:string tier:enumeration allowed-mode:enumeration allowed-targets:union*"},
	{"/kedge/pods/pod/state", true, "status:enumeration reason:string"},
	{"/kedge/underlay/config", false, "commit-confirm-seconds:uint16"},
	{"/kedge/underlay/state", true, "level:uint8 compiler-frozen:boolean drift-interval-ms:uint32 drift-detected:boolean last-drift-check:uint64 waiting:uint32"},
	{"/kedge/underlay/devices/device/config", false, "name:string address:union port:uint16 vendor:string role:string commit-confirmed:boolean on-change:boolean server-name:string ca-file:string cert-file:string key-file:string username:string password-file:string"},
	{"/kedge/underlay/devices/device/state", true, "status:enumeration reachable:boolean watch:enumeration last-push:uint64 last-error:string applied-sequence:uint64 drift:boolean drift-since:uint64 drift-paths:string* last-sync:uint64"},
	{"/kedge/underlay/vlans/vlan/config", false, "id:uint16 name:string ifname:string addresses:union* monitoring:boolean parent:string"},
	{"/kedge/underlay/vlans/vlan/state", true, "kind:enumeration status:enumeration error:string"},
	{"/kedge/underlay/vlans/vlan/members/member/config", false, "device:leafref port:string untagged:boolean"},
	{"/kedge/underlay/vlans/vlan/members/member/state", true, ""},
	{"/kedge/underlay/vlans/vlan/subinterfaces/subinterface/config", false, "device:leafref port:string addresses:union*"},
	{"/kedge/underlay/vlans/vlan/subinterfaces/subinterface/state", true, ""},
	{"/kedge/underlay/mutations/mutation/config", false, "id:string proposer:string description:string devices:string* vlans:uint16* emergency:boolean execute:boolean tier:enumeration!"},
	{"/kedge/underlay/mutations/mutation/state", true, "status:enumeration reason:string sequence:uint64 intent-sequence:uint64 compiled:uint64 executed:uint64 posture-level:uint8 diff:string*"},
	{"/kedge/underlay/mutations/mutation/results/result/state", true, "device:string status:enumeration error:string"},
	{"/kedge/sessions/session/state", true, "id:string peer:string node:string cluster:string local:boolean tier:enumeration type:enumeration critical:boolean capabilities:enumeration* verification:enumeration initiator-posture:uint8 posture-at-handshake:uint8 effective-posture:uint8 status:enumeration started:uint64 drain-deadline:uint64 closed:uint64 close-reason:string bytes-in:uint64 bytes-out:uint64 frames-in:uint64 frames-out:uint64"},
	{"/kedge/notary/config", false, "sampling-percent-override:uint8 anchor:string"},
	{"/kedge/notary/state", true, "sampling-percent:uint8 flush-mode:enumeration payload-hashing:boolean log-size:uint64 root-hash:string last-flush:uint64 records:uint64 frame-headers:boolean level:uint8 origin:string verifier-key:string last-checkpoint-size:uint64 last-checkpoint-time:uint64 upstream-state:enumeration upstream-error:string last-ack-size:uint64 last-ack-time:uint64 dropped-transits:uint64"},
}

// lists are the keyed lists, with their keys in order.
var lists = []struct {
	path string
	ro   bool
	keys string
}{
	{"/kedge/posture/state/last-transition/steps/step", true, "index"},
	{"/kedge/posture/history/transition", true, "sequence"},
	{"/kedge/accords/accord", false, "level"},
	{"/kedge/mesh/peers/peer", false, "name"},
	{"/kedge/routes/route", false, "prefix table"},
	{"/kedge/routes/endpoints/endpoint", false, "name"},
	{"/kedge/pods/pod", false, "container-id ifname"},
	{"/kedge/underlay/devices/device", false, "name"},
	{"/kedge/underlay/vlans/vlan", false, "id"},
	{"/kedge/underlay/mutations/mutation", false, "id"},
	{"/kedge/underlay/mutations/mutation/results/result", true, "device"},
	{"/kedge/underlay/vlans/vlan/members/member", false, "device port"},
	{"/kedge/underlay/vlans/vlan/subinterfaces/subinterface", false, "device port"},
	{"/kedge/sessions/session", true, "id"},
	{"/kedge/aft/sessions/session", false, "id"},
	{"/kedge/aft/ipv4-entries/ipv4-entry", false, "prefix"},
	{"/kedge/aft/ipv6-entries/ipv6-entry", false, "prefix"},
	{"/kedge/aft/next-hop-groups/next-hop-group", false, "id"},
	{"/kedge/aft/next-hop-groups/next-hop-group/next-hops/next-hop", false, "index"},
	{"/kedge/aft/next-hops/next-hop", false, "index"},
}

// defaults are the YANG defaults that are part of the API.
var defaults = map[string]string{
	"/kedge/posture/config/level":                  "5",
	"/kedge/mesh/config/interface":                 "kedge0",
	"/kedge/mesh/config/listen-port":               "51820",
	"/kedge/mesh/config/mtu":                       "1420",
	"/kedge/mesh/peers/peer/config/critical":       "false",
	"/kedge/routes/route/config/class":             "pod",
	"/kedge/pods/pod/config/tier":                  "operator",
	"/kedge/pods/pod/config/allowed-mode":          "overlay",
	"/kedge/underlay/vlans/vlan/config/monitoring": "false",

	"/kedge/underlay/config/commit-confirm-seconds":             "60",
	"/kedge/underlay/devices/device/config/commit-confirmed":    "false",
	"/kedge/underlay/devices/device/config/on-change":           "true",
	"/kedge/underlay/devices/device/config/port":                "9339",
	"/kedge/underlay/mutations/mutation/config/emergency":       "false",
	"/kedge/underlay/mutations/mutation/config/execute":         "false",
	"/kedge/underlay/vlans/vlan/members/member/config/untagged": "false",
}

// stateTypeChanges are the state leaves whose type deliberately differs from
// their config twin (none now: a mutation names its devices as plain
// strings in config too, so that its history survives a device's removal).
var stateTypeChanges = map[string]string{}

// schemas returns the tree root parsed from the .yang files now. (It once
// also returned ygot's copy in gen/kedge; gen/doc.go says why that went.)
func schemas(t *testing.T) map[string]*goyang.Entry {
	t.Helper()
	set, err := kyang.Load(".")
	if err != nil {
		t.Fatalf("load modules: %v", err)
	}
	return map[string]*goyang.Entry{"yang/*.yang": set.Entry(kyang.RootModule)}
}

func find(root *goyang.Entry, path string) *goyang.Entry {
	e := root
	for _, el := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if e = e.Dir[el]; e == nil {
			return nil
		}
	}
	return e
}

func describe(e *goyang.Entry) string {
	var kind string
	switch {
	case e.IsLeafList():
		kind = e.Type.Kind.String() + "*"
	default:
		kind = e.Type.Kind.String()
	}
	if e.Mandatory == goyang.TSTrue {
		kind += "!"
	}
	return e.Name + ":" + kind
}

func leavesOf(e *goyang.Entry) []string {
	var out []string
	for _, c := range e.Dir {
		if c.IsLeaf() || c.IsLeafList() {
			out = append(out, describe(c))
		}
	}
	slices.Sort(out)
	return out
}

func TestContainers(t *testing.T) {
	for src, root := range schemas(t) {
		for _, c := range containers {
			t.Run(src+c.path, func(t *testing.T) {
				e := find(root, c.path)
				if e == nil || !e.IsContainer() {
					t.Fatalf("%s: not a container in the schema", c.path)
				}
				if e.ReadOnly() != c.ro {
					t.Errorf("%s: read-only %v, want %v", c.path, e.ReadOnly(), c.ro)
				}
				want := strings.Fields(c.leaves)
				if strings.HasSuffix(c.path, "/state") {
					// State repeats the applied config (checked below).
					if cfg := find(root, strings.TrimSuffix(c.path, "state")+"config"); cfg != nil {
						for _, l := range leavesOf(cfg) {
							name, _, _ := strings.Cut(l, ":")
							if k, ok := stateTypeChanges[c.path+"/"+name]; ok {
								l = name + ":" + k
							}
							want = append(want, l)
						}
					}
				}
				slices.Sort(want)
				got := leavesOf(e)
				// A repeated mandatory config leaf is optional in state.
				for i := range want {
					if c.ro {
						want[i] = strings.TrimSuffix(want[i], "!")
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s leaves (-want +got):\n%s", c.path, diff)
				}
				for _, l := range e.Dir {
					if (l.IsLeaf() || l.IsLeafList()) && l.ReadOnly() != c.ro {
						t.Errorf("%s/%s: read-only %v, want %v", c.path, l.Name, l.ReadOnly(), c.ro)
					}
				}
			})
		}
	}
}

func TestLists(t *testing.T) {
	for src, root := range schemas(t) {
		for _, l := range lists {
			t.Run(src+l.path, func(t *testing.T) {
				e := find(root, l.path)
				if e == nil || !e.IsList() {
					t.Fatalf("%s: not a list in the schema", l.path)
				}
				if e.Key != l.keys {
					t.Errorf("%s: keys %q, want %q", l.path, e.Key, l.keys)
				}
				if e.ReadOnly() != l.ro {
					t.Errorf("%s: read-only %v, want %v", l.path, e.ReadOnly(), l.ro)
				}
			})
		}
	}
}

// TestListKeysAreLeafrefs walks every list, documented or not: each key is
// a leafref to the same-named leaf in its config container (state for
// state-only lists), and that leaf exists.
func TestListKeysAreLeafrefs(t *testing.T) {
	for src, root := range schemas(t) {
		n := 0
		kyang.Walk(root, func(e *goyang.Entry) {
			if !e.IsList() {
				return
			}
			n++
			for _, k := range strings.Fields(e.Key) {
				want := "../config/" + k
				if e.ReadOnly() {
					want = "../state/" + k
				}
				kl := e.Dir[k]
				if kl == nil || kl.Type == nil || kl.Type.Kind != goyang.Yleafref || kl.Type.Path != want {
					t.Errorf("%s: list %s key %s is not a leafref to %s", src, kyang.SchemaPath(e), k, want)
					continue
				}
				if find(e, strings.TrimPrefix(want, "../")) == nil {
					t.Errorf("%s: list %s key %s: target %s missing", src, kyang.SchemaPath(e), k, want)
				}
			}
		})
		if n != len(lists) {
			t.Errorf("%s: %d lists in the schema, %d documented in this test", src, n, len(lists))
		}
	}
}

// TestStateRepeatsConfig checks the OpenConfig convention for every config
// container: a state sibling holds the same leaves with the same types.
func TestStateRepeatsConfig(t *testing.T) {
	for src, root := range schemas(t) {
		kyang.Walk(root, func(e *goyang.Entry) {
			if e.Name != "config" || !e.IsContainer() {
				return
			}
			st := e.Parent.Dir["state"]
			if st == nil {
				t.Errorf("%s: %s has no state sibling", src, kyang.SchemaPath(e))
				return
			}
			for name, c := range e.Dir {
				s := st.Dir[name]
				if s == nil {
					t.Errorf("%s: %s/%s not repeated in state", src, kyang.SchemaPath(e), name)
					continue
				}
				want := c.Type.Kind.String()
				if k, ok := stateTypeChanges[kyang.SchemaPath(s)]; ok {
					want = k
				}
				if s.Type.Kind.String() != want {
					t.Errorf("%s: %s is %s in state, want %s", src, kyang.SchemaPath(s), s.Type.Kind, want)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	for src, root := range schemas(t) {
		got := map[string]string{}
		kyang.Walk(root, func(e *goyang.Entry) {
			if d, ok := e.SingleDefaultValue(); ok && !e.ReadOnly() {
				got[kyang.SchemaPath(e)] = d
			}
		})
		if diff := cmp.Diff(defaults, got); diff != "" {
			t.Errorf("%s: config defaults (-want +got):\n%s", src, diff)
		}
	}
}

// TestCheck runs the same checks as make yang-validate.
func TestCheck(t *testing.T) {
	set, err := kyang.Load(".")
	if err != nil {
		t.Fatalf("load modules: %v", err)
	}
	for _, p := range set.Check() {
		t.Error(p)
	}
	if got := len(set.SubModules); got != 10 {
		t.Errorf("%d submodules, want 10", got)
	}
	for _, name := range []string{"kedge", "kedge-types"} {
		m := set.Modules[name]
		if m == nil {
			t.Errorf("module %s missing", name)
			continue
		}
		if len(m.Revision) == 0 || m.Revision[0].Name != "2026-11-26" {
			t.Errorf("module %s: want revision 2026-11-26 first", name)
		}
	}
	for name, m := range set.SubModules {
		if m.BelongsTo == nil || m.BelongsTo.Name != "kedge" {
			t.Errorf("submodule %s does not belong to kedge", name)
		}
		if len(m.Revision) == 0 {
			t.Errorf("submodule %s has no revision", name)
		}
		if m.Description == nil {
			t.Errorf("submodule %s has no description", name)
		}
	}
	if root := set.Root(); root == nil || len(set.Entry(kyang.RootModule).Dir) != 1 {
		t.Errorf("module kedge must have exactly one top-level node, /kedge")
	}
}

func ExampleSet_Tree() {
	set, err := kyang.Load(".")
	if err != nil {
		fmt.Println(err)
		return
	}
	lines := strings.Split(set.Tree(), "\n")
	fmt.Println(strings.Join(lines[:6], "\n"))
	// Output:
	// module: kedge
	//   +--rw kedge
	//      +--rw system
	//      |  +--rw config
	//      |  |  +--rw node-name?   string
	//      |  |  +--rw cluster?     string
}
