package target

import (
	"context"
	"fmt"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// fixedClock gives every read the same timestamp, so that two encodings
// of one Get can be compared whole.
type fixedClock struct{}

func (fixedClock) Now() time.Time                         { return time.Unix(1700000000, 123) }
func (fixedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TestWireGetMatchesMessages: every Get the codec's handler writes as
// wire bytes decodes to exactly the response built as messages (PROTO
// and both JSON encodings, leaf and subtree matches, keys, leaf-lists,
// uints and booleans, a prefix target, several paths, data types and the
// depth extension), and both ways fail alike.
func TestWireGetMatchesMessages(t *testing.T) {
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Clock: fixedClock{}})
	loadPeers(t, e.st, 40)
	for i := range 5 {
		p := fmt.Sprintf("/kedge/mesh/peers/peer[name=peer%d]/config/", i)
		e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{
			{Path: gp(t, p+"critical"), Val: &gpb.TypedValue{Value: &gpb.TypedValue_BoolVal{BoolVal: i%2 == 0}}},
			{Path: gp(t, p+"persistent-keepalive"), Val: uval(uint64(i * 7))},
		}})
	}
	depth := []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Depth{Depth: &gnmi_ext.Depth{Level: 2}}}}
	reqs := map[string]*gpb.GetRequest{
		"deep wildcards":   {Path: []*gpb.Path{deepPath(70, "public-key")}, Encoding: gpb.Encoding_PROTO},
		"whole mesh":       {Path: []*gpb.Path{gp(t, "/kedge/mesh")}, Encoding: gpb.Encoding_PROTO},
		"root":             {Encoding: gpb.Encoding_PROTO},
		"subtree ietf":     {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=peer3]")}, Encoding: gpb.Encoding_JSON_IETF},
		"subtrees json":    {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=*]/config")}, Encoding: gpb.Encoding_JSON},
		"leaf-lists json":  {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=*]/config/allowed-ips")}, Encoding: gpb.Encoding_JSON},
		"leaves ietf":      {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=*]/config/critical")}, Encoding: gpb.Encoding_JSON_IETF},
		"config only":      {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers")}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_PROTO},
		"state only":       {Path: []*gpb.Path{gp(t, "/kedge/mesh")}, Type: gpb.GetRequest_STATE, Encoding: gpb.Encoding_PROTO},
		"depth":            {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=peer1]")}, Encoding: gpb.Encoding_PROTO, Extension: depth},
		"no match":         {Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=*][table=*]")}, Encoding: gpb.Encoding_PROTO},
		"not found":        {Path: []*gpb.Path{gp(t, "/kedge/mesh/peers/peer[name=nobody]")}, Encoding: gpb.Encoding_PROTO},
		"second not found": {Path: []*gpb.Path{gp(t, "/kedge/mesh"), gp(t, "/kedge/mesh/peers/peer[name=nobody]")}, Encoding: gpb.Encoding_PROTO},
		"target and paths": {Prefix: &gpb.Path{Target: "node-a", Elem: []*gpb.PathElem{{Name: "kedge"}}},
			Path: []*gpb.Path{gp(t, "/mesh/peers/peer[name=peer2]"), gp(t, "/mesh/state"), gp(t, "/mesh/peers/peer[name=*]/config/name")}, Encoding: gpb.Encoding_PROTO},
	}
	for name, req := range reqs {
		t.Run(name, func(t *testing.T) {
			want, _, werr := e.srv.get(context.Background(), req, false)
			_, wire, gerr := e.srv.get(context.Background(), req, true)
			if status.Code(werr) != status.Code(gerr) || fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Fatalf("messages: %v, wire: %v", werr, gerr)
			}
			if werr != nil {
				if name != "not found" && name != "second not found" || status.Code(werr) != codes.NotFound {
					t.Fatalf("get: %v", werr)
				}
				return
			}
			b := wire.bufs.Materialize()
			wire.bufs.Free()
			got := &gpb.GetResponse{}
			if err := proto.Unmarshal(b, got); err != nil {
				t.Fatalf("decode the wire response: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("wire response differs:\n got %s\nwant %s", prototext.Format(got), prototext.Format(want))
			}
			if n := len(want.GetNotification()); n != len(req.GetPath()) && (n != 1 || len(req.GetPath()) != 0) {
				t.Errorf("%d notifications for %d paths", n, len(req.GetPath()))
			}
		})
	}
}

// TestWireGetOverBudgetFails: a Get that outgrows its leaf budget while
// being written as wire bytes ends with RESOURCE_EXHAUSTED, as built as
// messages.
func TestWireGetOverBudgetFails(t *testing.T) {
	e := newEnvWith(t, t.TempDir(), storeOpts(), Options{Auth: allow{}, Limits: Limits{GetLeaves: 30}})
	loadPeers(t, e.st, 40)
	req := &gpb.GetRequest{Path: []*gpb.Path{deepPath(3, "public-key")}, Encoding: gpb.Encoding_PROTO}
	for _, encode := range []bool{false, true} {
		_, _, err := e.srv.get(context.Background(), req, encode)
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("encode %v: got %v, want RESOURCE_EXHAUSTED", encode, err)
		}
	}
}

// TestAppendTypedMatchesTyped: every kind of tree value is written as
// the bytes of the TypedValue tree.Typed builds, zero values included (a
// oneof member is sent even when zero).
func TestAppendTypedMatchesTyped(t *testing.T) {
	vals := []tree.Value{
		tree.String(""), tree.String("eth0"), tree.Uint(0), tree.Uint(1 << 63), tree.Int(0), tree.Int(-5),
		tree.Int(1 << 40), tree.Bool(false), tree.Bool(true), {},
		tree.ListValue(nil), tree.ListValue([]tree.Value{tree.String("10.0.0.0/24"), tree.Uint(7), tree.Bool(false)}),
	}
	for _, v := range vals {
		want, err := proto.Marshal(tree.Typed(v))
		if err != nil {
			t.Fatal(err)
		}
		got := appendTyped(nil, v)
		var a, b gpb.TypedValue
		if err := proto.Unmarshal(got, &a); err != nil {
			t.Fatalf("%v: decode: %v", v, err)
		}
		if err := proto.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&a, &b) || len(got) != len(want) {
			t.Errorf("%v: wrote %x (%v), tree.Typed marshals to %x (%v)", v, got, &a, want, &b)
		}
	}
}
