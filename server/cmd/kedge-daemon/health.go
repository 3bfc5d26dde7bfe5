package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/server/config"
)

// errUnhealthy is a daemon that answered, but not as a healthy one does.
var errUnhealthy = errors.New("daemon not healthy")

func healthFlags() (fs *flag.FlagSet, socket *string, ready *bool, timeout *time.Duration) {
	fs = flag.NewFlagSet("health", flag.ContinueOnError)
	socket = fs.String("socket", config.DefaultSocket, "the daemon's unix socket")
	ready = fs.Bool("ready", false, "also require the posture engine to have applied a level (readiness, not only liveness)")
	timeout = fs.Duration("timeout", 3*time.Second, "how long the check may take")
	return fs, socket, ready, timeout
}

// healthCmd is the DaemonSet's liveness and readiness probe (an exec probe:
// the image has no shell and the daemon no HTTP listener yet). Live: the
// daemon answers a gNMI Get of its node name over the unix socket within
// the timeout, which needs the process, its gRPC server and its store.
// Ready: also /kedge/posture/state/effective-level is set, so the posture
// engine has run and the backends enforce a level.
func healthCmd(args []string, _ io.Reader, stdout, _ io.Writer) error {
	fs, socket, ready, timeout := healthFlags()
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", *socket, err)
	}
	defer conn.Close()
	c := gpb.NewGNMIClient(conn)
	root := kedgepath.Root().Kedge()
	node, err := healthGet(ctx, c, root.System().State().NodeName().Path())
	if err != nil {
		return err
	}
	if !*ready {
		fmt.Fprintf(stdout, "live: node %s\n", node)
		return nil
	}
	level, err := healthGet(ctx, c, root.Posture().State().EffectiveLevel().Path())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ready: node %s, effective level %s\n", node, level)
	return nil
}

// healthGet returns the value of one leaf as JSON text; a leaf without a
// value is errUnhealthy.
func healthGet(ctx context.Context, c gpb.GNMIClient, p *gpb.Path) (string, error) {
	resp, err := c.Get(ctx, &gpb.GetRequest{Path: []*gpb.Path{p}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		return "", fmt.Errorf("get %s: %w", pathString(p), err)
	}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			if v := u.GetVal().GetJsonIetfVal(); len(v) > 0 {
				return string(v), nil
			}
		}
	}
	return "", fmt.Errorf("get %s: no value: %w", pathString(p), errUnhealthy)
}

// pathString renders a path of plain elements as /a/b/c.
func pathString(p *gpb.Path) string {
	var b strings.Builder
	for _, e := range p.GetElem() {
		b.WriteString("/" + e.GetName())
	}
	return b.String()
}
