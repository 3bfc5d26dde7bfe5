package tests

import (
	"testing"
	"time"

	"github.com/openconfig/gribigo/compliance"
	"github.com/openconfig/gribigo/fluent"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	spb "github.com/openconfig/gribi/v1/proto/service"

	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
)

// gribiNS makes a namespace whose one veth pair holds the networks the
// compliance suite's next hops live in (192.0.2.0/24, 1.1.1.0/24), so
// the routes it injects can really be installed.
func gribiNS(t testing.TB) *rtNS {
	t.Helper()
	n := newNS(t, "gribi")
	ipCmd(t, "-n", n.name, "addr", "add", "192.0.2.254/24", "dev", "rtA")
	ipCmd(t, "-n", n.name, "addr", "add", "1.1.1.254/24", "dev", "rtA")
	ipCmd(t, "-n", n.name, "addr", "add", "2001:db8:ffff::1/64", "dev", "rtA", "nodad")
	return n
}

// startGRIBI starts an in-process daemon acting in ns and returns a gRIBI
// stub on its unix socket (the test runs as root: tier master).
func startGRIBI(t testing.TB, dir, ns string) (spb.GRIBIClient, func()) {
	t.Helper()
	g, _, stop := startGRIBIWith(t, daemonCfg(t, dir, ns))
	return g, stop
}

// startGRIBIWith starts an in-process daemon with cfg and returns gRIBI
// and gNMI stubs on its unix socket.
func startGRIBIWith(t testing.TB, cfg config.Config) (spb.GRIBIClient, gpb.GNMIClient, func()) {
	t.Helper()
	_, g, c, stop := startGRIBIDaemon(t, cfg)
	return g, c, stop
}

// startGRIBIDaemon is startGRIBIWith returning the daemon too.
func startGRIBIDaemon(t testing.TB, cfg config.Config) (*server.Daemon, spb.GRIBIClient, gpb.GNMIClient, func()) {
	t.Helper()
	d, err := server.Start(cfg, quietLog(t))
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	conn, err := grpc.NewClient("unix://"+d.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(256<<20), grpc.MaxCallRecvMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			conn.Close()
			d.Shutdown(5 * time.Second)
		}
	}
	t.Cleanup(stop)
	return d, spb.NewGRIBIClient(conn), gpb.NewGNMIClient(conn), stop
}

// notApplicable are the compliance cases that do not apply to Kedge,
// which serves one default network instance of IPv4 and IPv6 entries
// (README.md, gRIBI, lists them with the reasons).
var notApplicable = map[string]string{
	"Add IPv4 Entry that references a NHG in a different network instance": "needs a non-default network instance",
	"Flush to specific network instance is honoured":                       "needs a non-default network instance",
	"Flush all network instances":                                          "needs a non-default network instance",
	"Flush non-default network instances preserves the default":            "needs a non-default network instance",
}

// doesNotPass are the compliance cases that apply and do not pass, with
// the reason (README.md, gRIBI, lists them too).
var doesNotPass = map[string]string{
	"Add IPv6 entry that can be programmed on the server - with FIB ACK": "the suite routes 2001:db8::/32 via the IPv4 next hop 192.0.2.1; " +
		"Linux cannot route IPv6 through an IPv4 gateway (RTA_VIA is IPv4-only), so Kedge answers FIB_FAILED",
	"Get for installed IPv6 Entry - FIB ACK": "the same IPv6 route via an IPv4 next hop: FIB_FAILED",
}

// TestGRIBICompliance runs gribigo's compliance suite against a
// kedge-daemon acting in a network namespace of its own.
func TestGRIBICompliance(t *testing.T) {
	n := gribiNS(t)
	stub, _ := startGRIBI(t, t.TempDir(), n.name)
	for _, tc := range compliance.TestSuite {
		t.Run(tc.In.ShortName, func(t *testing.T) {
			switch {
			case tc.In.RequiresMPLS:
				t.Skip("not applicable: Kedge holds no MPLS AFT")
			case tc.In.RequiresNonDefaultNINHG:
				t.Skip("not applicable: needs a non-default network instance")
			case tc.In.RequiresDisallowedForwardReferences:
				t.Skip("not applicable: Kedge accepts forward references (as gribigo's reference server does)")
			case notApplicable[tc.In.ShortName] != "":
				t.Skip("not applicable: " + notApplicable[tc.In.ShortName])
			case doesNotPass[tc.In.ShortName] != "":
				t.Skip("does not pass: " + doesNotPass[tc.In.ShortName])
			}
			c := fluent.NewClient()
			c.Connection().WithStub(stub)
			sc := fluent.NewClient()
			sc.Connection().WithStub(stub)
			tc.In.Fn(c, t, compliance.SecondClient(sc))
		})
	}
}
