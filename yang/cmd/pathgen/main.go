// Command pathgen writes typed gNMI path structs for the uncompressed Kedge
// tree (see yang.PathStructs), because ygot's generator only writes path
// structs for compressed schemas.
//
//	go run ./cmd/pathgen -o ../gen/kedgepath/kedgepath.go .
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	kyang "github.com/guildhouse-co/kedge/yang"
)

func main() {
	out := flag.String("o", "", "output `file`; its directory names the package")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: pathgen -o FILE DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *out); err != nil {
		fmt.Fprintln(os.Stderr, "pathgen:", err)
		os.Exit(1)
	}
}

func run(dir, out string) error {
	set, err := kyang.Load(dir)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", out, err)
	}
	src, err := kyang.PathStructs(set.Root(), filepath.Base(filepath.Dir(abs)))
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, src, 0o644); err != nil {
		return fmt.Errorf("write path structs: %w", err)
	}
	return nil
}
