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
	"path/filepath"
	"syscall"

	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/buildinfo"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/demo"
	"github.com/guildhouse-co/kedge/server/listen"
)

const (
	demoUsage    = "demo [--data-dir DIR] [--listen ADDR] [--netns NAME] [--log-level LEVEL]"
	demoSummary  = "Run a node that is safe to try (make run runs this). As root it acts in a network namespace of its own (created if missing, with eth0 192.0.2.2/24), pins its BPF maps in a per-instance directory of /sys/fs/bpf and keeps its VPP segment and unix socket in the data dir, so nothing it programs reaches the host's routes, links or pins; as another user it changes no kernel state. It prints how to look at what it programmed. demo-clean removes what it leaves."
	cleanUsage   = "demo-clean [--data-dir DIR]"
	cleanSummary = "Remove what demo left (make clean-run runs this): its namespace if it created it, its BPF pins, segment, socket, the lock files and WireGuard sockets a killed daemon left, and its manifest. It removes nothing while a daemon holds any of them. The tree, users and keys in the data dir stay."
)

type demoOpts struct {
	dataDir, listen, netns, logLevel string
}

func demoFlags() (*flag.FlagSet, *demoOpts) {
	o := &demoOpts{}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&o.dataDir, "data-dir", "./var", "the demo node's data dir (tree, users, segment, socket)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9339", "TCP address of the gNMI listener (TLS)")
	fs.StringVar(&o.netns, "netns", demo.DefaultNetNS, "network namespace the node acts in, as root (created if missing)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	return fs, o
}

func cleanFlags() (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("demo-clean", flag.ContinueOnError)
	dir := fs.String("data-dir", "./var", "the demo node's data dir")
	return fs, dir
}

func demoCmd(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs, o := demoFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return fmt.Errorf("resolve data dir: %w", err)
	}
	in := demo.Plan(dir, o.netns, os.Geteuid() == 0)
	prev, hadPrev, err := demo.Load(dir)
	if err != nil {
		return err
	}
	if err := in.Prepare(prev, hadPrev); err != nil {
		return err
	}
	if err := in.Save(); err != nil {
		return err
	}
	cfg := config.Defaults()
	in.Apply(&cfg)
	cfg.Listen, cfg.LogLevel = o.listen, o.logLevel
	if err := cfg.Resolve(os.Hostname, listen.UsableDir); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	lvl, _ := cfg.Level() // checked by Resolve
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	log.Info("kedge-daemon demo starting", "version", buildinfo.Version(), "netns", in.NetNS, "pin_dir", in.PinDir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = server.RunWith(ctx, cfg, log, func(d *server.Daemon) {
		addr := ""
		if a := d.TCPAddr(); a != nil {
			addr = a.String()
		}
		fmt.Fprint(stdout, "\n"+in.Guide(addr)+"\n")
	})
	if err != nil {
		return fmt.Errorf("%w (kedge-daemon demo-clean --data-dir %s removes what the demo made)", err, dir)
	}
	return nil
}

func demoCleanCmd(args []string, _ io.Reader, stdout, _ io.Writer) error {
	fs, dirFlag := cleanFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := filepath.Abs(*dirFlag)
	if err != nil {
		return fmt.Errorf("resolve data dir: %w", err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stdout, "%s does not exist: nothing to clean\n", dir)
		return nil
	}
	in, ok, err := demo.Load(dir)
	if err != nil {
		return err
	}
	if !ok {
		// No manifest: the demo's own paths, but no namespace (one the
		// demo is not known to have made is not deleted).
		in = demo.Plan(dir, "", os.Geteuid() == 0)
		fmt.Fprintf(stdout, "no %s in %s: cleaning the demo's paths, not a namespace\n", demo.ManifestFile, dir)
	}
	n := 0
	err = demo.Clean(in, func(s string) { n++; fmt.Fprintln(stdout, s) })
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(stdout, "nothing to clean")
	}
	return nil
}
