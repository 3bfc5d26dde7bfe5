package target

import (
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const rt = "/kedge/routes/route[prefix=10.1.0.0/16][table=254]"

func TestCapabilities(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	resp, err := e.client.Capabilities(t.Context(), &gpb.CapabilityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range resp.GetSupportedModels() {
		names = append(names, m.GetName()+"/"+m.GetOrganization()+"/"+m.GetVersion())
	}
	if d := cmp.Diff([]string{"kedge/Guildhouse/2026-11-26", "kedge-types/Guildhouse/2026-11-26"}, names); d != "" {
		t.Fatal(d)
	}
	if len(resp.GetSupportedEncodings()) != 3 || resp.GetGNMIVersion() == "" {
		t.Fatalf("encodings %v version %q", resp.GetSupportedEncodings(), resp.GetGNMIVersion())
	}
}

func TestSetThenGetEncodings(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(&gpb.SetRequest{
		Prefix: gp(t, "/kedge"),
		Update: []*gpb.Update{
			{Path: gp(t, "/routes/route[prefix=10.1.0.0/16][table=254]/config"), Val: jsonIETF(`{"next-hop":"10.0.0.1","device":"eth0","metric":7}`)},
			{Path: gp(t, "/posture/config/level"), Val: uval(4)},
		},
	})
	cases := []struct {
		name string
		req  *gpb.GetRequest
		want []string
	}{
		{"proto leaf", &gpb.GetRequest{Path: []*gpb.Path{gp(t, rt+"/config/metric")}, Encoding: gpb.Encoding_PROTO},
			[]string{rt + "/config/metric=7"}},
		{"json_ietf subtree", &gpb.GetRequest{Path: []*gpb.Path{gp(t, rt+"/config")}, Encoding: gpb.Encoding_JSON_IETF},
			[]string{rt + `/config={"kedge:device":"eth0","kedge:metric":7,"kedge:next-hop":"10.0.0.1","kedge:prefix":"10.1.0.0/16","kedge:table":254}`}},
		{"json subtree", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/posture")}, Encoding: gpb.Encoding_JSON},
			[]string{`/kedge/posture={"config":{"level":4}}`}},
		{"wildcard keys proto", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=*][table=*]/config/device")}, Encoding: gpb.Encoding_PROTO},
			[]string{rt + "/config/device=eth0"}},
		{"ellipsis", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/.../level")}, Encoding: gpb.Encoding_PROTO},
			[]string{"/kedge/posture/config/level=4"}},
		{"prefix", &gpb.GetRequest{Prefix: gp(t, "/kedge/posture"), Path: []*gpb.Path{gp(t, "/config/level")}, Encoding: gpb.Encoding_PROTO},
			[]string{"/kedge/posture/config/level=4"}},
		{"config type", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/posture")}, Type: gpb.GetRequest_CONFIG, Encoding: gpb.Encoding_PROTO},
			[]string{"/kedge/posture/config/level=4"}},
		{"state type (none yet)", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=*][table=*]/state")}, Type: gpb.GetRequest_STATE, Encoding: gpb.Encoding_PROTO},
			nil},
		{"depth 1", &gpb.GetRequest{Path: []*gpb.Path{gp(t, rt)}, Encoding: gpb.Encoding_PROTO,
			Extension: []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Depth{Depth: &gnmi_ext.Depth{Level: 1}}}}},
			[]string{rt + "/prefix=10.1.0.0/16", rt + "/table=254"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := e.get(c.req)
			if err != nil {
				t.Fatal(err)
			}
			got := leaves(resp.GetNotification())
			sort.Strings(got)
			sort.Strings(c.want)
			if d := cmp.Diff(c.want, got); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestGetErrors(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	for _, c := range []struct {
		name string
		req  *gpb.GetRequest
		want codes.Code
	}{
		{"missing concrete path", &gpb.GetRequest{Path: []*gpb.Path{gp(t, rt)}}, codes.NotFound},
		{"unknown path", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/nope")}}, codes.InvalidArgument},
		{"bad key", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=x][table=1]")}}, codes.InvalidArgument},
		{"other origin", &gpb.GetRequest{Path: []*gpb.Path{{Origin: "openconfig", Elem: gp(t, "/kedge").Elem}}}, codes.InvalidArgument},
		{"bad encoding", &gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge")}, Encoding: gpb.Encoding_ASCII}, codes.Unimplemented},
		{"unknown model", &gpb.GetRequest{UseModels: []*gpb.ModelData{{Name: "openconfig-interfaces"}}}, codes.InvalidArgument},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.get(c.req)
			if status.Code(err) != c.want {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestSetErrorsChangeNothing(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{denyPrefix: "/kedge/accords"})
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/config/device"), Val: sval("eth0")}}})
	snapshot := func() []string {
		resp, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, "/kedge")}, Encoding: gpb.Encoding_PROTO})
		if err != nil {
			t.Fatal(err)
		}
		return leaves(resp.GetNotification())
	}
	before := snapshot()
	for _, c := range []struct {
		name    string
		req     *gpb.SetRequest
		want    codes.Code
		inner   codes.Code // the failing operation's code in the details
		mention string
	}{
		{"wrong type", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/config/metric"), Val: sval("x")}}}, codes.Aborted, codes.InvalidArgument, "metric"},
		{"out of range", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/posture/config/level"), Val: uval(9)}}}, codes.Aborted, codes.InvalidArgument, "level"},
		{"unknown path", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/nope"), Val: sval("x")}}}, codes.Aborted, codes.InvalidArgument, "nope"},
		{"bad json", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/config"), Val: jsonIETF(`{"device":`)}}}, codes.Aborted, codes.InvalidArgument, "JSON"},
		{"state path", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/state/status"), Val: sval("installed")}}}, codes.Aborted, codes.InvalidArgument, "config false"},
		{"delete key", &gpb.SetRequest{Delete: []*gpb.Path{gp(t, rt+"/config/prefix")}}, codes.Aborted, codes.InvalidArgument, "key"},
		{"mandatory missing", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/mesh/peers/peer[name=a]/config/endpoint"), Val: sval("192.0.2.1:51820")}}}, codes.Aborted, codes.FailedPrecondition, "public-key"},
		{"second op fails", &gpb.SetRequest{
			Delete: []*gpb.Path{gp(t, rt)},
			Update: []*gpb.Update{{Path: gp(t, "/kedge/routes/route[prefix=10.2.0.0/16][table=254]/config/metric"), Val: sval("no")}},
		}, codes.Aborted, codes.InvalidArgument, "UPDATE"},
		{"wildcard", &gpb.SetRequest{Delete: []*gpb.Path{gp(t, "/kedge/routes/route[prefix=*][table=254]")}}, codes.InvalidArgument, codes.OK, "wildcard"},
		{"denied", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/accords/accord[level=3]/config/compiler-frozen"), Val: jsonIETF(`true`)}}}, codes.PermissionDenied, codes.OK, "denied"},
		{"union_replace", &gpb.SetRequest{UnionReplace: []*gpb.Update{{Path: gp(t, rt), Val: jsonIETF(`{}`)}}}, codes.Unimplemented, codes.OK, "union_replace"},
		{"no value", &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/config/device")}}}, codes.InvalidArgument, codes.OK, "no value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.set(c.req)
			st := status.Convert(err)
			if st.Code() != c.want || !strings.Contains(st.Message(), c.mention) {
				t.Fatalf("got %v, want %v mentioning %q", err, c.want, c.mention)
			}
			if c.inner != codes.OK {
				var info *errdetails.ErrorInfo
				for _, d := range st.Details() {
					if x, ok := d.(*errdetails.ErrorInfo); ok {
						info = x
					}
				}
				if info == nil || info.GetReason() != c.inner.String() {
					t.Fatalf("details %v, want reason %v", st.Details(), c.inner)
				}
			}
			if d := cmp.Diff(before, snapshot()); d != "" {
				t.Fatalf("failed Set changed the tree:\n%s", d)
			}
		})
	}
}

func TestSetOrderAndResults(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, rt+"/config"), Val: jsonIETF(`{"device":"eth0","metric":1}`)}}})
	// Delete, then replace, then update, whatever their order in the message.
	resp := e.mustSet(&gpb.SetRequest{
		Update:  []*gpb.Update{{Path: gp(t, rt+"/config/metric"), Val: uval(3)}},
		Replace: []*gpb.Update{{Path: gp(t, rt+"/config"), Val: jsonIETF(`{"device":"eth1","metric":2}`)}},
		Delete:  []*gpb.Path{gp(t, rt)},
	})
	var ops []string
	for _, r := range resp.GetResponse() {
		ops = append(ops, r.GetOp().String())
	}
	if d := cmp.Diff([]string{"DELETE", "REPLACE", "UPDATE"}, ops); d != "" {
		t.Fatal(d)
	}
	got, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(t, rt+"/config")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatal(err)
	}
	l := leaves(got.GetNotification())
	sort.Strings(l)
	want := []string{rt + "/config/device=eth1", rt + "/config/metric=3", rt + "/config/prefix=10.1.0.0/16", rt + "/config/table=254"}
	if d := cmp.Diff(want, l); d != "" {
		t.Fatal(d)
	}
}
