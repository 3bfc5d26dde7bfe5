package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/server/config"
)

// tfResource is what a generic gNMI Terraform resource manages: one
// container path and its attributes, every value a string (Terraform's
// map(string)), as README.md's Terraform section configures them.
type tfResource struct {
	path  string
	attrs map[string]string
}

// tfApply is the resource's create/update: one Set replacing... no, an
// update of the container with a JSON_IETF object of the attributes,
// each value a JSON string (RFC 7951 allows string-typed numbers; the
// tool sends them so).
func tfApply(t *testing.T, c gpb.GNMIClient, r tfResource) error {
	t.Helper()
	b, err := json.Marshal(r.attrs)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Set(rpcCtx(t), &gpb.SetRequest{Update: []*gpb.Update{{Path: path(t, r.path),
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: b}}}}})
	return err
}

// tfRead is the resource's read: a Get of the path in JSON_IETF, the
// object's members turned into strings the way the tool does
// (fmt-printed scalars), keyed by the member name as returned.
func tfRead(t *testing.T, c gpb.GNMIClient, p string) map[string]string {
	t.Helper()
	resp, err := c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, p)}, Encoding: gpb.Encoding_JSON_IETF, Type: gpb.GetRequest_CONFIG})
	if err != nil {
		t.Fatalf("get %s: %v", p, err)
	}
	out := map[string]string{}
	for _, n := range resp.GetNotification() {
		for _, u := range n.GetUpdate() {
			var obj map[string]any
			if err := json.Unmarshal(u.GetVal().GetJsonIetfVal(), &obj); err != nil {
				t.Fatalf("get %s: not a JSON object: %s", p, u.GetVal().GetJsonIetfVal())
			}
			for k, v := range obj {
				switch x := v.(type) {
				case string:
					out[k] = x
				case float64:
					out[k] = strconv.FormatFloat(x, 'f', -1, 64)
				default:
					out[k] = fmt.Sprint(x)
				}
			}
		}
	}
	return out
}

// tfPlan is the tool's plan: every configured attribute must be read back
// under its name with its value; anything else is a change it would make
// again, forever.
func tfPlan(want, got map[string]string) []string {
	var drift []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			drift = append(drift, fmt.Sprintf("%s: read back missing", k))
		} else if g != v {
			drift = append(drift, fmt.Sprintf("%s: %q read back as %q", k, v, g))
		}
	}
	sort.Strings(drift)
	return drift
}

// TestTerraformRoundTrip is the JSON round trip a generic gNMI Terraform
// resource relies on, as README.md's worked example configures it: each
// container's attributes, module-qualified ("kedge:level") and all sent
// as JSON strings (string-typed numbers included), are Set, read back
// with a JSON_IETF Get, compared member by member as the tool compares
// them, and the plan is clean — again after a second apply. Written
// without the module prefix, the same attributes read back missing (the
// drift the issue reports), which is why the README qualifies them.
func TestTerraformRoundTrip(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	writeSecret(t, pol, fmt.Sprintf("tiers:\n  master:\n    write: [\"/\"]\nunix:\n  uids:\n    %d: master\n", os.Getuid()))
	cfg := config.Defaults()
	cfg.DataDir, cfg.Listen, cfg.Socket = dir, "", filepath.Join(dir, "kedge.sock")
	cfg.NodeName, cfg.Dataplane, cfg.MetricsListen, cfg.Policy = "tf-node", "off", "off", pol
	if err := cfg.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	c, _ := startKedge(t, cfg)

	resources := []tfResource{
		{"/kedge/posture/config", map[string]string{"kedge:level": "3"}},
		{"/kedge/system/config", map[string]string{"kedge:cluster": "lab", "kedge:role": "homelab"}},
		{"/kedge/routes/route[prefix=10.20.0.0/16][table=254]/config", map[string]string{
			"kedge:prefix": "10.20.0.0/16", "kedge:table": "254", "kedge:next-hop": "192.0.2.1", "kedge:device": "eth0",
			"kedge:metric": "100", "kedge:class": "underlay", "kedge:owner": "terraform", "kedge:tier": "operator"}},
		{"/kedge/mesh/peers/peer[name=node-b]/config", map[string]string{
			"kedge:name": "node-b", "kedge:public-key": "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=", "kedge:endpoint": "192.0.2.7:51820",
			"kedge:persistent-keepalive": "25", "kedge:cluster": "lab", "kedge:critical": "true", "kedge:reconnect": "18446744073709551615"}},
		{"/kedge/accords/accord[level=4]/config", map[string]string{
			"kedge:level": "4", "kedge:keepalive-seconds": "20", "kedge:notary-sampling-percent": "60", "kedge:compiler-frozen": "false"}},
	}
	for _, r := range resources {
		t.Run(r.path, func(t *testing.T) {
			if err := tfApply(t, c, r); err != nil {
				t.Fatalf("apply: %v", err)
			}
			got := tfRead(t, c, r.path)
			if drift := tfPlan(r.attrs, got); len(drift) > 0 {
				t.Fatalf("plan after apply is not clean: %v (read back %v)", drift, got)
			}
			// Applying the same again changes nothing and stays clean.
			if err := tfApply(t, c, r); err != nil {
				t.Fatalf("second apply: %v", err)
			}
			if diff := cmp.Diff(got, tfRead(t, c, r.path)); diff != "" {
				t.Errorf("second apply changed what reads back (-first +second):\n%s", diff)
			}
		})
	}

	// Unqualified names are accepted on the way in but come back
	// qualified: the tool would see them missing and plan them again.
	plain := map[string]string{"level": "4"}
	if err := tfApply(t, c, tfResource{"/kedge/posture/config", plain}); err != nil {
		t.Fatalf("apply unqualified: %v", err)
	}
	got := tfRead(t, c, "/kedge/posture/config")
	if drift := tfPlan(plain, got); !cmp.Equal(drift, []string{"level: read back missing"}) || got["kedge:level"] != "4" {
		t.Errorf("unqualified attribute: plan %v, read back %v; want level missing and kedge:level 4", drift, got)
	}

	// Bad input is refused whole and changes nothing.
	bad := tfResource{"/kedge/routes/route[prefix=10.21.0.0/16][table=254]/config",
		map[string]string{"kedge:prefix": "10.21.0.0/16", "kedge:table": "254", "kedge:metric": "-1"}}
	if err := tfApply(t, c, bad); err == nil {
		t.Error("a negative metric was accepted")
	}
	if _, err := c.Get(rpcCtx(t), &gpb.GetRequest{Path: []*gpb.Path{path(t, bad.path)}, Encoding: gpb.Encoding_JSON_IETF}); err == nil {
		t.Error("the refused route exists")
	}
}
