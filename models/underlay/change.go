package underlay

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/guildhouse-co/kedge/gen/oc"
)

// Executed is one device's executed intent: the VLANs (restricted to the
// device, sorted by id) as the mutations executed on it left them. Its
// compilation is the device's target configuration.
type Executed []VLAN

// Target compiles the executed intent for device.
func (e Executed) Target(device string) (*oc.Device, error) { return Compile(device, e) }

// Compiler builds a device's configuration from its VLANs; Build is the
// compiler. Its users (Target, Capture) validate what it returns.
type Compiler func(device string, vlans []VLAN) (*oc.Device, error)

// Change is what a compiled mutation does to one device's executed
// intent: the VLANs it sets (as the intent described them, restricted to
// the device) and the ids it removes.
type Change struct {
	Device string   `json:"device"`
	Set    []VLAN   `json:"set,omitempty"`
	Remove []uint16 `json:"remove,omitempty"`
}

// Empty reports whether the change does nothing.
func (c Change) Empty() bool { return len(c.Set) == 0 && len(c.Remove) == 0 }

// Apply returns the executed intent with the change made.
func (e Executed) Apply(c Change) Executed {
	out := make(Executed, 0, len(e)+len(c.Set))
	for _, v := range e {
		if slices.Contains(c.Remove, v.ID) || slices.ContainsFunc(c.Set, func(s VLAN) bool { return s.ID == v.ID }) {
			continue
		}
		out = append(out, v)
	}
	out = append(out, c.Set...)
	slices.SortFunc(out, func(a, b VLAN) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Capture compiles a proposal: for each device it covers (every device of
// the intent when it names none), what the intent now says of each VLAN
// it covers (every VLAN of the intent or executed on the device when it
// names none). A covered VLAN the intent still places on the device is
// set; one the intent no longer places there but the device has executed
// is removed. Each device's resulting configuration is compiled and
// validated, so a capture that succeeds can be pushed; a proposal naming
// an unknown device or a VLAN found nowhere fails with ErrUnknownDevice
// or ErrUnknownVLAN, and one whose result does not compile with the
// compile error (ErrConflict, ErrSchema). exec holds each device's
// executed intent.
func Capture(in Intent, exec map[string]Executed, p Proposal) ([]Change, error) {
	cs, _, err := Compiler(Build).Capture(in, exec, p)
	return cs, err
}

// Capture is the package's Capture with c as the compiler; what c returns
// is validated with the schema too. It also returns each change's device
// configuration (exec[device] with the change applied, compiled), so a
// caller need not compile it again.
func (c Compiler) Capture(in Intent, exec map[string]Executed, p Proposal) ([]Change, []*oc.Device, error) {
	devices := p.Devices
	if len(devices) == 0 {
		for _, d := range in.Devices {
			devices = append(devices, d.Name)
		}
	}
	for _, d := range devices {
		if _, ok := in.Device(d); !ok {
			return nil, nil, fmt.Errorf("%w %q", ErrUnknownDevice, d)
		}
	}
	found := map[uint16]bool{}
	var out []Change
	var targets []*oc.Device
	for _, dev := range devices {
		ids := p.VLANs
		if len(ids) == 0 {
			seen := map[uint16]bool{}
			for _, v := range in.VLANs {
				seen[v.ID] = true
			}
			for _, v := range exec[dev] {
				seen[v.ID] = true
			}
			for id := range seen {
				ids = append(ids, id)
			}
			slices.Sort(ids)
		}
		ch := Change{Device: dev}
		for _, id := range ids {
			v, inIntent := in.VLAN(id)
			if inIntent {
				found[id] = true
			}
			on, placed := v.On(dev)
			_, executed := slices.BinarySearchFunc(exec[dev], id, func(v VLAN, id uint16) int { return cmp.Compare(v.ID, id) })
			if executed {
				found[id] = true
			}
			switch {
			case inIntent && placed:
				ch.Set = append(ch.Set, on)
			case executed:
				ch.Remove = append(ch.Remove, id)
			}
		}
		t, err := c.Target(dev, exec[dev].Apply(ch))
		if err != nil {
			return nil, nil, err
		}
		out, targets = append(out, ch), append(targets, t)
	}
	for _, id := range p.VLANs {
		if !found[id] {
			return nil, nil, fmt.Errorf("%w %d", ErrUnknownVLAN, id)
		}
	}
	return out, targets, nil
}

// Target compiles device's executed intent with c and validates the
// result with the schema, whatever c is.
func (c Compiler) Target(device string, e Executed) (*oc.Device, error) {
	d, err := c(device, e)
	if err != nil {
		return nil, err
	}
	if err := Validate(d); err != nil {
		return nil, &CompileError{Device: device, Err: err}
	}
	return d, nil
}
