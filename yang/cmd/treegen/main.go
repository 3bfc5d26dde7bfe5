// Command treegen writes Kedge's typed tree access from the YANG modules:
// the paths package (gen/kedgepath) and the readers package
// (gen/kedgetree). See package yang/treegen.
//
//	go run ./cmd/treegen -paths ../gen/kedgepath -readers ../gen/kedgetree .
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	kyang "github.com/guildhouse-co/kedge/yang"
	"github.com/guildhouse-co/kedge/yang/treegen"
)

// module is the import path the generated directories sit under.
const module = "github.com/guildhouse-co/kedge/gen/"

func main() {
	paths := flag.String("paths", "", "output `dir` of the paths package")
	readers := flag.String("readers", "", "output `dir` of the readers package")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: treegen -paths DIR -readers DIR YANGDIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *paths == "" || *readers == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *paths, *readers); err != nil {
		fmt.Fprintln(os.Stderr, "treegen:", err)
		os.Exit(1)
	}
}

func run(dir, pathsDir, readersDir string) error {
	set, err := kyang.Load(dir)
	if err != nil {
		return err
	}
	pathsPkg, readersPkg := filepath.Base(pathsDir), filepath.Base(readersDir)
	src, err := treegen.Paths(set.Root(), pathsPkg)
	if err != nil {
		return err
	}
	if err := write(pathsDir, pathsPkg, src); err != nil {
		return err
	}
	src, err = treegen.Readers(set.Root(), readersPkg, module+pathsPkg)
	if err != nil {
		return err
	}
	return write(readersDir, readersPkg, src)
}

func write(dir, pkg string, src []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, pkg+".go"), src, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", pkg, err)
	}
	return nil
}
