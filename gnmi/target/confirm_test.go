package target

import (
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func commitExtension(id string, action any) []*gnmi_ext.Extension {
	c := &gnmi_ext.Commit{Id: id}
	switch a := action.(type) {
	case time.Duration:
		c.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(a)}}
	case string:
		switch a {
		case "commit-default":
			c.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{}}
		case "confirm":
			c.Action = &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}}
		case "cancel":
			c.Action = &gnmi_ext.Commit_Cancel{Cancel: &gnmi_ext.CommitCancel{}}
		}
	case [1]time.Duration:
		c.Action = &gnmi_ext.Commit_SetRollbackDuration{SetRollbackDuration: &gnmi_ext.CommitSetRollbackDuration{RollbackDuration: durationpb.New(a[0])}}
	}
	return []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: c}}}
}

func (e *env) level() uint64 {
	e.t.Helper()
	resp, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{gp(e.t, "/kedge/posture/config/level")}, Encoding: gpb.Encoding_PROTO})
	if status.Code(err) == codes.NotFound {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.GetNotification()[0].GetUpdate()[0].GetVal().GetUintVal()
}

func levelSet(t *testing.T, n uint64, ext []*gnmi_ext.Extension) *gpb.SetRequest {
	return &gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/posture/config/level"), Val: uval(n)}}, Extension: ext}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCommitConfirmed(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 5, nil))

	// Confirmed in time: the change stays.
	e.mustSet(levelSet(t, 4, commitExtension("c1", time.Minute)))
	if _, err := e.set(levelSet(t, 3, nil)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("plain Set while pending: %v", err)
	}
	if _, err := e.set(levelSet(t, 3, commitExtension("c2", time.Minute))); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second commit while pending: %v", err)
	}
	if _, err := e.set(&gpb.SetRequest{Extension: commitExtension("wrong", "confirm")}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("confirm with a wrong id: %v", err)
	}
	e.mustSet(&gpb.SetRequest{Extension: commitExtension("c1", "confirm")})
	if got := e.level(); got != 4 {
		t.Fatalf("confirmed level %d", got)
	}
	if _, err := e.set(&gpb.SetRequest{Extension: commitExtension("c1", "confirm")}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("confirm with nothing pending: %v", err)
	}

	// Cancelled: rolled back at once.
	e.mustSet(levelSet(t, 2, commitExtension("c3", time.Minute)))
	e.mustSet(&gpb.SetRequest{Extension: commitExtension("c3", "cancel")})
	if got := e.level(); got != 4 {
		t.Fatalf("after cancel level %d, want 4", got)
	}

	// Not confirmed: rolled back on time; set_rollback_duration restarts it.
	e.mustSet(levelSet(t, 1, commitExtension("c4", time.Hour)))
	e.mustSet(&gpb.SetRequest{Extension: commitExtension("c4", [1]time.Duration{50 * time.Millisecond})})
	waitFor(t, "rollback", func() bool { return e.level() == 4 })
	e.mustSet(levelSet(t, 3, nil)) // no longer pending
}

func TestCommitConfirmedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, storeOpts(), allow{})
	e.mustSet(levelSet(t, 5, nil))
	e.mustSet(levelSet(t, 1, commitExtension("k", 300*time.Millisecond)))
	if e.level() != 1 {
		t.Fatal("commit not applied")
	}
	// The process dies inside the window (no confirm, no timer run).
	e.stop()
	time.Sleep(400 * time.Millisecond) // let the deadline pass while down
	e2 := newEnv(t, dir, storeOpts(), allow{})
	if got := e2.level(); got != 5 {
		t.Fatalf("after restart past the deadline level %d, want 5", got)
	}

	// Restarted inside the window: the timer is re-armed and still fires.
	e2.mustSet(levelSet(t, 2, commitExtension("k2", 2*time.Second)))
	e2.stop()
	e3 := newEnv(t, dir, storeOpts(), allow{})
	if got := e3.level(); got != 2 {
		t.Fatalf("restart inside the window rolled back early: %d", got)
	}
	if _, err := e3.set(levelSet(t, 3, nil)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("pending commit forgotten across restart: %v", err)
	}
	waitFor(t, "re-armed rollback", func() bool { return e3.level() == 5 })
}

func TestCommitDefaultRollback(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 3, commitExtension("d", "commit-default")))
	e.srv.cc.mu.Lock()
	left := time.Until(time.Unix(0, e.srv.cc.cur.Deadline))
	e.srv.cc.mu.Unlock()
	if left < DefaultRollback-time.Minute || left > DefaultRollback {
		t.Fatalf("default rollback window %v", left)
	}
}

func TestConfirmNeedsRightsOverThePendingCommit(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{denyPrefix: "/kedge/posture"})
	// The commit itself is made by someone allowed (the store directly
	// stands in for a master session here).
	e.srv.opts.Auth = allow{}
	e.mustSet(levelSet(t, 2, commitExtension("m", time.Minute)))
	e.srv.opts.Auth = allow{denyPrefix: "/kedge/posture"}
	if _, err := e.set(&gpb.SetRequest{Extension: commitExtension("m", "cancel")}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("cancel by a caller without rights over the commit: %v", err)
	}
	e.srv.opts.Auth = allow{}
	e.mustSet(&gpb.SetRequest{Extension: commitExtension("m", "confirm")})
}

func TestDeprecatedElementPaths(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 3, nil))
	resp, err := e.get(&gpb.GetRequest{Path: []*gpb.Path{{Element: []string{"kedge", "posture", "config", "level"}}}, Encoding: gpb.Encoding_PROTO})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetNotification()[0].GetUpdate()[0].GetVal().GetUintVal(); got != 3 {
		t.Fatalf("level %d", got)
	}
}
