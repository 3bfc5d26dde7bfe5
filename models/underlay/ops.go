package underlay

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"

	"github.com/guildhouse-co/kedge/gen/oc"
)

// OpKind is what an Op does.
type OpKind uint8

// Operations, in the order a SetRequest applies them.
const (
	OpDelete OpKind = iota + 1
	OpReplace
)

func (k OpKind) String() string {
	if k == OpDelete {
		return "delete"
	}
	return "replace"
}

// Op is one gNMI Set operation on an OpenConfig container Kedge owns: a
// VLAN (/vlans/vlan[vlan-id]), a port's switched-vlan
// (/interfaces/interface[name]/ethernet/switched-vlan) or a VLAN
// subinterface (/interfaces/interface[name]/subinterfaces/subinterface[index]).
// Value is the container's RFC 7951 JSON for a replace.
type Op struct {
	Kind  OpKind
	Path  *gpb.Path
	Value []byte
	// Before is the container's JSON on the device before the op (nil
	// where it was absent), for records of what a push changed.
	Before []byte
}

// PathString is the op's path in gNMI path syntax.
func (o Op) PathString() string {
	s, err := ygot.PathToString(o.Path)
	if err != nil {
		return fmt.Sprint(o.Path.GetElem())
	}
	return s
}

func (o Op) String() string { return o.Kind.String() + " " + o.PathString() }

// object is one owned container of a configuration, by key.
type object struct {
	key  string // sort key and identity
	path *gpb.Path
	node ygot.GoStruct
}

// objects lists d's owned containers.
func objects(d *oc.Device) map[string]object {
	out := map[string]object{}
	if d == nil {
		return out
	}
	for id, v := range d.Vlan {
		k := fmt.Sprintf("v/%05d", id)
		out[k] = object{key: k, path: vlanPath(id), node: v}
	}
	for name, i := range d.Interface {
		if i.Ethernet != nil && i.Ethernet.SwitchedVlan != nil {
			k := "p/" + name + "/sw"
			out[k] = object{key: k, path: switchedPath(name), node: i.Ethernet.SwitchedVlan}
		}
		for idx, s := range i.Subinterface {
			k := "p/" + name + "/s/" + fmt.Sprintf("%010d", idx)
			out[k] = object{key: k, path: subifPath(name, idx), node: s}
		}
	}
	return out
}

// The OpenConfig paths of the containers Kedge owns on a device. They
// address the devices' models, not Kedge's tree (which code reaches only
// through gen/kedgepath and gen/kedgetree), so they are spelled here, in
// one place, through ocElem.

// ocElem is one element of an OpenConfig device path, with its keys as
// name, value pairs.
func ocElem(name string, keys ...string) *gpb.PathElem {
	e := &gpb.PathElem{Name: name}
	if len(keys) > 0 {
		e.Key = map[string]string{}
		for i := 0; i+1 < len(keys); i += 2 {
			e.Key[keys[i]] = keys[i+1]
		}
	}
	return e
}

func vlanPath(id uint16) *gpb.Path {
	return &gpb.Path{Elem: []*gpb.PathElem{ocElem("vlans"), ocElem("vlan", "vlan-id", strconv.Itoa(int(id)))}}
}

func ifPath(name string, rest ...*gpb.PathElem) *gpb.Path {
	return &gpb.Path{Elem: append([]*gpb.PathElem{ocElem("interfaces"), ocElem("interface", "name", name)}, rest...)}
}

func switchedPath(name string) *gpb.Path {
	return ifPath(name, ocElem("ethernet"), ocElem("switched-vlan"))
}

func subifPath(name string, idx uint32) *gpb.Path {
	return ifPath(name, ocElem("subinterfaces"), ocElem("subinterface", "index", strconv.FormatUint(uint64(idx), 10)))
}

// ContainerJSON renders one owned container as the value of a replace.
func ContainerJSON(n ygot.GoStruct) ([]byte, error) {
	b, err := ygot.Marshal7951(n, &ygot.RFC7951JSONConfig{AppendModuleName: true})
	if err != nil {
		return nil, fmt.Errorf("render container: %w", err)
	}
	return b, nil
}

// Diff returns the operations that make have's owned containers match
// want's. Ownership is what want and scope hold: a container in want is
// replaced where have lacks it or differs, a container only in scope is
// deleted where have holds it, and a container neither names is left
// alone (configuration Kedge never applied). Deletes come first, then
// replaces, each sorted by path, so equal inputs give equal operations.
func Diff(have, want *oc.Device, scope ...*oc.Device) ([]Op, error) {
	h, w := objects(have), objects(want)
	owned := map[string]object{}
	for _, s := range scope {
		for k, o := range objects(s) {
			owned[k] = o
		}
	}
	for k, o := range w {
		owned[k] = o
	}
	keys := make([]string, 0, len(owned))
	for k := range owned {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var dels, reps []Op
	for _, k := range keys {
		wo, inWant := w[k]
		ho, inHave := h[k]
		var hj []byte
		if inHave {
			var err error
			if hj, err = ContainerJSON(ho.node); err != nil {
				return nil, err
			}
			// A container left empty (its leaves deleted one by one, as
			// an ON_CHANGE stream reports it) is as good as absent.
			inHave = !bytes.Equal(hj, emptyJSON)
		}
		switch {
		case !inWant && inHave:
			dels = append(dels, Op{Kind: OpDelete, Path: ho.path, Before: hj})
		case inWant:
			wj, err := ContainerJSON(wo.node)
			if err != nil {
				return nil, err
			}
			if inHave && bytes.Equal(hj, wj) {
				continue
			}
			op := Op{Kind: OpReplace, Path: wo.path, Value: wj}
			if inHave {
				op.Before = hj
			}
			reps = append(reps, op)
		}
	}
	return append(dels, reps...), nil
}

var emptyJSON = []byte("{}")

// SetRequest turns operations into one gNMI SetRequest with JSON_IETF
// values (deletes, then replaces, as gNMI applies them).
func SetRequest(ops []Op) *gpb.SetRequest {
	req := &gpb.SetRequest{}
	for _, o := range ops {
		switch o.Kind {
		case OpDelete:
			req.Delete = append(req.Delete, o.Path)
		case OpReplace:
			req.Replace = append(req.Replace, &gpb.Update{Path: o.Path,
				Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: o.Value}}})
		}
	}
	return req
}

// Paths lists the operations' paths ("replace /vlans/vlan[vlan-id=10]").
func Paths(ops []Op) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = o.String()
	}
	return out
}

// OwnedPaths are the top-level paths whose subtrees hold every container
// Kedge owns: a Get or Subscribe of these sees all of it.
func OwnedPaths() []*gpb.Path {
	return []*gpb.Path{{Elem: []*gpb.PathElem{ocElem("interfaces")}}, {Elem: []*gpb.PathElem{ocElem("vlans")}}}
}

// Owned names the container Kedge owns that a changed path falls in: its
// path and whether there is one. A path at or above an interface entry
// (the whole interface deleted) spans containers it cannot name: all is
// then true, and only a full read tells what changed.
func Owned(p *gpb.Path) (c *gpb.Path, all bool) {
	el := p.GetElem()
	name := func(i int) string {
		if i < len(el) {
			return el[i].GetName()
		}
		return ""
	}
	switch {
	case name(0) == "vlans" && name(1) == "vlan" && el[1].GetKey()["vlan-id"] != "":
		id, err := strconv.ParseUint(el[1].GetKey()["vlan-id"], 10, 16)
		if err != nil {
			return nil, true
		}
		return vlanPath(uint16(id)), false
	case name(0) == "vlans":
		return nil, true
	case name(0) != "interfaces":
		return nil, false
	case name(1) != "interface" || el[1].GetKey()["name"] == "" || len(el) == 2:
		return nil, true
	}
	port := el[1].GetKey()["name"]
	switch {
	case name(2) == "ethernet" && (name(3) == "switched-vlan" || len(el) == 3):
		return switchedPath(port), len(el) == 3
	case name(2) == "subinterfaces" && name(3) == "subinterface" && el[3].GetKey()["index"] != "":
		idx, err := strconv.ParseUint(el[3].GetKey()["index"], 10, 32)
		if err != nil {
			return nil, true
		}
		return subifPath(port, uint32(idx)), false
	case name(2) == "subinterfaces":
		return nil, true
	}
	return nil, false
}

// Project returns the containers of d at paths (Owned's), as a
// configuration of its own: what Diff compares when only those changed.
func Project(d *oc.Device, paths []*gpb.Path) *oc.Device {
	out := &oc.Device{}
	if d == nil {
		return out
	}
	for _, p := range paths {
		el := p.GetElem()
		switch {
		case len(el) == 2 && el[0].GetName() == "vlans":
			id, err := strconv.ParseUint(el[1].GetKey()["vlan-id"], 10, 16)
			if v := d.Vlan[uint16(id)]; err == nil && v != nil {
				out.GetOrCreateVlanMap()[uint16(id)] = v
			}
		case len(el) == 4 && el[2].GetName() == "ethernet":
			port := el[1].GetKey()["name"]
			if sv := d.GetInterface(port).GetEthernet().GetSwitchedVlan(); sv != nil {
				out.GetOrCreateInterface(port).GetOrCreateEthernet().SwitchedVlan = sv
			}
		case len(el) == 4 && el[2].GetName() == "subinterfaces":
			port := el[1].GetKey()["name"]
			idx, err := strconv.ParseUint(el[3].GetKey()["index"], 10, 32)
			if s := d.GetInterface(port).GetSubinterface(uint32(idx)); err == nil && s != nil {
				out.GetOrCreateInterface(port).GetOrCreateSubinterfaceMap()[uint32(idx)] = s
			}
		}
	}
	return out
}
