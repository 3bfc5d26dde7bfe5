package kernel

import (
	"fmt"
	"slices"
)

// KernelRoutes lists Kedge's routes as the kernel holds them, one line
// each ("DST table T metric M dev DEV via GW"), sorted: the forensic
// snapshot records them. It reads the kernel unless the backend's cache
// of it is current.
func (b *Backend) KernelRoutes() ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kernel, err := b.kernelRoutes()
	if err != nil {
		return nil, fmt.Errorf("list kernel routes: %w", err)
	}
	links, err := b.linkList()
	if err != nil {
		return nil, fmt.Errorf("list kernel routes: %w", err)
	}
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Index] = l.Name
	}
	out := make([]string, 0, kernel.len())
	for k, r := range kernel.all() {
		s := k.String()
		if r.OIF != 0 {
			dev := names[r.OIF]
			if dev == "" {
				dev = fmt.Sprintf("if%d", r.OIF)
			}
			s += " dev " + dev
		}
		if r.Gateway.IsValid() {
			s += " via " + r.Gateway.String()
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}
