package auth

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/target"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/models/intent"
	"github.com/guildhouse-co/kedge/yang"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// tierEnv is a gNMI target over a fresh store with the real Authorizer,
// called directly with identities in the context.
type tierEnv struct {
	t   testing.TB
	st  *store.Store
	srv *target.Server
}

func newTierEnv(t testing.TB, policy *Policy) *tierEnv {
	t.Helper()
	return newTierEnvWith(t, Authorizer{Policy: policy})
}

func newTierEnvWith(t testing.TB, auth target.Authorizer) *tierEnv {
	t.Helper()
	st := yangtest.Store(t)
	srv, err := target.New(st, target.Options{Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() }) // before the store (yangtest closes it after)
	return &tierEnv{t: t, st: st, srv: srv}
}

func as(tier Tier) context.Context {
	return WithIdentity(context.Background(), Identity{Name: "someone-" + string(tier), Tier: tier, Method: MethodPassword})
}

func tp(t testing.TB, s string) *gpb.Path {
	t.Helper()
	e, err := tree.ParsePath(s)
	if err != nil {
		t.Fatal(err)
	}
	return &gpb.Path{Elem: e}
}

func ietf(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(s)}}
}

func jsonv(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_JsonVal{JsonVal: []byte(s)}}
}

func strv(s string) *gpb.TypedValue {
	return &gpb.TypedValue{Value: &gpb.TypedValue_StringVal{StringVal: s}}
}

func (e *tierEnv) set(tier Tier, req *gpb.SetRequest) error {
	_, err := e.srv.Set(as(tier), req)
	return err
}

func (e *tierEnv) must(tier Tier, req *gpb.SetRequest) {
	e.t.Helper()
	if err := e.set(tier, req); err != nil {
		e.t.Fatalf("Set as %s: %v", tier, err)
	}
}

func upd(t testing.TB, path string, v *gpb.TypedValue) *gpb.SetRequest {
	return &gpb.SetRequest{Update: []*gpb.Update{{Path: tp(t, path), Val: v}}}
}

func rep(t testing.TB, path string, v *gpb.TypedValue) *gpb.SetRequest {
	return &gpb.SetRequest{Replace: []*gpb.Update{{Path: tp(t, path), Val: v}}}
}

func delete_(t testing.TB, path string) *gpb.SetRequest {
	return &gpb.SetRequest{Delete: []*gpb.Path{tp(t, path)}}
}

const (
	masterRoute = "/kedge/routes/route[prefix=10.1.0.0/16][table=254]"
	opRoute     = "/kedge/routes/route[prefix=10.2.0.0/16][table=254]"
	bareRoute   = "/kedge/routes/route[prefix=10.3.0.0/16][table=254]"
	masterPod   = "/kedge/pods/pod[container-id=c1][ifname=eth0]"
	masterMut   = "/kedge/underlay/mutations/mutation[id=m1]"
	opMut       = "/kedge/underlay/mutations/mutation[id=m2]"
)

// fixture: entries master wrote, of tier master, operator and unset.
func (e *tierEnv) fixture() {
	t := e.t
	e.must(Master, upd(t, masterRoute+"/config", ietf(`{"next-hop":"192.0.2.1","device":"eth0","class":"underlay","tier":"master"}`)))
	e.must(Master, upd(t, opRoute+"/config", ietf(`{"next-hop":"192.0.2.2","device":"eth0","class":"underlay","tier":"operator"}`)))
	e.must(Master, upd(t, bareRoute+"/config", ietf(`{"next-hop":"192.0.2.3","device":"eth0","class":"underlay"}`)))
	e.must(Master, upd(t, masterPod+"/config", ietf(`{"netns":"/run/netns/p1","tier":"master","allowed-mode":"underlay"}`)))
	e.must(Master, upd(t, "/kedge/underlay/devices/device[name=d1]/config", ietf(`{"address":"192.0.2.10"}`)))
	e.must(Master, upd(t, masterMut+"/config", ietf(`{"description":"vlan 10","tier":"master","devices":["d1"]}`)))
	e.must(Master, upd(t, opMut+"/config", ietf(`{"description":"vlan 20","tier":"operator","devices":["d1"]}`)))
}

// Every way a lower tier could put a tier above its own into the tree,
// or change what a higher tier declared, is refused with
// PERMISSION_DENIED naming the leaf and the tiers, and changes nothing;
// what stays within the writer's tier is allowed.
func TestTierLeavesNeverAboveTheWriter(t *testing.T) {
	e := newTierEnv(t, DefaultPolicy())
	e.fixture()
	newRoute := "/kedge/routes/route[prefix=10.9.0.0/16][table=254]"
	for _, tc := range []struct {
		name string
		tier Tier
		req  *gpb.SetRequest
		want []string // nil: allowed; else the refusal names these
	}{
		// Declaring a tier above one's own, in every encoding and at every level.
		{"leaf", Operator, upd(t, newRoute+"/config/tier", strv("master")), []string{"config/tier", "master", "operator"}},
		{"config JSON_IETF", Operator, upd(t, newRoute+"/config", ietf(`{"device":"eth0","tier":"master"}`)), []string{newRoute, "master"}},
		{"config JSON", Operator, upd(t, newRoute+"/config", jsonv(`{"device":"eth0","tier":"master"}`)), []string{"master"}},
		{"entry JSON_IETF", Operator, rep(t, newRoute, ietf(`{"config":{"device":"eth0","tier":"site-owner"}}`)), []string{"site-owner"}},
		{"list JSON_IETF qualified", Operator, upd(t, "/kedge/routes",
			ietf(`{"kedge:route":[{"prefix":"10.9.0.0/16","table":254,"config":{"prefix":"10.9.0.0/16","table":254,"device":"eth0","tier":"master"}}]}`)),
			[]string{"master"}},
		{"pod", Operator, upd(t, "/kedge/pods/pod[container-id=c2][ifname=eth0]/config", ietf(`{"tier":"master","allowed-mode":"underlay"}`)), []string{"master"}},
		{"mutation", Operator, upd(t, "/kedge/underlay/mutations/mutation[id=m3]/config", ietf(`{"description":"x","tier":"site-owner","devices":["d1"]}`)), []string{"site-owner"}},
		{"site-owner declares master", SiteOwner, upd(t, newRoute+"/config", ietf(`{"device":"eth0","tier":"master"}`)), []string{"master"}},
		{"raise an operator route", Operator, upd(t, opRoute+"/config/tier", strv("master")), []string{"master"}},

		// Changing or removing what a higher tier declared.
		{"next-hop of a master route", Operator, upd(t, masterRoute+"/config/next-hop", strv("192.0.2.99")), []string{masterRoute, "config/tier is master", "above operator"}},
		{"unset a master route's tier", Operator, delete_(t, masterRoute+"/config/tier"), []string{masterRoute, "master"}},
		{"lower a master route's tier", Operator, upd(t, masterRoute+"/config/tier", strv("operator")), []string{masterRoute, "master"}},
		{"delete a master route", Operator, delete_(t, masterRoute), []string{masterRoute}},
		{"delete its config", Operator, delete_(t, masterRoute+"/config"), []string{masterRoute}},
		{"delete every route", Operator, delete_(t, "/kedge/routes"), []string{masterRoute}},
		{"replace every route", Operator, rep(t, "/kedge/routes",
			ietf(`{"kedge:route":[{"prefix":"10.2.0.0/16","table":254,"config":{"prefix":"10.2.0.0/16","table":254,"device":"eth1","tier":"operator"}}]}`)),
			[]string{masterRoute}},
		{"master pod's mode", Operator, upd(t, masterPod+"/config/allowed-mode", strv("overlay")), []string{masterPod}},
		{"delete every pod", Operator, delete_(t, "/kedge/pods"), []string{masterPod}},
		{"master mutation", Operator, upd(t, masterMut+"/config/description", strv("vlan 11")), []string{masterMut}},
		{"delete every mutation", Operator, delete_(t, "/kedge/underlay/mutations"), []string{masterMut}},
		{"site-owner deletes a master route", SiteOwner, delete_(t, masterRoute), []string{masterRoute, "above site-owner"}},

		// Allowed: at or below one's own tier.
		{"own tier", Operator, upd(t, newRoute+"/config", ietf(`{"device":"eth0","tier":"operator"}`)), nil},
		{"lower tier", Operator, upd(t, "/kedge/routes/route[prefix=10.8.0.0/16][table=254]/config", ietf(`{"device":"eth0","tier":"observer"}`)), nil},
		{"tier unset (read as operator)", Operator, upd(t, "/kedge/routes/route[prefix=10.7.0.0/16][table=254]/config", ietf(`{"device":"eth0"}`)), nil},
		{"change an operator route", Operator, upd(t, opRoute+"/config/next-hop", strv("192.0.2.22")), nil},
		{"change an unset route", Operator, upd(t, bareRoute+"/config/device", strv("eth1")), nil},
		{"operator mutation", Operator, upd(t, opMut+"/config/description", strv("vlan 21")), nil},
		{"mutation of a lower tier", Operator, upd(t, "/kedge/underlay/mutations/mutation[id=m4]/config", ietf(`{"description":"y","tier":"observer","devices":["d1"]}`)), nil},
		{"site-owner raises to site-owner", SiteOwner, upd(t, opRoute+"/config/tier", strv("site-owner")), nil},
		{"site-owner lowers its own", SiteOwner, upd(t, opRoute+"/config/tier", strv("operator")), nil},
		{"master changes anything", Master, upd(t, masterRoute+"/config/tier", strv("observer")), nil},
		{"master deletes everything", Master, delete_(t, "/kedge/routes"), nil},
	} {
		seq := e.st.Seq()
		err := e.set(tc.tier, tc.req)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: refused: %v", tc.name, err)
			}
			continue
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", tc.name, err)
			continue
		}
		for _, w := range append(tc.want, string(tc.tier)) {
			if !strings.Contains(status.Convert(err).Message(), w) {
				t.Errorf("%s: message %q lacks %q", tc.name, status.Convert(err).Message(), w)
			}
		}
		if e.st.Seq() != seq {
			t.Errorf("%s: a refused Set committed", tc.name)
		}
	}
}

// A commit-confirmed is checked the same way, and a refused one leaves
// nothing pending.
func TestTierCheckedOnCommitConfirmed(t *testing.T) {
	e := newTierEnv(t, DefaultPolicy())
	e.fixture()
	req := upd(t, "/kedge/routes/route[prefix=10.9.0.0/16][table=254]/config", ietf(`{"device":"eth0","tier":"master"}`))
	req.Extension = []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: &gnmi_ext.Commit{Id: "c1",
		Action: &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(time.Minute)}}}}}}
	if err := e.set(Operator, req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("commit-confirmed declaring master: %v", err)
	}
	// Nothing pending: a plain Set goes through.
	e.must(Operator, upd(t, opRoute+"/config/device", strv("eth3")))
}

// With a policy that lets observers write routes, an observer may not
// leave the tier unset: the posture rules would read it as operator.
func TestUnsetTierRanksAsThePostureRulesReadIt(t *testing.T) {
	p, err := ParsePolicy([]byte("tiers:\n  master: {write: [/]}\n  observer: {write: [/kedge/routes]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	e := newTierEnv(t, p)
	r := "/kedge/routes/route[prefix=10.9.0.0/16][table=254]/config"
	err = e.set(Observer, upd(t, r, ietf(`{"device":"eth0"}`)))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "unset, which the posture rules read as operator") ||
		!strings.Contains(err.Error(), "set config/tier to observer") {
		t.Fatalf("observer route without a tier: %v", err)
	}
	e.must(Observer, upd(t, r, ietf(`{"device":"eth0","tier":"observer"}`)))
}

// tierLists' unset tiers are what the posture rules do: at level 3 an
// underlay route and an underlay pod without a tier are withheld as
// operator's.
func TestEmptyTierMatchesPostureRules(t *testing.T) {
	e := newTierEnv(t, DefaultPolicy())
	e.must(Master, upd(t, bareRoute+"/config", ietf(`{"next-hop":"192.0.2.3","device":"eth0","class":"underlay"}`)))
	e.must(Master, upd(t, "/kedge/pods/pod[container-id=c9][ifname=eth0]/config",
		ietf(`{"addresses":["10.244.0.9/32"],"host-ifname":"veth9","allowed-mode":"underlay"}`)))
	a, err := accord.Default(3)
	if err != nil {
		t.Fatal(err)
	}
	var withheld []string
	e.st.Read(func(tr *tree.Tree) error {
		rs, err := intent.Routes(tr, a)
		for _, w := range rs.Withheld {
			withheld = append(withheld, w.Reason)
		}
		return err
	})
	want := map[string]Tier{"/kedge/routes/route": "", "/kedge/pods/pod": ""}
	for _, tl := range tierLists {
		if _, ok := want[tl.list]; ok {
			want[tl.list] = tl.empty
		}
	}
	for _, w := range []string{"underlay route of tier " + string(want["/kedge/routes/route"]),
		"pod in underlay mode of tier " + string(want["/kedge/pods/pod"])} {
		if !slices.ContainsFunc(withheld, func(r string) bool { return strings.Contains(r, w) }) {
			t.Errorf("no withheld reason %q in %q: tierLists and models/intent disagree on an unset tier", w, withheld)
		}
	}
}

// Every config leaf of type tier in the schema is either a tier list's
// leaf or deliberately exempt.
func TestTierListsCoverSchema(t *testing.T) {
	s, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bindTierLists(); err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, tl := range tierLists {
		covered[tl.leaf] = true
	}
	// Which tiers may run underlay mutations at a level is the accord's
	// policy, not an entry's rank: whoever may write accords sets every
	// posture rule, and the policy decides who that is (master only, by
	// default).
	// A gRIBI session's tier is its identity's, written by the gRIBI
	// service; no gNMI Set may change /kedge/aft at all.
	exempt := map[string]bool{"/kedge/accords/accord/config/underlay-mutation-tiers": true,
		"/kedge/aft/sessions/session/config/tier": true}
	var walk func(n *tree.Node)
	walk = func(n *tree.Node) {
		if n.Config && n.Type != nil && n.Type.Name == "tier" && !covered[n.Path] && !exempt[n.Path] {
			t.Errorf("%s is a tier leaf that WriteChanges does not check (add it to tierLists)", n.Path)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(s.Root)
}
