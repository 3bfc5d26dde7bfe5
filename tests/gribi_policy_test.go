package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gribigo/fluent"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/server/gribi"
)

// aftEntry is the tree path of a gRIBI IPv4 entry.
func aftEntry(prefix string) string {
	return "/kedge/aft/ipv4-entries/ipv4-entry[prefix=" + prefix + "]"
}

// modifyRefusal opens a Modify stream, sends session parameters and
// returns the status the stream ends with.
func modifyRefusal(t *testing.T, stub spb.GRIBIClient) *status.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := stub.Modify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st.Send(&spb.ModifyRequest{Params: &spb.SessionParameters{Redundancy: spb.SessionParameters_SINGLE_PRIMARY,
		Persistence: spb.SessionParameters_PRESERVE}})
	_, err = st.Recv()
	if err == nil {
		t.Fatal("Modify accepted")
	}
	return status.Convert(err)
}

// TestGRIBIPostureAndPrecedence: gRIBI routes follow the posture level
// like the others (withheld with the reason in state and a FIB_FAILED
// saying so, back on de-escalation), level 1 refuses Modify and Flush
// with a posture reason, a /kedge/routes route with the same prefix wins
// (the entry's state says overridden and by what) and gives the prefix
// back when deleted, and no gNMI Set may change /kedge/aft.
func TestGRIBIPostureAndPrecedence(t *testing.T) {
	n := gribiNS(t)
	stub, gc, _ := startGRIBIWith(t, daemonCfg(t, t.TempDir(), n.name))
	c := gribiSession(t, stub, 1, true)
	m := c.Modify()
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(1).WithIPAddress("192.0.2.1"))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(10).AddNextHop(1, 1))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("198.51.100.0/24").WithNextHopGroup(10))
	await(t, c)
	if got := fibResults(t, c); got[3] != "FIB_PROGRAMMED" {
		t.Fatalf("entry: %v", got)
	}
	kernelHas(t, n, []string{"198.51.100.0/24 via 192.0.2.1"}, nil)

	// Level 2 keeps critical routes only; gRIBI's are underlay (the
	// default gribi-class).
	setLevel(t, gc, 2)
	kernelHas(t, n, nil, []string{"198.51.100.0/24"})
	waitState(t, gc, aftEntry("198.51.100.0/24"), "withheld", "posture level 2 (critical-only)")
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("198.51.101.0/24").WithNextHopGroup(10))
	await(t, c)
	var why string
	for _, r := range c.Results(t) {
		if r.OperationID == 4 && r.ProgrammingResult == spb.AFTResult_FIB_FAILED {
			why = r.ServerError
		}
	}
	if got := fibResults(t, c)[4]; got != "FIB_FAILED" || !strings.Contains(why, "withheld: posture level 2") {
		t.Errorf("entry added at level 2: %q %q, want FIB_FAILED saying it is withheld", got, why)
	}
	setLevel(t, gc, 5)
	kernelHas(t, n, []string{"198.51.100.0/24 via 192.0.2.1", "198.51.101.0/24 via 192.0.2.1"}, nil)
	waitState(t, gc, aftEntry("198.51.101.0/24"), "installed", "")

	// Level 1: route injection is refused, with the reason.
	setLevel(t, gc, 1)
	eventually(t, "effective level 1", func() bool {
		return leaves(t, gc, "/kedge/posture/state/effective-level")["/kedge/posture/state/effective-level"] == "1"
	})
	st := modifyRefusal(t, stub)
	if st.Code() != codes.FailedPrecondition || !hasReason(st, gribi.ReasonPostureLockdown) {
		t.Errorf("Modify at level 1: %v, want FAILED_PRECONDITION with reason %s", st, gribi.ReasonPostureLockdown)
	}
	_, err := stub.Flush(rpcCtx(t), &spb.FlushRequest{NetworkInstance: &spb.FlushRequest_All{All: &spb.Empty{}},
		Election: &spb.FlushRequest_Override{Override: &spb.Empty{}}})
	if fs := status.Convert(err); fs.Code() != codes.FailedPrecondition || !hasReason(fs, gribi.ReasonPostureLockdown) {
		t.Errorf("Flush at level 1: %v, want FAILED_PRECONDITION with reason %s", err, gribi.ReasonPostureLockdown)
	}
	setLevel(t, gc, 5)
	c.Stop(t)

	// /kedge/routes wins on the same prefix and table.
	setRoutes(t, gc, rt{prefix: "198.51.100.0/24", table: 254, dev: "rtA"})
	kernelHas(t, n, []string{"198.51.100.0/24 dev rtA"}, []string{"198.51.100.0/24 via 192.0.2.1"})
	waitState(t, gc, aftEntry("198.51.100.0/24"), "overridden", "/kedge/routes/route[prefix=198.51.100.0/24][table=254]")
	deleteRoutes(t, gc, rt{prefix: "198.51.100.0/24", table: 254})
	kernelHas(t, n, []string{"198.51.100.0/24 via 192.0.2.1"}, nil)
	waitState(t, gc, aftEntry("198.51.100.0/24"), "installed", "")

	// gNMI may read /kedge/aft but not change it, master included.
	_, err = gc.Set(rpcCtx(t), &gpb.SetRequest{Delete: []*gpb.Path{path(t, aftEntry("198.51.100.0/24"))}})
	if err == nil || !strings.Contains(err.Error(), "written only through gRIBI") {
		t.Errorf("gNMI delete of a gRIBI entry: %v, want a refusal", err)
	}
	kernelHas(t, n, []string{"198.51.100.0/24 via 192.0.2.1"}, nil)
}

func hasReason(st *status.Status, reason string) bool {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == reason && ei.GetDomain() == "kedge" {
			return true
		}
	}
	return false
}

// TestGRIBIAuthorization: the policy file decides who may inject routes
// (gribi.write, operator by default); Get is every identity's, and a
// session's routes carry its identity's tier.
func TestGRIBIAuthorization(t *testing.T) {
	n := gribiNS(t)
	for _, c := range []struct {
		name, policy string
		allowed      bool
	}{
		{"observer", "unix: {uids: {0: observer}}\n", false},
		{"operator below site-owner", "unix: {uids: {0: operator}}\ngribi: {write: site-owner}\n", false},
		{"operator by default", "tiers: {operator: {write: [/kedge/routes]}}\nunix: {uids: {0: operator}}\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			pol := filepath.Join(dir, "policy.yaml")
			if err := os.WriteFile(pol, []byte(c.policy), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := daemonCfg(t, filepath.Join(dir, "data"), n.name)
			cfg.Policy = pol
			stub, gc, stop := startGRIBIWith(t, cfg)
			defer stop()
			g := fluent.NewClient()
			g.Connection().WithStub(stub)
			g.Start(context.Background(), t)
			if _, err := g.Get().WithNetworkInstance("DEFAULT").WithAFT(fluent.IPv4).Send(); err != nil {
				t.Errorf("Get: %v", err)
			}
			g.Stop(t)
			if !c.allowed {
				st := modifyRefusal(t, stub)
				if st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "may not inject routes") {
					t.Errorf("Modify: %v, want PERMISSION_DENIED", st)
				}
				return
			}
			s := gribiSession(t, stub, 1, true)
			s.Modify().AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(1).WithIPAddress("192.0.2.1"))
			await(t, s)
			if got := fibResults(t, s); got[1] != "FIB_PROGRAMMED" {
				t.Fatalf("operator's next hop: %v", got)
			}
			s.Stop(t)
			tiers := map[string]bool{}
			for k, v := range leaves(t, gc, "/kedge/aft/sessions") {
				if strings.HasSuffix(k, "/config/tier") {
					tiers[v] = true
				}
			}
			if !tiers["operator"] || len(tiers) != 1 {
				t.Errorf("session tiers %v, want operator", tiers)
			}
		})
	}
}
