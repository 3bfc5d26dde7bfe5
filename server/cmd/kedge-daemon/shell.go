package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/guildhouse-co/kedge/gen/proto/kedge/shellstream/v1"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/server/shellstream"
)

func init() {
	// The subcommand table is commands.go's; shell adds itself here so
	// its whole verb lives in this file.
	subcommands = append(subcommands, subcommand{
		name:  "shell",
		usage: "shell [--addr ADDR] [--type TYPE] [--audience ID] [flags] < input",
		summary: "Open a Shellstream session to a node with the caller's SVIDs from the Workload API " +
			"($SPIFFE_ENDPOINT_SOCKET or --spiffe-socket): stdin goes to the session type's endpoint on the node, " +
			"its output to stdout; GRANT, DRAIN, posture changes and CLOSE are reported on stderr. " +
			"Exits 0 on a normal close, 1 when denied (naming the reason) or cut off.",
		flags: func() *flag.FlagSet { fs, _ := shellFlags(); return fs },
		run:   shellCmd,
	})
}

type shellOpts struct {
	addr, wl, audience, typ, node, cluster, caFile, serverName *string
	level                                                      *uint
	skip, plain                                                *bool
}

func shellFlags() (*flag.FlagSet, *shellOpts) {
	fs := flag.NewFlagSet("kedge-daemon shell", flag.ContinueOnError)
	o := &shellOpts{
		addr:       fs.String("addr", "unix:///run/kedge/kedge.sock", "the node: unix:///path or host:port"),
		wl:         fs.String("spiffe-socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address (default $SPIFFE_ENDPOINT_SOCKET)"),
		audience:   fs.String("audience", "", "the node's Shellstream identity (its --shellstream-id; default kedge/<host of --addr>)"),
		typ:        fs.String("type", "management", "session type: management, incident, monitoring, operator, routine"),
		node:       fs.String("node", "", "this machine's node name (default: hostname)"),
		cluster:    fs.String("cluster", "", "this machine's cluster"),
		level:      fs.Uint("level", 5, "this machine's posture level, 1..5"),
		caFile:     fs.String("tls-ca", "", "CA of the node's TLS certificate (TCP)"),
		serverName: fs.String("tls-server-name", "", "name the node's TLS certificate must carry (default: the host of --addr)"),
		skip:       fs.Bool("skip-verify", false, "do not verify the node's TLS certificate (TCP)"),
		plain:      fs.Bool("insecure", false, "plaintext TCP (the node allows it on loopback only)"),
	}
	return fs, o
}

// shellCmd is "kedge-daemon shell": it opens a Shellstream session with
// the SVIDs the local Workload API issues to the caller, relays stdin to
// the session and the session to stdout, and reports GRANT, DRAIN,
// POSTURE-CHANGE and CLOSE on stderr.
func shellCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, o := shellFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	t, err := session.ParseType(*o.typ)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *o.level < 1 || *o.level > 5 {
		return fmt.Errorf("%w: --level %d: want 1..5", errUsage, *o.level)
	}
	if *o.wl == "" {
		return fmt.Errorf("%w: no Workload API: set --spiffe-socket or SPIFFE_ENDPOINT_SOCKET", errUsage)
	}
	node, audience := *o.node, *o.audience
	if node == "" {
		node, _ = os.Hostname()
	}
	if audience == "" {
		audience = "kedge/" + hostOf(*o.addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	client, err := workloadapi.New(ctx, workloadapi.WithAddr(*o.wl))
	if err != nil {
		return err
	}
	defer client.Close()
	x, err := client.FetchX509SVID(ctx)
	if err != nil {
		return fmt.Errorf("fetch x509-svid: %w", err)
	}
	j, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: audience})
	if err != nil {
		return fmt.Errorf("fetch jwt-svid: %w", err)
	}
	creds, err := shellCreds(*o.addr, *o.caFile, *o.serverName, *o.skip, *o.plain)
	if err != nil {
		return err
	}
	cc, err := grpc.NewClient(*o.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer cc.Close()
	cs, err := shellstream.Open(ctx, cc, shellstream.ClientConfig{SAT: j.Marshal(), Chain: x.Certificates, Key: x.PrivateKey,
		Audience: audience, Type: t, Node: node, Cluster: *o.cluster, Level: uint8(*o.level)})
	var denied *shellstream.DeniedError
	if errors.As(err, &denied) {
		return fmt.Errorf("denied: %s: %s", denied.Reason, denied.Text)
	}
	if err != nil {
		return err
	}
	g := cs.Grant
	fmt.Fprintf(stderr, "kedge-daemon shell: session %s granted to %s: %s, effective level %d, %s, until %s\n",
		g.GetSessionId(), x.ID, capsText(g.GetCapabilities()), g.GetEffectiveLevel(), g.GetVerification(), g.GetDeadline().AsTime().Format("15:04:05"))

	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := stdin.Read(buf)
			if n > 0 && cs.Send(append([]byte(nil), buf[:n]...)) != nil {
				return
			}
			if err != nil {
				cs.Close() // stdin ended: say so, then read to the server's CLOSE
				return
			}
		}
	}()
	for {
		f, err := cs.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch fr := f.GetFrame().(type) {
		case *pb.SessionResponse_Data:
			if _, err := stdout.Write(fr.Data.GetPayload()); err != nil {
				return err
			}
		case *pb.SessionResponse_Drain:
			fmt.Fprintf(stderr, "kedge-daemon shell: DRAIN until %s (level %d): %s\n",
				fr.Drain.GetDeadline().AsTime().Format("15:04:05"), fr.Drain.GetEffectiveLevel(), fr.Drain.GetText())
		case *pb.SessionResponse_PostureChange:
			fmt.Fprintf(stderr, "kedge-daemon shell: effective level now %d (%s)\n",
				fr.PostureChange.GetPostureLevel(), capsText(fr.PostureChange.GetCapabilities()))
		case *pb.SessionResponse_Close:
			if fr.Close.GetReason() == pb.CloseReason_CLOSE_REASON_NORMAL {
				fmt.Fprintf(stderr, "kedge-daemon shell: closed: %s\n", fr.Close.GetText())
				return nil
			}
			return fmt.Errorf("closed: %s: %s", fr.Close.GetReason(), fr.Close.GetText())
		}
	}
}

func capsText(cs []pb.Capability) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = strings.ToLower(strings.TrimPrefix(c.String(), "CAPABILITY_"))
	}
	return strings.Join(s, "+")
}

// hostOf is the host part of a host:port address ("" for unix).
func hostOf(addr string) string {
	if strings.HasPrefix(addr, "unix:") {
		h, _ := os.Hostname()
		return h
	}
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}

func shellCreds(addr, caFile, serverName string, skip, plain bool) (credentials.TransportCredentials, error) {
	if strings.HasPrefix(addr, "unix:") || plain {
		return insecure.NewCredentials(), nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: skip, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read --tls-ca %s: no certificates", caFile)
		}
		tc.RootCAs = pool
	}
	return credentials.NewTLS(tc), nil
}
