// Command yangtree prints a pyang -f tree style listing of the kedge module
// and, with -readme, rewrites the listing between the yang-tree markers of a
// README instead.
//
//	go run ./yang/cmd/yangtree yang
//	go run ./yang/cmd/yangtree -readme README.md yang
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	kyang "github.com/guildhouse-co/kedge/yang"
)

func main() {
	readme := flag.String("readme", "", "rewrite the listing between the yang-tree markers of this `file`")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: yangtree [-readme FILE] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *readme); err != nil {
		fmt.Fprintln(os.Stderr, "yangtree:", err)
		os.Exit(1)
	}
}

func run(dir, readme string) error {
	set, err := kyang.Load(dir)
	if err != nil {
		return err
	}
	tree := set.Tree()
	if readme == "" {
		_, err := fmt.Print(tree)
		return err
	}
	old, err := os.ReadFile(readme)
	if err != nil {
		return fmt.Errorf("read readme: %w", err)
	}
	updated, err := kyang.ReplaceTree(old, tree)
	if err != nil {
		return fmt.Errorf("%s: %w", readme, err)
	}
	if bytes.Equal(old, updated) {
		return nil
	}
	if err := os.WriteFile(readme, updated, 0o644); err != nil {
		return fmt.Errorf("write readme: %w", err)
	}
	return nil
}
