// Command kedge-wg is the WireGuard sidecar: it hosts the mesh device
// (kernel link or wireguard-go with its UAPI socket in /var/run/wireguard)
// and nothing else, so the kedge daemon can restart without dropping the
// tunnels. The daemon finds the device by name through wgctrl and configures
// it; this process never changes its configuration.
//
// Run it in the node's network namespace, sharing /var/run/wireguard with
// the daemon. It exits when signalled (removing the device) or when the
// device goes away.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/guildhouse-co/kedge/dataplane/wgmesh"
	"github.com/guildhouse-co/kedge/dataplane/wgmesh/host"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kedge-wg:", err)
		os.Exit(1)
	}
}

func run() error {
	name := flag.String("interface", wgmesh.DefaultInterface, "WireGuard interface name")
	mtu := flag.Int("mtu", 0, "MTU of the new link (0: 1420)")
	mode := flag.String("mode", "", "kernel, userspace, or empty for kernel when available")
	netns := flag.String("netns", "", "path of the network namespace to host the device in (empty: this process's)")
	debug := flag.Bool("debug", false, "log wireguard-go's verbose messages")
	flag.Parse()

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	switch host.Mode(*mode) {
	case host.ModeAuto, host.ModeKernel, host.ModeUserspace:
	default:
		return fmt.Errorf("parse -mode %q: want kernel, userspace or empty", *mode)
	}
	h, err := host.Start(host.Config{Name: *name, MTU: *mtu, Netns: *netns, Mode: host.Mode(*mode), Logger: log})
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("stopping", "signal", s.String())
	case <-h.Done():
		log.Warn("device went away")
	}
	return h.Close()
}
