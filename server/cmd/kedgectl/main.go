// Command kedgectl is the operator's client of a Kedge node: what the
// node is doing (status, posture, mesh, routes, sessions) in tables, JSON
// or YAML, and the few writes operators make by hand (the posture level,
// with commit-confirmed; a bulk route import). It speaks gNMI to the
// daemon over its unix socket by default, or over TCP with TLS and a
// username/password or a client certificate.
//
// It reads a node the way gen/doc.go describes for Go clients: a Get of
// the subtree a verb needs is loaded into a client-side tree over the
// daemon's own compiled schema (gnmi/mirror) and read with the generated
// typed readers through models/summary, the same summary the daemon's
// status page shows; writes use gen/kedgepath's typed paths and values.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code: 0, 1 for a
// failure, 2 for a malformed command line.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "kedgectl: %s\n", describe(err))
	if errors.Is(err, errUsage) || isFlagError(err) {
		return 2
	}
	return 1
}

// describe is err's message with a gRPC status shown as its message and
// code ("... awaiting confirmation ... (FailedPrecondition)") rather
// than gRPC's "rpc error: code = ... desc = ...".
func describe(err error) string {
	msg := err.Error()
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		if st := se.GRPCStatus(); st.Code() != codes.OK {
			msg = strings.Replace(msg, st.Err().Error(), st.Message()+" ("+st.Code().String()+")", 1)
		}
	}
	return msg
}

// isFlagError reports cobra's own command-line errors, which it returns
// as plain errors.
func isFlagError(err error) bool {
	var fe flagError
	return errors.As(err, &fe)
}

// flagError wraps cobra's flag and argument errors so run can tell them
// from failures.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// app is one invocation: its streams, its global flags, its clock.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	conn           connOpts
	output         string
	timeout        time.Duration
	now            func() time.Time
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "kedgectl",
		Short: "Operate a Kedge node: status, posture, mesh, routes, sessions, underlay, notary",
		Long: `kedgectl shows what a Kedge node is doing and makes the writes operators make by hand.

It connects to the node's gNMI server over the local unix socket by default (the daemon
identifies you by your uid), or over TCP with TLS and a username/password (--user with
--password-file or $KEDGE_PASSWORD) or a client certificate (--tls-cert, --tls-key).
Tables by default; -o json and -o yaml for scripts.`,
		Example: `  kedgectl status
  kedgectl posture set 3 --confirm-within 2m
  kedgectl --addr node1:9339 --tls-ca ca.pem --user master --password-file pw routes -o json`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.conn.addr, "addr", defaultAddr(), "the node: unix:///path or host:port ($"+envAddr+")")
	pf.StringVar(&a.conn.tlsCA, "tls-ca", "", "CA bundle that signed the node's certificate (TCP)")
	pf.StringVar(&a.conn.tlsCert, "tls-cert", "", "client certificate for mTLS (TCP)")
	pf.StringVar(&a.conn.tlsKey, "tls-key", "", "client certificate's key for mTLS (TCP)")
	pf.StringVar(&a.conn.serverName, "tls-server-name", "", "name the node's certificate must carry (default: the host of --addr)")
	pf.BoolVar(&a.conn.skipVerify, "skip-verify", false, "do not verify the node's certificate (TCP; a self-signed test node)")
	pf.BoolVar(&a.conn.insecure, "insecure", false, "plaintext TCP (the node allows it on loopback only)")
	pf.StringVarP(&a.conn.user, "user", "u", os.Getenv(envUser), "username for a password login ($"+envUser+")")
	pf.StringVar(&a.conn.passwordFile, "password-file", "", "file whose first line is the password (else $"+envPassword+", else a terminal prompt)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "how long each request may take")
	root.RegisterFlagCompletionFunc("output", fixedCompletions("table", "json", "yaml"))
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch a.output {
		case "table", "json", "yaml":
			return nil
		}
		return fmt.Errorf("%w: -o %q: want table, json or yaml", errUsage, a.output)
	}
	root.AddCommand(a.statusCmd(), a.postureCmd(), a.meshCmd(), a.routesCmd(), a.sessionsCmd(), a.underlayCmd(), a.notaryCmd())
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs marks argument-count errors as usage errors, in c and below.
func wrapArgs(c *cobra.Command) {
	if c.Args != nil {
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			return nil
		}
	}
	for _, s := range c.Commands() {
		wrapArgs(s)
	}
}

func fixedCompletions(vals ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return vals, cobra.ShellCompDirectiveNoFileComp
	}
}

// ctx returns a context bounded by --timeout.
func (a *app) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, a.timeout)
}
