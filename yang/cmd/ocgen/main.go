// Command ocgen generates the OpenConfig GoStructs and schema of gen/oc:
// ygot's generator (the version go.mod pins as a tool) run on the
// OpenConfig modules that ship inside the ygot module itself
// (demo/getting_started/yang: openconfig-interfaces, -if-ethernet, -if-ip,
// -vlan and what they import). The modules are read from the module
// cache where `go list -m` finds them, never copied into the repository.
//
//	go run ./yang/cmd/ocgen -o gen/oc/oc.go
//
// The generator is built from this module (so it links the dependency
// versions go.mod pins) and run inside the modules' directory with
// relative file names, so the generated header names no path of this
// machine and the output is the same everywhere; ocgen checks that and
// gofmts the result.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ygotModule is the module whose demo ships the OpenConfig modules.
const ygotModule = "github.com/openconfig/ygot"

// modulesDir is where, inside the ygot module, the modules are.
const modulesDir = "demo/getting_started/yang"

// modules are the generator's input files; their imports are found on
// -path (the same directory).
var modules = []string{
	"openconfig-interfaces.yang",
	"openconfig-if-ethernet.yang",
	"openconfig-if-ip.yang",
	"openconfig-vlan.yang",
}

// flags of the generator. Compressed paths (OpenConfig's config/state
// folding) give the compiler d.GetOrCreateVlan(100) rather than
// d.Vlans.Vlan[100].Config; state is left out because Kedge only writes
// configuration; ietf-interfaces is excluded as ygot's own demo does (its
// /interfaces would collide with OpenConfig's).
var genFlags = []string{
	"-path=.",
	"-package_name=oc",
	"-compress_paths=true",
	"-exclude_state",
	"-generate_fakeroot",
	"-fakeroot_name=device",
	"-include_schema",
	"-generate_getters",
	"-generate_leaf_getters",
	"-generate_leaf_setters",
	"-generate_append",
	"-generate_delete",
	"-generate_simple_unions",
	"-shorten_enum_leaf_names",
	"-typedef_enum_with_defmod",
	"-exclude_modules=ietf-interfaces",
}

func main() {
	out := flag.String("o", "", "write the generated Go to this `file`")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ocgen -o FILE")
		os.Exit(2)
	}
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "ocgen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	modDir, err := goOutput("list", "-m", "-f", "{{.Dir}}", ygotModule)
	if err != nil {
		return fmt.Errorf("locate %s: %w", ygotModule, err)
	}
	yangDir := filepath.Join(modDir, modulesDir)
	tmp, err := os.MkdirTemp("", "ocgen-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	gen := filepath.Join(tmp, "generator")
	if _, err := goOutput("build", "-trimpath", "-o", gen, ygotModule+"/generator"); err != nil {
		return fmt.Errorf("build generator: %w", err)
	}
	raw := filepath.Join(tmp, "oc.go")
	args := append(append([]string{"-output_file=" + raw}, genFlags...), modules...)
	cmd := exec.Command(gen, args...)
	cmd.Dir = yangDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run generator: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	src, err := os.ReadFile(raw)
	if err != nil {
		return fmt.Errorf("read generated code: %w", err)
	}
	for _, local := range []string{modDir, tmp} {
		if bytes.Contains(src, []byte(local)) {
			return fmt.Errorf("generated code names a path of this machine (%s)", local)
		}
	}
	if src, err = canonicalSchema(src); err != nil {
		return err
	}
	fmted, err := format.Source(src)
	if err != nil {
		return fmt.Errorf("format generated code: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create output dir: %w", err)
	}
	if err := os.WriteFile(out, fmted, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}

// goOutput runs the go command in the current directory (this module) and
// returns its trimmed standard output.
func goOutput(args ...string) (string, error) {
	goBin := os.Getenv("GOROOT")
	if goBin != "" {
		goBin = filepath.Join(goBin, "bin", "go")
	} else {
		goBin = "go"
	}
	cmd := exec.Command(goBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(b)), nil
}

// schemaVar is where the generated code holds the gzipped JSON schema.
var schemaVar = regexp.MustCompile(`(?s)ySchema = \[\]byte\{(.*?)\n\t\}`)

// canonicalSchema rewrites the embedded schema so that equal inputs give
// equal bytes: goyang lists the augments of a node (openconfig-if-ip's and
// openconfig-vlan's of a subinterface) in map order, which changes from
// run to run. The lists are sorted (their order carries no meaning) and
// the JSON is gzipped again, numbers kept exact.
func canonicalSchema(src []byte) ([]byte, error) {
	m := schemaVar.FindSubmatchIndex(src)
	if m == nil {
		return nil, fmt.Errorf("canonicalize schema: no ySchema in the generated code")
	}
	var gz []byte
	for _, h := range regexp.MustCompile(`0x[0-9a-f]{2}`).FindAll(src[m[2]:m[3]], -1) {
		n, err := strconv.ParseUint(string(h[2:]), 16, 8)
		if err != nil {
			return nil, fmt.Errorf("canonicalize schema: %w", err)
		}
		gz = append(gz, byte(n))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("canonicalize schema: %w", err)
	}
	dec := json.NewDecoder(zr)
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("canonicalize schema: %w", err)
	}
	if err := sortAugments(doc); err != nil {
		return nil, err
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("canonicalize schema: %w", err)
	}
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(js.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var b strings.Builder
	for i, c := range z.Bytes() {
		if i%16 == 0 {
			b.WriteString("\n\t\t")
		}
		fmt.Fprintf(&b, "0x%02x,", c)
		if i%16 != 15 {
			b.WriteString(" ")
		}
	}
	out := append([]byte{}, src[:m[2]]...)
	out = append(out, b.String()...)
	return append(out, src[m[3]:]...), nil
}

// sortAugments sorts every "Augmented" list by its entries' JSON.
func sortAugments(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if err := sortAugments(c); err != nil {
				return err
			}
			if list, ok := c.([]any); ok && k == "Augmented" {
				keys := make(map[int]string, len(list))
				for i, e := range list {
					b, err := json.Marshal(e)
					if err != nil {
						return fmt.Errorf("canonicalize schema: %w", err)
					}
					keys[i] = string(b)
				}
				idx := make([]int, len(list))
				for i := range idx {
					idx[i] = i
				}
				slices.SortFunc(idx, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
				sorted := make([]any, len(list))
				for i, j := range idx {
					sorted[i] = list[j]
				}
				v[k] = sorted
			}
		}
	case []any:
		for _, c := range v {
			if err := sortAugments(c); err != nil {
				return err
			}
		}
	}
	return nil
}
