// Command kedge-cni is the CNI plugin of type "kedge" (see package
// cni/plugin). Run by a container runtime it speaks CNI on its
// environment, stdin and stdout; "kedge-cni install" copies itself into a
// CNI bin dir and writes the conflist (see package cni/install).
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/guildhouse-co/kedge/cni/install"
	"github.com/guildhouse-co/kedge/cni/plugin"
)

func main() {
	// A plugin process lives for milliseconds and allocates a few MB:
	// collecting garbage would only add latency to ADD.
	debug.SetGCPercent(-1)
	if len(os.Args) > 1 && os.Args[1] == "install" {
		if err := install.Main(os.Args[2:], os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "kedge-cni install:", err)
			os.Exit(1)
		}
		return
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    plugin.Add,
		Del:    plugin.Del,
		Check:  plugin.Check,
		Status: plugin.Status,
		GC:     plugin.GC,
	}, plugin.Supported, "kedge-cni: Kedge pod networking (CNI type kedge)")
}
