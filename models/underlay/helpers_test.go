package underlay

import (
	"net/netip"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// treeWith returns a tree whose /kedge/underlay is the RFC 7951 JSON doc,
// validated by the daemon's schema.
func treeWith(t *testing.T, doc string) *tree.Tree {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	tr := tree.New(schema)
	tx, err := tr.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tree.ParsePath("/kedge/underlay")
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Update(p, &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(doc)}}); err != nil {
		t.Fatalf("update /kedge/underlay: %v", err)
	}
	if err := tx.Validate(); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	return tr
}

// sampleDoc is two switches and four VLANs: tagged and untagged members, a
// trunk with a native VLAN, IPv4 and IPv6 routed subinterfaces, a VLAN on
// one switch only and one on none.
const sampleDoc = `{
  "config": {"commit-confirm-seconds": 30},
  "devices": {"device": [
    {"name": "sw1", "config": {"name": "sw1", "address": "192.0.2.1", "commit-confirmed": true, "ca-file": "ca.pem", "role": "access"}},
    {"name": "sw2", "config": {"name": "sw2", "address": "192.0.2.2", "port": 57400, "on-change": false, "username": "kedge", "password-file": "sw2.pw"}}
  ]},
  "vlans": {"vlan": [
    {"id": 10, "config": {"id": 10, "name": "users"},
     "members": {"member": [
       {"device": "sw2", "port": "eth2", "config": {"device": "sw2", "port": "eth2", "untagged": true}},
       {"device": "sw1", "port": "eth1", "config": {"device": "sw1", "port": "eth1"}},
       {"device": "sw1", "port": "eth2", "config": {"device": "sw1", "port": "eth2", "untagged": true}}
     ]},
     "subinterfaces": {"subinterface": [
       {"device": "sw1", "port": "eth9", "config": {"device": "sw1", "port": "eth9", "addresses": ["10.10.0.1/24", "2001:db8:10::1/64"]}}
     ]}},
    {"id": 20, "config": {"id": 20, "name": "servers"},
     "members": {"member": [
       {"device": "sw1", "port": "eth1", "config": {"device": "sw1", "port": "eth1"}},
       {"device": "sw2", "port": "eth1", "config": {"device": "sw2", "port": "eth1"}}
     ]}},
    {"id": 30, "config": {"id": 30},
     "members": {"member": [
       {"device": "sw1", "port": "eth1", "config": {"device": "sw1", "port": "eth1", "untagged": true}}
     ]}},
    {"id": 40, "config": {"id": 40, "name": "node-only", "parent": "eth0"}}
  ]},
  "mutations": {"mutation": [
    {"id": "m2", "config": {"id": "m2", "tier": "operator", "proposer": "alice", "devices": ["sw2"], "vlans": [20, 10]}},
    {"id": "m1", "config": {"id": "m1", "tier": "site-owner", "emergency": true}}
  ]}
}`

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
