package tests

import (
	"context"
	"strings"
	"testing"

	"github.com/openconfig/gribigo/fluent"

	spb "github.com/openconfig/gribi/v1/proto/service"

	qmv1 "github.com/guildhouse-co/kedge/gen/proto/kedge/quartermaster/v1"
	"github.com/guildhouse-co/kedge/server/notary"
)

// TestGRIBINotaryWriter: the notary records gRIBI's commits of /kedge/aft
// (a Modify's entries, a DELETE session's removal at its end, a Flush) as
// written by the gRIBI client's identity, as it records a gNMI Set's,
// not by the daemon: the writer commits for the RPC it serves.
func TestGRIBINotaryWriter(t *testing.T) {
	n := gribiNS(t)
	d, stub, _, _ := startGRIBIDaemon(t, daemonCfg(t, t.TempDir(), n.name))

	// A DELETE session adds an entry, which goes when the session ends.
	c := gribiSession(t, stub, 1, false)
	m := c.Modify()
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(1).WithIPAddress("192.0.2.1"))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(10).AddNextHop(1, 1))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("198.51.100.0/24").WithNextHopGroup(10))
	await(t, c)
	kernelHas(t, n, []string{"198.51.100.0/24 via 192.0.2.1"}, nil)
	c.Stop(t)
	kernelHas(t, n, nil, []string{"198.51.100.0/24"})

	// A PRESERVE session's entry, flushed by another client.
	c = gribiSession(t, stub, 2, true)
	m = c.Modify()
	m.AddEntry(t, fluent.NextHopEntry().WithNetworkInstance("DEFAULT").WithIndex(1).WithIPAddress("192.0.2.1"))
	m.AddEntry(t, fluent.NextHopGroupEntry().WithNetworkInstance("DEFAULT").WithID(10).AddNextHop(1, 1))
	m.AddEntry(t, fluent.IPv4Entry().WithNetworkInstance("DEFAULT").WithPrefix("198.51.101.0/24").WithNextHopGroup(10))
	await(t, c)
	c.Stop(t)
	if _, err := stub.Flush(rpcCtx(t), &spb.FlushRequest{NetworkInstance: &spb.FlushRequest_All{All: &spb.Empty{}},
		Election: &spb.FlushRequest_Override{Override: &spb.Empty{}}}); err != nil {
		t.Fatalf("flush: %v", err)
	}
	kernelHas(t, n, nil, []string{"198.51.101.0/24"})

	nt := d.Notary()
	if err := nt.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	es, _, err := nt.List(notary.Query{Types: []qmv1.ArtifactType{qmv1.ArtifactType_ARTIFACT_TYPE_NETWORK_MUTATION}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// For each prefix: its entry added, then removed.
	seen := map[string][]string{}
	for _, e := range es {
		mu := e.GetNetworkMutation()
		for _, ch := range mu.GetChanges() {
			p := ch.GetPath()
			if !strings.HasPrefix(p, "/kedge/aft/ipv4-entries/") || !strings.HasSuffix(p, "/config/prefix") {
				continue
			}
			what := "removed"
			if len(ch.GetAfterSha256()) > 0 {
				what = "added"
			}
			pfx := p[strings.Index(p, "prefix=")+len("prefix=") : strings.Index(p, "]")]
			seen[pfx] = append(seen[pfx], what)
			if w := mu.GetWriter(); w.GetIdentity() != "uid:0" || w.GetTier() != "master" || w.GetMethod() != "unix" {
				t.Errorf("%s %s recorded as written by %v, want uid:0 (master, unix), the gRIBI client", pfx, what, w)
			}
		}
	}
	for _, pfx := range []string{"198.51.100.0/24", "198.51.101.0/24"} {
		if got := strings.Join(seen[pfx], ","); got != "added,removed" {
			t.Errorf("notary records of %s: %q, want added,removed", pfx, got)
		}
	}
}
