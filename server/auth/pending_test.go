package auth

import (
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func commitExt(id string, action string) []*gnmi_ext.Extension {
	c := &gnmi_ext.Commit{Id: id}
	switch action {
	case "commit":
		c.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(10 * time.Minute)}}
	case "confirm":
		c.Action = &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}}
	case "cancel":
		c.Action = &gnmi_ext.Commit_Cancel{Cancel: &gnmi_ext.CommitCancel{}}
	case "extend":
		c.Action = &gnmi_ext.Commit_SetRollbackDuration{SetRollbackDuration: &gnmi_ext.CommitSetRollbackDuration{
			RollbackDuration: durationpb.New(30 * time.Minute)}}
	}
	return []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: c}}}
}

func (e *tierEnv) device(route string) string {
	e.t.Helper()
	resp, err := e.srv.Get(as(Master), &gpb.GetRequest{Path: []*gpb.Path{tp(e.t, route+"/config/device")}, Encoding: gpb.Encoding_PROTO})
	if status.Code(err) == codes.NotFound {
		return ""
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.GetNotification()[0].GetUpdate()[0].GetVal().GetStringVal()
}

// A lower tier's pending commit-confirmed holds every other Set back, but
// not from a higher tier for long: the refusal names the commit and its
// author, and the author's tier or any higher one (with write rights over
// what it changed) may confirm or cancel it. A lower tier may not end or
// re-time a higher tier's pending commit.
func TestPendingCommitTiers(t *testing.T) {
	e := newTierEnv(t, DefaultPolicy())
	e.fixture()
	change := func(dev string, ext []*gnmi_ext.Extension) *gpb.SetRequest {
		r := upd(t, opRoute+"/config/device", strv(dev))
		r.Extension = ext
		return r
	}
	act := func(id, action string) *gpb.SetRequest { return &gpb.SetRequest{Extension: commitExt(id, action)} }

	// An operator's pending commit: master's Set is held back and told why...
	e.must(Operator, change("eth1", commitExt("op-1", "commit")))
	err := e.set(Master, upd(t, "/kedge/posture/config/level", &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 1}}))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), `"op-1"`) || !strings.Contains(err.Error(), "operator:") {
		t.Fatalf("master's Set while an operator's commit is pending: %v", err)
	}
	// ...and master may cancel it: the change is rolled back.
	e.must(Master, act("op-1", "cancel"))
	if got := e.device(opRoute); got != "eth0" {
		t.Fatalf("after master's cancel the device is %q, want eth0", got)
	}
	// A site-owner may confirm an operator's commit, and so may the
	// author's own tier.
	e.must(Operator, change("eth2", commitExt("op-2", "commit")))
	e.must(SiteOwner, act("op-2", "extend"))
	e.must(SiteOwner, act("op-2", "confirm"))
	e.must(Operator, change("eth3", commitExt("op-3", "commit")))
	e.must(Operator, act("op-3", "confirm"))
	if got := e.device(opRoute); got != "eth3" {
		t.Fatalf("after confirms the device is %q, want eth3", got)
	}

	// Master's pending commit: an operator, though it may write routes,
	// may not cancel, confirm or re-time it; an observer may do nothing.
	e.must(Master, change("eth4", commitExt("m-1", "commit")))
	for _, action := range []string{"cancel", "confirm", "extend"} {
		err := e.set(Operator, act("m-1", action))
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "tier master") {
			t.Errorf("operator %s of master's commit: %v", action, err)
		}
		if err := e.set(Observer, act("m-1", action)); status.Code(err) != codes.PermissionDenied {
			t.Errorf("observer %s: %v", action, err)
		}
	}
	if got := e.device(opRoute); got != "eth4" {
		t.Fatalf("master's pending change was undone: device %q", got)
	}
	e.must(Master, act("m-1", "confirm"))

	// A site-owner's pending commit to a path the operator may not write
	// is out of the operator's reach twice over.
	e.must(SiteOwner, &gpb.SetRequest{Update: []*gpb.Update{{Path: tp(t, "/kedge/posture/config/level"),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_UintVal{UintVal: 3}}}}, Extension: commitExt("so-1", "commit")})
	if err := e.set(Operator, act("so-1", "cancel")); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator cancelling a site-owner's commit: %v", err)
	}
	e.must(Master, act("so-1", "cancel"))
}

func TestOwnerTier(t *testing.T) {
	for owner, want := range map[string]Tier{
		"operator:alice":    Operator,
		"site-owner:noc:1":  SiteOwner,
		"master:uid:0":      Master,
		"":                  Master, // a record from before authors were kept
		"nonsense":          Master,
		"observer:readonly": Observer,
	} {
		if got := ownerTier(owner); got != want {
			t.Errorf("ownerTier(%q) = %s, want %s", owner, got, want)
		}
	}
}
