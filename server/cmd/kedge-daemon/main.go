// Command kedge-daemon runs a Kedge node: the gNMI target over the tree
// store, on TCP (TLS by default) and a unix socket. "kedge-daemon user add
// NAME --tier T" adds or resets a user in the users file; "kedge-daemon
// install-cni" installs the CNI plugin and its conflist (DaemonSet init).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/listen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stderr))
}

func run(args []string, stdin io.Reader, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "user" {
		if err := userCmd(args[1:], stdin, stderr); err != nil {
			fmt.Fprintln(stderr, "kedge-daemon:", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "notary" {
		return notaryCmd(args[1:], os.Stdout, stderr)
	}
	if len(args) > 0 && args[0] == "install-cni" {
		if err := installCNICmd(args[1:], stderr); err != nil {
			fmt.Fprintln(stderr, "kedge-daemon:", err)
			return 1
		}
		return 0
	}
	cfg, err := config.Parse(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "kedge-daemon:", err)
		return 2
	}
	if err := cfg.Resolve(os.Hostname, listen.UsableDir); err != nil {
		fmt.Fprintln(stderr, "kedge-daemon:", err)
		return 2
	}
	lvl, _ := cfg.Level() // checked by Resolve
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := server.Run(ctx, cfg, log); err != nil {
		log.Error("kedge-daemon stopped", "err", err)
		return 1
	}
	log.Info("kedge-daemon stopped")
	return 0
}
