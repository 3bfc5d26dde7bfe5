// Package testdaemon runs an in-process gNMI target over a fresh store on
// a unix socket, standing in for kedge-daemon in the CNI tests. Only tests
// import it; the plugin binary never does.
package testdaemon

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/target"
	"github.com/guildhouse-co/kedge/models/rules"
	"github.com/guildhouse-co/kedge/yang"
)

type allowAll struct{}

func (allowAll) Read(context.Context) error                         { return nil }
func (allowAll) Write(context.Context, []string) error              { return nil }
func (allowAll) WriteChanges(context.Context, store.Proposed) error { return nil }
func (allowAll) Principal(context.Context) string                   { return "test" }
func (allowAll) ResolvePending(context.Context, string, []string) error {
	return nil
}

// Daemon is a running stand-in.
type Daemon struct {
	Socket string
	Store  *store.Store
	stop   func()
}

// Start opens a store in a temp dir, installs the daemon's semantic rules
// (models/rules, the pod address uniqueness rule among them) when rule is
// true, and serves the target on <tempdir>/kedge.sock until the
// test ends (or Stop).
func Start(t testing.TB, rule bool) *Daemon {
	t.Helper()
	dir := t.TempDir()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "store"), schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rule {
		for _, r := range rules.All() {
			st.AddValidator(r.Prefix, r.Check)
		}
	}
	srv, err := target.New(st, target.Options{Auth: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "kedge.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	go g.Serve(lis)
	d := &Daemon{Socket: sock, Store: st}
	stopped := false
	d.stop = func() {
		if stopped {
			return
		}
		stopped = true
		g.Stop()
		srv.Close()
		st.Close()
	}
	t.Cleanup(d.stop)
	return d
}

// Stop shuts the stand-in down early (to test "daemon down").
func (d *Daemon) Stop() { d.stop() }
