package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// The probe subcommand against a real daemon binary: unhealthy with no
// daemon, live and ready once the posture engine has applied a level,
// unhealthy again after the daemon stops.
func TestHealthProbe(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the probe reads the tree over the socket with root's built-in master tier")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "kedge.sock")
	probe := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(append([]string{"health", "--socket", sock, "--timeout", "5s"}, args...), nil, &out, &errb)
		return out.String() + errb.String(), code
	}
	if out, code := probe(); code != 1 || !strings.Contains(out, "kedge-daemon health: get /kedge/system/state/node-name") {
		t.Fatalf("health with no daemon: exit %d, %q; want 1 naming the Get", code, out)
	}

	p := startProc(t, buildDaemon(t), "--data-dir", dir, "--listen", "", "--socket", sock, "--dataplane", "off", "--node-name", "probe-node")
	p.waitLine(t, regexp.MustCompile(`msg="gNMI listening" unix=`))
	waitLeaf(t, sock, "/kedge/posture/state/effective-level")
	if out, code := probe(); code != 0 || out != "live: node \"probe-node\"\n" {
		t.Errorf("health: exit %d, %q", code, out)
	}
	if out, code := probe("--ready"); code != 0 || out != "ready: node \"probe-node\", effective level 5\n" {
		t.Errorf("health --ready: exit %d, %q", code, out)
	}

	p.cmd.Process.Signal(os.Interrupt)
	if err := p.wait(t); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	if out, code := probe("--ready"); code != 1 {
		t.Errorf("health --ready after the daemon stopped: exit %d, %q; want 1", code, out)
	}
	if _, code := probe("--nope"); code != 2 {
		t.Errorf("health --nope: exit %d, want 2 (usage)", code)
	}
}

// waitLeaf subscribes to a leaf over the socket until it has a value.
func waitLeaf(t *testing.T, sock, p string) {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	elems, err := tree.ParsePath(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := gpb.NewGNMIClient(conn).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Encoding: gpb.Encoding_PROTO,
		Subscription: []*gpb.Subscription{{Path: &gpb.Path{Elem: elems}, Mode: gpb.SubscriptionMode_ON_CHANGE}}}}}); err != nil {
		t.Fatal(err)
	}
	for {
		r, err := sc.Recv()
		if err != nil {
			t.Fatalf("watch %s: %v", p, err)
		}
		if len(r.GetUpdate().GetUpdate()) > 0 {
			return
		}
	}
}
