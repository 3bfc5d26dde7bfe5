package target

import (
	"strings"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// cliPath builds a path the way gnmi_cli v0.14.1 does for -q: both the
// structured elem and the deprecated string element, from one string.
func cliPath(t *testing.T, s string) *gpb.Path {
	t.Helper()
	p, err := ygot.StringToPath(s, ygot.StructuredPath, ygot.StringSlicePath)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the test builds what old clients send
	if len(p.GetElem()) == 0 || len(p.GetElement()) == 0 {
		t.Fatalf("ygot did not fill both forms: %v", p)
	}
	return p
}

// Paths that carry elem and element together (gnmi_cli -q ... -qt s) are
// served when the two agree, keys with slashes in their values included;
// when they disagree the request is refused with INVALID_ARGUMENT naming
// both, never answered for one of them.
func TestElemAndElementTogether(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 3, nil))
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{
		Path: gp(t, "/kedge/routes/route[prefix=10.20.0.0/16][table=254]/config"),
		Val:  jsonIETF(`{"next-hop":"192.0.2.1","device":"eth0"}`)}}})

	resp, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{cliPath(t, "/kedge/posture/config/level")}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatalf("Get with elem and element: %v", err)
	}
	if got := resp.GetNotification()[0].GetUpdate()[0].GetVal().GetUintVal(); got != 3 {
		t.Fatalf("level %d, want 3", got)
	}
	resp, err = e.get(&gpb.GetRequest{Path: []*gpb.Path{cliPath(t, "/kedge/routes/route[prefix=10.20.0.0/16][table=254]/config/next-hop")},
		Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatalf("Get of a keyed path with elem and element: %v", err)
	}
	if got := resp.GetNotification()[0].GetUpdate()[0].GetVal().GetStringVal(); got != "192.0.2.1" {
		t.Fatalf("next-hop %q", got)
	}

	// The streaming subscription gnmi_cli -qt s sends.
	sc, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_STREAM, Prefix: &gpb.Path{},
		Subscription: []*gpb.Subscription{{Path: cliPath(t, "/kedge/posture/config/level")}}})
	if got := leaves(untilSync(t, sc)); len(got) != 1 || got[0] != "/kedge/posture/config/level=3" {
		t.Fatalf("subscription sync: %v", got)
	}
	e.mustSet(levelSet(t, 2, nil))
	if got := leaves([]*gpb.Notification{nextUpdate(t, sc)}); len(got) != 1 || got[0] != "/kedge/posture/config/level=2" {
		t.Fatalf("subscription update: %v", got)
	}

	// Disagreeing forms: refused, for Get, Subscribe and Set alike.
	bad := cliPath(t, "/kedge/posture/config/level")
	//lint:ignore SA1019 the test builds what old clients send
	bad.Element = []string{"kedge", "posture", "state", "level"}
	check := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "/kedge/posture/state/level") ||
			!strings.Contains(err.Error(), "disagree") {
			t.Errorf("%s with disagreeing elem and element: %v", what, err)
		}
	}
	_, err = e.get(&gpb.GetRequest{Path: []*gpb.Path{bad}})
	check("Get", err)
	_, err = e.set(&gpb.SetRequest{Update: []*gpb.Update{{Path: bad, Val: uval(4)}}})
	check("Set", err)
	sc2, _ := subscribe(t, e, &gpb.SubscriptionList{Mode: gpb.SubscriptionList_ONCE, Subscription: []*gpb.Subscription{{Path: bad}}})
	_, err = sc2.Recv()
	check("Subscribe", err)
	if e.level() != 2 {
		t.Fatal("a refused Set changed the level")
	}
}
