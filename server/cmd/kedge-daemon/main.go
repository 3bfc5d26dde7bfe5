// Command kedge-daemon runs a Kedge node: the gNMI target over the tree
// store, on TCP (TLS by default) and a unix socket. Its other verbs are
// subcommands (see commands.go): "user add" adds or resets a user in the
// users file, "install-cni" installs the CNI plugin and its conflist
// (DaemonSet init), "version" prints the version. "kedge-daemon --help"
// lists them all with every flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/buildinfo"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/listen"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status: 0 for success
// and for a requested --help or --version (printed to stdout), 1 when
// the daemon or a subcommand fails, 2 for a usage error.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "help" {
			printHelp(stdout)
			return 0
		}
		if sc, ok := lookup(args[0]); ok {
			err := sc.run(args[1:], stdin, stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				fmt.Fprintf(stdout, "Usage: kedge-daemon %s\n\n%s", sc.usage, wrap(sc.summary, "", 90))
				if sc.flags != nil {
					fmt.Fprintln(stdout, "\nFlags:")
					printFlags(stdout, sc.flags())
				}
				return 0
			case errors.Is(err, errUsage):
				fmt.Fprintf(stderr, "kedge-daemon %s: %v\nusage: kedge-daemon %s\n", sc.name, err, sc.usage)
				return 2
			}
			fmt.Fprintf(stderr, "kedge-daemon %s: %v\n", sc.name, err)
			return 1
		}
	}
	cfg, err := config.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printHelp(stdout)
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintln(stdout, "kedge-daemon", buildinfo.Version())
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "kedge-daemon: %v\n(kedge-daemon --help lists the flags and subcommands)\n", err)
		return 2
	}
	if err := cfg.Resolve(os.Hostname, listen.UsableDir); err != nil {
		fmt.Fprintln(stderr, "kedge-daemon:", err)
		return 2
	}
	lvl, _ := cfg.Level() // checked by Resolve
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	log.Info("kedge-daemon starting", "version", buildinfo.Version())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := server.Run(ctx, cfg, log); err != nil {
		log.Error("kedge-daemon stopped", "err", err)
		return 1
	}
	log.Info("kedge-daemon stopped")
	return 0
}
