package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/guildhouse-co/kedge/cni/install"
)

func installCNIFlags() (*flag.FlagSet, *install.Options, *string) {
	fs := flag.NewFlagSet("install-cni", flag.ContinueOnError)
	var o install.Options
	var pools string
	fs.StringVar(&o.Binary, "plugin", "/usr/local/bin/kedge-cni", "the kedge-cni binary to install")
	fs.StringVar(&o.BinDir, "bin-dir", "/opt/cni/bin", "CNI bin dir")
	fs.StringVar(&o.ConfDir, "conf-dir", "/etc/cni/net.d", "CNI conf dir")
	fs.StringVar(&o.ConfName, "conf-name", "10-kedge.conflist", "conflist file name")
	fs.StringVar(&o.Network, "network", "kedge", "network name")
	fs.StringVar(&o.Socket, "socket", "", "daemon socket written into the conf (default: the plugin's, /run/kedge/kedge.sock)")
	fs.StringVar(&pools, "pools", "", "comma-separated pod address pools for the conf (default: read /kedge/pods/config/ipam-pools from the daemon)")
	fs.IntVar(&o.MTU, "mtu", 0, "pod veth MTU (0: kernel default)")
	return fs, &o, &pools
}

// installCNICmd is the DaemonSet init step: copy the kedge-cni binary into
// the node's CNI bin dir and write the conflist, both atomically.
func installCNICmd(args []string, _ io.Reader, _, stderr io.Writer) error {
	fs, o, pools := installCNIFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pools != "" {
		o.Pools = strings.Split(*pools, ",")
	}
	if err := install.Install(*o); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "installed %s as %s/kedge and wrote %s/%s\n", o.Binary, o.BinDir, o.ConfDir, o.ConfName)
	return nil
}
