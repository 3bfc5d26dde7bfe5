package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/guildhouse-co/kedge/server/buildinfo"
	"github.com/guildhouse-co/kedge/server/config"
)

// subcommand is a verb of kedge-daemon other than serving. Add one by
// appending to subcommands: dispatch, --help and the top-level help all
// come from this table.
type subcommand struct {
	name    string
	usage   string // after "kedge-daemon "
	summary string
	// flags returns the subcommand's flag set for its --help (nil: no
	// flags).
	flags func() *flag.FlagSet
	// run returns flag.ErrHelp for --help, an error wrapping errUsage for
	// a malformed command line (exit 2), any other error for a failure
	// (exit 1).
	run func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// errUsage marks a malformed command line.
var errUsage = errors.New("bad usage")

var subcommands = []subcommand{
	{
		name:    "user",
		usage:   "user add NAME --tier TIER [--users FILE | --data-dir DIR] < password",
		summary: "Add or reset a user in the users file. The password is the first line of stdin (at least 8 characters), so it never shows in ps; a running daemon picks the change up on its next RPC.",
		flags:   func() *flag.FlagSet { fs, _ := userFlags(); return fs },
		run:     userCmd,
	},
	{
		name:    "install-cni",
		usage:   "install-cni [flags]",
		summary: "Install the kedge-cni plugin into the CNI bin dir and write its conflist, both atomically (a DaemonSet's init step).",
		flags:   func() *flag.FlagSet { fs, _, _ := installCNIFlags(); return fs },
		run:     installCNICmd,
	},
	{
		name:    "health",
		usage:   "health [--socket PATH] [--ready] [--timeout D]",
		summary: "Check a running daemon over its unix socket (the DaemonSet's probes): live when it answers a Get of its node name in time, ready when its posture engine has also applied a level. Exit 0 healthy, 1 not.",
		flags:   func() *flag.FlagSet { fs, _, _, _ := healthFlags(); return fs },
		run:     healthCmd,
	},
	{
		name:    "notary",
		usage:   "notary query|get INDEX|checkpoint|verify [flags]",
		summary: "Read the notary log: query lists artifacts from the running daemon by type, time and posture level; get fetches one with its inclusion proof and checks it; checkpoint prints the latest signed checkpoint; verify checks the whole local log offline (every frame, signature and tree hash), optionally against a saved checkpoint. Each verb takes -h.",
		run:     notaryCmd,
	},
	{
		name:    "store",
		usage:   storeUsage,
		summary: storeSummary,
		flags:   func() *flag.FlagSet { fs, _, _ := storeFlags(); return fs },
		run:     func(args []string, _ io.Reader, stdout, _ io.Writer) error { return storeCmd(args, stdout) },
	},
	{
		name:    "governance",
		usage:   "governance [--shm-path PATH]",
		summary: "Print the VPP governance segment as the VPP plugin reads it: posture level, sequence, flags and when it was last written.",
		flags:   func() *flag.FlagSet { fs, _ := governanceFlags(); return fs },
		run:     governanceCmd,
	},
	{
		name:    "demo",
		usage:   demoUsage,
		summary: demoSummary,
		flags:   func() *flag.FlagSet { fs, _ := demoFlags(); return fs },
		run:     demoCmd,
	},
	{
		name:    "demo-clean",
		usage:   cleanUsage,
		summary: cleanSummary,
		flags:   func() *flag.FlagSet { fs, _ := cleanFlags(); return fs },
		run:     demoCleanCmd,
	},
	{
		name:    "version",
		usage:   "version",
		summary: "Print the version (the same as --version and /kedge/system/state/version).",
		run:     versionCmd,
	},
}

func lookup(name string) (subcommand, bool) {
	for _, sc := range subcommands {
		if sc.name == name {
			return sc, true
		}
	}
	return subcommand{}, false
}

func versionCmd(args []string, _ io.Reader, stdout, _ io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			return flag.ErrHelp
		}
		return fmt.Errorf("%w: version takes no arguments", errUsage)
	}
	fmt.Fprintln(stdout, "kedge-daemon", buildinfo.Version())
	return nil
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help":
		return true
	}
	return false
}

// parseFlags parses a subcommand's flags quietly: --help comes back as
// flag.ErrHelp and a bad flag as errUsage, for run to report once.
func parseFlags(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// printHelp writes the full help: what the command does, every
// subcommand, every flag.
func printHelp(w io.Writer) {
	fmt.Fprint(w, `kedge-daemon runs a Kedge node: the gNMI target over the node's tree store, served on
TCP (TLS by default) and on a unix socket, and the dataplane backends that make the
kernel match the tree.

Usage:
  kedge-daemon [flags]
      serve (flags below; --config FILE sets them from YAML, flags win)
`)
	for _, sc := range subcommands {
		fmt.Fprintf(w, "  kedge-daemon %s\n%s", sc.usage, wrap(sc.summary, "      ", 90))
	}
	fmt.Fprint(w, `  kedge-daemon COMMAND --help
      a subcommand's own flags

Flags:
`)
	c := config.Defaults()
	printFlags(w, config.FlagSet(&c))
	fmt.Fprint(w, `
More: deploy/daemon/README.md (flags, identities, tiers, the data directory).
`)
}

// printFlags lists a flag set as "--name type" lines with the usage and
// default below, in name order.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		switch d := f.DefValue; {
		case d == "" || d == "false" || d == "0":
		case typ == "string":
			usage += fmt.Sprintf(" (default %q)", d)
		default:
			usage += " (default " + d + ")"
		}
		fmt.Fprintf(w, "%s\n%s", line, wrap(usage, "        ", 90))
	})
}

// wrap breaks s into lines of at most width characters, each starting
// with indent.
func wrap(s, indent string, width int) string {
	var b, line strings.Builder
	for _, word := range strings.Fields(s) {
		if line.Len() > 0 && len(indent)+line.Len()+1+len(word) > width {
			b.WriteString(indent + line.String() + "\n")
			line.Reset()
		}
		if line.Len() > 0 {
			line.WriteByte(' ')
		}
		line.WriteString(word)
	}
	if line.Len() > 0 {
		b.WriteString(indent + line.String() + "\n")
	}
	return b.String()
}
