package target

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The duration (9,223,372,036 s, which overflowed the stored
// deadline into the past) and anything above MaxRollback are refused
// with INVALID_ARGUMENT, for a commit and for set_rollback_duration;
// MaxRollback itself is accepted.
func TestRollbackDurationBounds(t *testing.T) {
	e := newEnv(t, t.TempDir(), storeOpts(), allow{})
	e.mustSet(levelSet(t, 5, nil))
	for _, d := range []time.Duration{9223372036 * time.Second, MaxRollback + time.Nanosecond, 400 * 24 * time.Hour, 0, -time.Second} {
		_, err := e.set(levelSet(t, 4, commitExtension("c", d)))
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("commit with rollback %v: %v, want InvalidArgument", d, err)
		}
		if d > 0 && !strings.Contains(status.Convert(err).Message(), MaxRollback.String()) {
			t.Errorf("commit with rollback %v: message %q does not name the maximum", d, status.Convert(err).Message())
		}
	}
	bad := &gnmi_ext.Commit{Id: "c", Action: &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{
		RollbackDuration: &durationpb.Duration{Seconds: 1, Nanos: -5}}}}
	if _, err := e.set(levelSet(t, 4, []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: bad}}})); status.Code(err) != codes.InvalidArgument {
		t.Errorf("malformed duration: %v", err)
	}
	if e.level() != 5 {
		t.Fatal("a refused commit changed the level")
	}
	e.mustSet(levelSet(t, 4, commitExtension("c", MaxRollback)))
	for _, d := range []time.Duration{9223372036 * time.Second, MaxRollback + time.Second} {
		if _, err := e.set(&gpb.SetRequest{Extension: commitExtension("c", [1]time.Duration{d})}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("set_rollback_duration %v: %v, want InvalidArgument", d, err)
		}
	}
	e.mustSet(&gpb.SetRequest{Extension: commitExtension("c", [1]time.Duration{MaxRollback})})
	e.srv.cc.mu.Lock()
	left := time.Until(time.Unix(0, e.srv.cc.cur.Deadline))
	e.srv.cc.mu.Unlock()
	if left <= MaxRollback-time.Minute || left > MaxRollback {
		t.Fatalf("deadline in %v, want about %v", left, MaxRollback)
	}
	e.mustSet(&gpb.SetRequest{Extension: commitExtension("c", "confirm")})
}

// A pending commit whose stored deadline is impossible (an older version
// wrote the overflowed 9,223,372,036 s one, a negative time) is not
// rolled back the moment the daemon restarts: it gets MaxRollback, and
// that deadline is written back.
func TestOverflowedDeadlineRestored(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, storeOpts(), allow{})
	e.mustSet(levelSet(t, 5, nil))
	e.mustSet(levelSet(t, 2, commitExtension("old", time.Minute)))
	blob, err := e.st.GetMeta(pendingKey)
	if err != nil {
		t.Fatal(err)
	}
	var p pending
	if err := json.Unmarshal(blob, &p); err != nil {
		t.Fatal(err)
	}
	p.Deadline = time.Now().Add(9223372036 * time.Second).UnixNano() // what the old code stored
	if p.Deadline > 0 {
		t.Fatalf("expected the old computation to overflow, got %d", p.Deadline)
	}
	blob, _ = json.Marshal(&p)
	if err := e.st.PutMeta(pendingKey, blob); err != nil {
		t.Fatal(err)
	}
	e.stop()

	e2 := newEnv(t, dir, storeOpts(), allow{})
	if got := e2.level(); got != 2 {
		t.Fatalf("level %d after restart, want 2 (still pending, not rolled back)", got)
	}
	e2.srv.cc.mu.Lock()
	deadline := e2.srv.cc.cur.Deadline
	e2.srv.cc.mu.Unlock()
	if left := time.Until(time.Unix(0, deadline)); left <= MaxRollback-time.Minute || left > MaxRollback {
		t.Fatalf("restored deadline in %v, want about %v", left, MaxRollback)
	}
	stored, _ := e2.st.GetMeta(pendingKey)
	var p2 pending
	if err := json.Unmarshal(stored, &p2); err != nil || p2.Deadline != deadline {
		t.Fatalf("clamped deadline not written back: %d vs %d (%v)", p2.Deadline, deadline, err)
	}
	e2.mustSet(&gpb.SetRequest{Extension: commitExtension("old", "cancel")})
	if got := e2.level(); got != 5 {
		t.Fatalf("level %d after cancel, want 5", got)
	}
}

func TestDeadlineSaturates(t *testing.T) {
	far := time.Unix(0, 1<<62)
	if got := deadlineNS(far, time.Duration(1<<62)); got != 1<<63-1 {
		t.Fatalf("deadlineNS overflowed to %d", got)
	}
	now := time.Unix(100, 0)
	if got := deadlineNS(now, time.Second); got != 101e9 {
		t.Fatalf("deadlineNS = %d", got)
	}
}
