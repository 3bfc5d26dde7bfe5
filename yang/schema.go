package yang

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"sync"

	goyang "github.com/openconfig/goyang/pkg/yang"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// The modules travel inside the binary: the daemon must not depend on
// files beside it to know its own API.
//
//go:embed *.yang
var modules embed.FS

var (
	schemaOnce sync.Once
	schemaVal  *tree.Schema
	schemaErr  error
)

// Schema returns Kedge's compiled tree schema, parsed once from the
// embedded modules, with the module list Capabilities reports.
func Schema() (*tree.Schema, error) {
	schemaOnce.Do(func() { schemaVal, schemaErr = compile() })
	return schemaVal, schemaErr
}

func compile() (*tree.Schema, error) {
	ms := goyang.NewModules()
	names, err := fs.Glob(modules, "*.yang")
	if err != nil {
		return nil, fmt.Errorf("list embedded modules: %w", err)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := modules.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read embedded %s: %w", n, err)
		}
		if err := ms.Parse(string(data), n); err != nil {
			return nil, fmt.Errorf("parse embedded %s: %w", n, err)
		}
	}
	if errs := ms.Process(); len(errs) > 0 {
		return nil, fmt.Errorf("process embedded modules: %w", errors.Join(errs...))
	}
	root, errs := ms.GetModule(RootModule)
	if len(errs) > 0 {
		return nil, fmt.Errorf("resolve module %s: %w", RootModule, errors.Join(errs...))
	}
	s, err := tree.Compile([]*goyang.Entry{root}, nil)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{RootModule, "kedge-types"} {
		m := ms.Modules[name]
		if m == nil {
			return nil, fmt.Errorf("module %s is missing", name)
		}
		info := tree.Module{Name: name}
		if m.Organization != nil {
			info.Organization = m.Organization.Name
		}
		if len(m.Revision) > 0 {
			info.Revision = m.Revision[0].Name
		}
		s.Modules = append(s.Modules, info)
	}
	return s, nil
}
