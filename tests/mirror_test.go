package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gen/kedgetree"
	"github.com/guildhouse-co/kedge/gnmi/mirror"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/yang"
)

// TestMirrorDaemonTree is the Go client path gen/doc.go describes, against
// a running daemon: config written with kedgepath's typed paths and
// values, the whole tree read back with mirror.Get (JSON_IETF) into a
// client-side tree and read with kedgetree; and the round trip is exact:
// the client tree encodes to the same JSON_IETF as the daemon's own Get of
// the whole tree, config and state.
func TestMirrorDaemonTree(t *testing.T) {
	dir := t.TempDir()
	// The caller's uid is master on the unix socket, root or not: this
	// test needs no kernel.
	pol := filepath.Join(dir, "policy.yaml")
	policy := fmt.Sprintf("tiers:\n  master:\n    write: [\"/\"]\nunix:\n  uids:\n    %d: master\n", os.Getuid())
	if err := os.WriteFile(pol, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Socket = dir, "", filepath.Join(dir, "kedge.sock")
	cfg.NodeName, cfg.Dataplane, cfg.Policy = "mirror-node", "off", pol
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	c, _ := startKedge(t, cfg)

	k := kedgepath.Root().Kedge()
	route := k.Routes().Route("10.42.0.0/16", 100).Config()
	peer := k.Mesh().Peers().Peer("node-b").Config()
	up := func(p interface{ Path() *gpb.Path }, v *gpb.TypedValue) *gpb.Update {
		return &gpb.Update{Path: p.Path(), Val: v}
	}
	if _, err := c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{
		up(k.Posture().Config().Level(), k.Posture().Config().Level().Val(3)),
		up(k.System().Config().Cluster(), k.System().Config().Cluster().Val("lab")),
		up(k.System().Config().Role(), k.System().Config().Role().Val(kedgepath.NodeRoleCloudAnchor)),
		up(route.Device(), route.Device().Val("eth0")),
		up(route.Class(), route.Class().Val(kedgepath.RouteClassUnderlay)),
		up(route.Metric(), route.Metric().Val(7)),
		up(peer.PublicKey(), peer.PublicKey().Val("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")),
		up(peer.AllowedIps(), peer.AllowedIps().Val([]string{"10.99.0.2/32", "fd99::2/128"})),
		up(peer.Critical(), peer.Critical().Val(true)),
	}}); err != nil {
		t.Fatalf("set: %v", err)
	}
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	// State follows the config: wait until the engine has published level 3.
	var mt *tree.Tree
	deadline := time.Now().Add(30 * time.Second)
	for {
		if mt, err = mirror.Get(rpcCtx(t), c, schema, kedgepath.Root().Path()); err != nil {
			t.Fatalf("mirror: %v", err)
		}
		if lvl, _ := kedgetree.Of(mt).Kedge().Posture().State().EffectiveLevel(); lvl == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never published effective level 3")
		}
		time.Sleep(20 * time.Millisecond) // polling the daemon's state, with a deadline
	}

	kt := kedgetree.Of(mt).Kedge()
	if lvl, ok := kt.Posture().Config().Level(); !ok || lvl != 3 {
		t.Errorf("posture config level = %d, %v", lvl, ok)
	}
	if src, _ := kt.Posture().State().Source(); src != kedgepath.PostureSourceConfig {
		t.Errorf("posture source = %q", src)
	}
	if role, _ := kt.System().Config().Role(); role != kedgepath.NodeRoleCloudAnchor {
		t.Errorf("role = %q", role)
	}
	if name, _ := kt.System().State().NodeName(); name != "mirror-node" {
		t.Errorf("state node-name = %q", name)
	}
	r, ok := kt.Routes().Route().Get("10.42.0.0/16", 100)
	if !ok {
		t.Fatal("route missing from the mirror")
	}
	if class, _ := r.Config().Class(); class != kedgepath.RouteClassUnderlay {
		t.Errorf("route class = %q", class)
	}
	if m, _ := r.Config().Metric(); m != 7 {
		t.Errorf("route metric = %d", m)
	}
	p, ok := kt.Mesh().Peers().Peer().Get("node-b")
	if !ok {
		t.Fatal("peer missing from the mirror")
	}
	if got := p.Config().AllowedIps(); !cmp.Equal(got, []string{"10.99.0.2/32", "fd99::2/128"}) {
		t.Errorf("allowed-ips = %v", got)
	}
	// The default accords exist only in state: the mirror holds all five.
	if n := kt.Accords().Accord().Len(); n != 5 {
		t.Errorf("accords = %d, want 5", n)
	}
	if a, ok := kt.Accords().Accord().Get(1); !ok {
		t.Error("accord 1 missing")
	} else if mode, _ := a.State().OverlayMode(); mode != kedgepath.AccordOverlayModeIsolated {
		t.Errorf("accord 1 overlay mode = %q", mode)
	}

	// Exact round trip: the daemon's whole tree, config and state, and the
	// client's mirror encode to the same JSON_IETF. With the dataplane off
	// nothing writes state once the engine has published level 3 (its
	// report comes before the level), so the two reads see one tree.
	resp, err := c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{kedgepath.Root().Path()}, Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Fatal(err)
	}
	var daemon any
	if n := resp.GetNotification(); len(n) != 1 || len(n[0].GetUpdate()) != 1 {
		t.Fatalf("Get / returned %d notifications", len(n))
	}
	if err := json.Unmarshal(resp.GetNotification()[0].GetUpdate()[0].GetVal().GetJsonIetfVal(), &daemon); err != nil {
		t.Fatal(err)
	}
	js, ok := tree.Match{In: mt.Root()}.JSON(tree.EncodeOpts{IETF: true})
	if !ok {
		t.Fatal("mirror encodes to nothing")
	}
	var client any
	if err := json.Unmarshal(js, &client); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(daemon, client); diff != "" {
		t.Errorf("mirror differs from the daemon's tree (-daemon +mirror):\n%s", diff)
	}
}
