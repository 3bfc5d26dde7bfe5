package yang

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	goyang "github.com/openconfig/goyang/pkg/yang"
)

// RootModule is the module whose tree is Kedge's public API.
const RootModule = "kedge"

// Set is a parsed and resolved directory of YANG files.
type Set struct {
	// Files are the .yang files read, in name order.
	Files []string
	// Modules and SubModules are the parsed (sub)modules by name, each once.
	Modules    map[string]*goyang.Module
	SubModules map[string]*goyang.Module
	// Statements are the raw statements of each file, by file path, kept for
	// the checks that look at what was written rather than what it resolved
	// to (goyang drops or rewrites some statements while building entries).
	Statements map[string][]*goyang.Statement
	ms         *goyang.Modules
}

// Load parses every .yang file in dir and resolves imports, includes,
// groupings and typedefs. The returned error joins every problem, each
// prefixed with file:line where goyang knows it.
func Load(dir string) (*Set, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yang"))
	if err != nil {
		return nil, fmt.Errorf("list yang files: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("load %s: no .yang files", dir)
	}
	slices.Sort(files)

	ms := goyang.NewModules()
	// Imports and includes are looked up in dir, never elsewhere: the
	// modules must be complete on their own.
	ms.Path = []string{dir}
	s := &Set{
		Files:      files,
		Modules:    map[string]*goyang.Module{},
		SubModules: map[string]*goyang.Module{},
		Statements: map[string][]*goyang.Statement{},
		ms:         ms,
	}
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", f, err))
			continue
		}
		stmts, err := goyang.Parse(string(data), f)
		if err != nil {
			errs = append(errs, withFile(f, err))
			continue
		}
		s.Statements[f] = stmts
		if err := ms.Parse(string(data), f); err != nil {
			errs = append(errs, withFile(f, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if perrs := ms.Process(); len(perrs) > 0 {
		return nil, errors.Join(perrs...)
	}
	// goyang lists each module twice (by name and by name@revision).
	for _, m := range ms.Modules {
		s.Modules[m.Name] = m
	}
	for _, m := range ms.SubModules {
		s.SubModules[m.Name] = m
	}
	if s.Modules[RootModule] == nil {
		return nil, fmt.Errorf("load %s: module %q not found", dir, RootModule)
	}
	return s, nil
}

// withFile prefixes err with the file name unless goyang already did (some
// of its AST errors carry no position at all).
func withFile(f string, err error) error {
	if strings.HasPrefix(err.Error(), f) {
		return err
	}
	return fmt.Errorf("%s: %w", f, err)
}

// Entry returns the resolved entry tree of the named module, or nil.
func (s *Set) Entry(module string) *goyang.Entry {
	m := s.Modules[module]
	if m == nil {
		return nil
	}
	return goyang.ToEntry(m)
}

// Root returns the /kedge container.
func (s *Set) Root() *goyang.Entry {
	if e := s.Entry(RootModule); e != nil {
		return e.Dir[RootModule]
	}
	return nil
}

// Walk calls fn for e and every entry below it, children in name order.
func Walk(e *goyang.Entry, fn func(*goyang.Entry)) {
	fn(e)
	for _, name := range sortedNames(e) {
		Walk(e.Dir[name], fn)
	}
}

func sortedNames(e *goyang.Entry) []string {
	names := make([]string, 0, len(e.Dir))
	for n := range e.Dir {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// SchemaPath returns e's data path without module prefixes, e.g.
// /kedge/mesh/peers/peer/config/name.
func SchemaPath(e *goyang.Entry) string {
	var parts []string
	for ; e != nil && e.Parent != nil; e = e.Parent {
		parts = append(parts, e.Name)
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}
