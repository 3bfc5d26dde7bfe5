package target

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/yang"
)

// allow is an Authorizer that lets everything through, or denies writes
// under the given prefixes.
type allow struct{ denyPrefix string }

func (allow) Read(context.Context) error { return nil }
func (a allow) Write(_ context.Context, paths []string) error {
	for _, p := range paths {
		if a.denyPrefix != "" && strings.HasPrefix(p, a.denyPrefix) {
			return ErrPermissionDenied
		}
	}
	return nil
}
func (allow) WriteChanges(context.Context, store.Proposed) error { return nil }
func (allow) Principal(context.Context) string                   { return "test" }
func (a allow) ResolvePending(ctx context.Context, _ string, paths []string) error {
	return a.Write(ctx, paths)
}

type env struct {
	t      *testing.T
	dir    string
	st     *store.Store
	srv    *Server
	addr   string // the server's address, for tests that need their own client
	client gpb.GNMIClient
	stop   func()
}

func newEnv(t *testing.T, dir string, so store.Options, auth Authorizer) *env {
	t.Helper()
	return newEnvWith(t, dir, so, Options{Auth: auth})
}

// newEnvWith is newEnv with the target's options.
func newEnvWith(t *testing.T, dir string, so store.Options, o Options) *env {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dir, schema, so)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(st, o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if sharedCodecInTests {
		opts = append(opts, srv.GRPCServerOption())
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	go g.Serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, st: st, srv: srv, addr: lis.Addr().String(), client: gpb.NewGNMIClient(conn)}
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		conn.Close()
		g.Stop()
		srv.Close()
		st.Close()
	}
	t.Cleanup(e.stop)
	return e
}

func gp(t testing.TB, s string) *gpb.Path {
	t.Helper()
	elems, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return &gpb.Path{Elem: elems}
}

func jsonIETF(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func sval(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func uval(n uint64) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: n}}
}

func (e *env) set(req *gpb.SetRequest) (*gpb.SetResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.client.Set(ctx, req)
}

func (e *env) mustSet(req *gpb.SetRequest) *gpb.SetResponse {
	e.t.Helper()
	r, err := e.set(req)
	if err != nil {
		e.t.Fatalf("set: %v", err)
	}
	return r
}

func (e *env) get(req *gpb.GetRequest) (*gpb.GetResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.client.Get(ctx, req)
}

// leaves renders a GetResponse/notifications as sorted "path=value" lines.
func leaves(ns []*gpb.Notification) []string {
	var out []string
	for _, n := range ns {
		for _, u := range n.GetUpdate() {
			out = append(out, tree.RenderPath(u.GetPath().GetElem())+"="+valString(u.GetVal()))
		}
		for _, d := range n.GetDelete() {
			out = append(out, "del "+tree.RenderPath(d.GetElem()))
		}
	}
	return out
}

func valString(v *gpb.TypedValue) string {
	switch x := v.GetValue().(type) {
	case *gpb.TypedValue_StringVal:
		return x.StringVal
	case *gpb.TypedValue_UintVal:
		return itoa(x.UintVal)
	case *gpb.TypedValue_BoolVal:
		if x.BoolVal {
			return "true"
		}
		return "false"
	case *gpb.TypedValue_JsonIetfVal:
		return string(x.JsonIetfVal)
	case *gpb.TypedValue_JsonVal:
		return string(x.JsonVal)
	case *gpb.TypedValue_LeaflistVal:
		var parts []string
		for _, e := range x.LeaflistVal.GetElement() {
			parts = append(parts, valString(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return v.String()
}

func itoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func storeOpts() store.Options { return store.Options{} }

// sharedCodecInTests selects whether test servers install the target's
// codec (as the daemon does); TestStormWithoutSharedCodec turns it off.
var sharedCodecInTests = true
