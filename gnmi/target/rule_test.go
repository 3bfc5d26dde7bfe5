package target

import (
	"errors"
	"strconv"
	"testing"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
)

// TestRuleRefusal: a semantic rule's refusal reaches the client as an
// ABORTED Set whose ErrorInfo carries the rule's own stable reason and the
// operation's code, FAILED_PRECONDITION (INVALID_ARGUMENT when the rule
// judged the value malformed), never INTERNAL; a plain error from a rule
// (not a RuleError) is still INTERNAL, so the test would see a rule that
// forgot to type its refusal.
func TestRuleRefusal(t *testing.T) {
	e := newEnv(t, t.TempDir(), store.Options{}, allow{})
	e.st.AddValidator("/kedge/system/config/cluster", func(tr *tree.Tree, changes []tree.Change) error {
		for _, c := range changes {
			switch c.Val.Str() {
			case "taken":
				return &tree.RuleError{Reason: "CLUSTER_TAKEN", Path: c.Path(), Detail: "someone has it"}
			case "malformed":
				return &tree.RuleError{Reason: "CLUSTER_MALFORMED", Path: c.Path(), Detail: "no", Err: tree.ErrBadValue}
			case "untyped":
				return errors.New("a rule that forgot its type")
			}
		}
		return nil
	})
	for _, c := range []struct {
		value, reason string
		inner         codes.Code
	}{
		{"taken", "CLUSTER_TAKEN", codes.FailedPrecondition},
		{"malformed", "CLUSTER_MALFORMED", codes.InvalidArgument},
	} {
		_, err := e.set(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config/cluster"), Val: sval(c.value)}}})
		st, _ := status.FromError(err)
		if st.Code() != codes.Aborted {
			t.Fatalf("%s: code %v (%v), want Aborted", c.value, st.Code(), err)
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if x, ok := d.(*errdetails.ErrorInfo); ok {
				info = x
			}
		}
		if info == nil || info.GetDomain() != "kedge" || info.GetReason() != c.reason ||
			info.GetMetadata()["code"] != codeNumber(c.inner) || info.GetMetadata()["operation"] != "UPDATE /kedge/system/config/cluster" {
			t.Errorf("%s: details %v, want reason %s, code %v, the operation named", c.value, st.Details(), c.reason, c.inner)
		}
	}
	_, err := e.set(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config/cluster"), Val: sval("untyped")}}})
	if status.Code(err) != codes.Internal {
		t.Errorf("untyped rule error: %v, want Internal", err)
	}
	e.mustSet(&gpb.SetRequest{Update: []*gpb.Update{{Path: gp(t, "/kedge/system/config/cluster"), Val: sval("free")}}})
}

func codeNumber(c codes.Code) string {
	return strconv.Itoa(int(c))
}
