package tree

import (
	"fmt"

	"github.com/openconfig/goyang/pkg/yang"
)

// LoadModules parses YANG files (found on the search path dirs) and
// compiles the named modules' data nodes into a Schema, with each
// module's organization and revision for Capabilities.
func LoadModules(dirs, files, modules []string) (*Schema, error) {
	ms := yang.NewModules()
	for _, d := range dirs {
		ms.AddPath(d)
	}
	for _, f := range files {
		if err := ms.Read(f); err != nil {
			return nil, fmt.Errorf("load YANG %s: %w", f, err)
		}
	}
	if errs := ms.Process(); len(errs) > 0 {
		return nil, fmt.Errorf("load YANG: %v", errs)
	}
	var roots []*yang.Entry
	var infos []Module
	for _, name := range modules {
		e, errs := ms.GetModule(name)
		if len(errs) > 0 {
			return nil, fmt.Errorf("load YANG module %s: %v", name, errs)
		}
		roots = append(roots, e)
		m := ms.Modules[name]
		info := Module{Name: name}
		if m != nil {
			if m.Organization != nil {
				info.Organization = m.Organization.Name
			}
			if len(m.Revision) > 0 {
				info.Revision = m.Revision[0].Name
			}
		}
		infos = append(infos, info)
	}
	s, err := Compile(roots, nil)
	if err != nil {
		return nil, err
	}
	s.Modules = infos
	return s, nil
}
