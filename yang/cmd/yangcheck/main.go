// Command yangcheck parses every YANG module in a directory with goyang,
// checks it against the subset the Kedge tree store supports, prints each
// problem as file:line:col: message, and exits 1 if there was any.
//
//	go run ./yang/cmd/yangcheck yang
package main

import (
	"flag"
	"fmt"
	"os"

	goyang "github.com/openconfig/goyang/pkg/yang"

	kyang "github.com/guildhouse-co/kedge/yang"
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: yangcheck DIR")
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run(flag.Arg(0)))
}

func run(dir string) int {
	set, err := kyang.Load(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if ps := set.Check(); len(ps) > 0 {
		for _, p := range ps {
			fmt.Fprintln(os.Stderr, p)
		}
		fmt.Fprintf(os.Stderr, "yangcheck: %d problems\n", len(ps))
		return 1
	}
	leaves := 0
	kyang.Walk(set.Entry(kyang.RootModule), func(e *goyang.Entry) {
		if e.IsLeaf() || e.IsLeafList() {
			leaves++
		}
	})
	fmt.Printf("yangcheck: %s ok: %d modules, %d submodules, %d leaves under /%s\n",
		dir, len(set.Modules), len(set.SubModules), leaves, kyang.RootModule)
	return 0
}
