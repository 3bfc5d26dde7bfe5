package underlaytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	"github.com/openconfig/gnmi/proto/gnmi_ext"
	"github.com/openconfig/ygot/ygot"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/models/underlay"
)

func newDevice(t *testing.T, o Options, mtls bool) (*Device, gpb.GNMIClient) {
	t.Helper()
	p, err := NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	o.TLS = &tls.Config{Certificates: []tls.Certificate{p.Server}}
	if mtls {
		o.TLS.ClientCAs, o.TLS.ClientAuth = p.CAPool, tls.RequireAndVerifyClientCert
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	ct := &tls.Config{RootCAs: p.CAPool, ServerName: "device"}
	if mtls {
		ct.Certificates = []tls.Certificate{p.Client}
	}
	cc, err := grpc.NewClient(d.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ct)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return d, gpb.NewGNMIClient(cc)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func vlanSet(t *testing.T, ids ...uint16) *gpb.SetRequest {
	t.Helper()
	var vs []underlay.VLAN
	for _, id := range ids {
		vs = append(vs, underlay.VLAN{ID: id, Members: []underlay.Member{{Device: "d", Port: "eth1"}}})
	}
	want, err := underlay.Compile("d", vs)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := underlay.Diff(&oc.Device{}, want)
	if err != nil {
		t.Fatal(err)
	}
	return underlay.SetRequest(ops)
}

func TestSetGetAndSchemaRefusal(t *testing.T) {
	d, c := newDevice(t, Options{}, false)
	ctx := ctxT(t)
	if _, err := c.Set(ctx, vlanSet(t, 10, 20)); err != nil {
		t.Fatal(err)
	}
	if got := d.Config(); len(got.Vlan) != 2 || got.Interface["eth1"].Ethernet.SwitchedVlan == nil {
		t.Fatalf("running config %+v", got)
	}
	// An invalid configuration is refused whole and changes nothing: a
	// VLAN id out of range, and a valid VLAN beside it in the same Set.
	bad := vlanSet(t, 30)
	bad.Replace = append(bad.Replace, &gpb.Update{
		Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "vlans"}, {Name: "vlan", Key: map[string]string{"vlan-id": "4095"}}}},
		Val:  &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"config":{"vlan-id":4095},"vlan-id":4095}`)}},
	})
	_, err := c.Set(ctx, bad)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid Set: %v, want InvalidArgument", err)
	}
	if got := d.Config(); len(got.Vlan) != 2 || got.Vlan[30] != nil {
		t.Fatalf("a refused Set changed the configuration: VLANs %d", len(got.Vlan))
	}
	// Wrong types are refused too.
	_, err = c.Set(ctx, &gpb.SetRequest{Update: []*gpb.Update{{
		Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "interfaces"}, {Name: "interface", Key: map[string]string{"name": "eth1"}},
			{Name: "subinterfaces"}, {Name: "subinterface", Key: map[string]string{"index": "5"}},
			{Name: "ipv4"}, {Name: "addresses"}, {Name: "address", Key: map[string]string{"ip": "10.0.0.999"}}}},
		Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(`{"config":{"ip":"10.0.0.999","prefix-length":24},"ip":"10.0.0.999"}`)}},
	}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad address: %v", err)
	}
	if d.Stats().Refused != 2 || d.Stats().Sets != 1 {
		t.Errorf("stats %+v", d.Stats())
	}
	// Get returns the configuration under /vlans and /interfaces.
	resp, err := c.Get(ctx, &gpb.GetRequest{Path: underlay.OwnedPaths(), Encoding: gpb.Encoding_JSON_IETF})
	if err != nil {
		t.Fatal(err)
	}
	u := resp.GetNotification()[0].GetUpdate()
	if len(u) != 2 || !strings.Contains(string(u[1].GetVal().GetJsonIetfVal()), `"vlan-id":20`) {
		t.Errorf("get: %v", u)
	}
}

func commitExt(id string, f func(*gnmi_ext.Commit)) []*gnmi_ext.Extension {
	cm := &gnmi_ext.Commit{Id: id}
	f(cm)
	return []*gnmi_ext.Extension{{Ext: &gnmi_ext.Extension_Commit{Commit: cm}}}
}

func TestCommitConfirmed(t *testing.T) {
	d, c := newDevice(t, Options{CommitConfirmed: true}, true)
	ctx := ctxT(t)
	req := vlanSet(t, 10)
	req.Extension = commitExt("c1", func(cm *gnmi_ext.Commit) {
		cm.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(time.Hour)}}
	})
	if _, err := c.Set(ctx, req); err != nil {
		t.Fatal(err)
	}
	if !d.Pending() || len(d.Config().Vlan) != 1 {
		t.Fatal("commit not pending or not applied")
	}
	// While pending, other Sets wait their turn.
	if _, err := c.Set(ctx, vlanSet(t, 20)); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("set while pending: %v", err)
	}
	// Cancel restores the configuration before the commit.
	cancel := &gpb.SetRequest{Extension: commitExt("c1", func(cm *gnmi_ext.Commit) { cm.Action = &gnmi_ext.Commit_Cancel{Cancel: &gnmi_ext.CommitCancel{}} })}
	if _, err := c.Set(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	if d.Pending() || len(d.Config().Vlan) != 0 {
		t.Fatal("cancel did not roll back")
	}
	// A commit nobody confirms rolls back on its timer.
	req.Extension = commitExt("c2", func(cm *gnmi_ext.Commit) {
		cm.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{RollbackDuration: durationpb.New(50 * time.Millisecond)}}
	})
	if _, err := c.Set(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitFor(ctx, func(c *oc.Device) bool { return len(c.Vlan) == 0 }); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Rollbacks != 1 {
		t.Errorf("stats %+v", d.Stats())
	}
	// Confirm keeps it; a wrong id is refused.
	req.Extension = commitExt("c3", func(cm *gnmi_ext.Commit) { cm.Action = &gnmi_ext.Commit_Commit{Commit: &gnmi_ext.CommitRequest{}} })
	if _, err := c.Set(ctx, req); err != nil {
		t.Fatal(err)
	}
	wrong := &gpb.SetRequest{Extension: commitExt("zz", func(cm *gnmi_ext.Commit) { cm.Action = &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}} })}
	if _, err := c.Set(ctx, wrong); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("confirm with a wrong id: %v", err)
	}
	confirm := &gpb.SetRequest{Extension: commitExt("c3", func(cm *gnmi_ext.Commit) { cm.Action = &gnmi_ext.Commit_Confirm{Confirm: &gnmi_ext.CommitConfirm{}} })}
	if _, err := c.Set(ctx, confirm); err != nil {
		t.Fatal(err)
	}
	if d.Pending() || len(d.Config().Vlan) != 1 {
		t.Fatal("confirm did not keep the commit")
	}
	// Without the feature, the extension is refused.
	_, c2 := newDevice(t, Options{}, false)
	if _, err := c2.Set(ctx, req); status.Code(err) != codes.Unimplemented {
		t.Fatalf("commit on a device without commit-confirmed: %v", err)
	}
}

func TestSubscribeOnChange(t *testing.T) {
	d, c := newDevice(t, Options{OnChange: true, Username: "kedge", Password: "pw"}, false)
	ctx := metadata.AppendToOutgoingContext(ctxT(t), "username", "kedge", "password", "pw")
	if _, err := c.Set(ctx, vlanSet(t, 10, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Set(ctxT(t), vlanSet(t, 30)); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no password: %v", err)
	}
	sc, err := c.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Subscription: []*gpb.Subscription{{Path: &gpb.Path{Elem: []*gpb.PathElem{{Name: "vlans"}}}, Mode: gpb.SubscriptionMode_ON_CHANGE}},
	}}}); err != nil {
		t.Fatal(err)
	}
	first, err := sc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range first.GetUpdate().GetUpdate() {
		if u.GetPath().GetElem()[0].GetName() != "vlans" {
			t.Errorf("sync outside /vlans: %v", u.GetPath())
		}
	}
	if len(first.GetUpdate().GetUpdate()) == 0 {
		t.Fatal("empty sync")
	}
	if r, err := sc.Recv(); err != nil || !r.GetSyncResponse() {
		t.Fatalf("want sync response: %v %v", r, err)
	}
	// A change behind the back: VLAN 20 removed, VLAN 10 renamed.
	if err := d.Mutate(func(c *oc.Device) {
		c.DeleteVlan(20)
		c.GetVlan(10).Name = ygot.String("renamed")
		c.GetOrCreateInterface("eth7") // outside /vlans: not sent
	}); err != nil {
		t.Fatal(err)
	}
	r, err := sc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	n := r.GetUpdate()
	if len(n.GetDelete()) != 1 || len(n.GetDelete()[0].GetElem()) != 2 || n.GetDelete()[0].GetElem()[1].GetKey()["vlan-id"] != "20" {
		t.Errorf("deletes %v, want the VLAN 20 entry", n.GetDelete())
	}
	if len(n.GetUpdate()) != 1 || n.GetUpdate()[0].GetVal().GetStringVal() != "renamed" {
		t.Errorf("updates %v", n.GetUpdate())
	}
	// Without the feature, Subscribe is refused.
	_, c2 := newDevice(t, Options{}, false)
	sc2, err := c2.Subscribe(ctxT(t))
	if err == nil {
		_, err = sc2.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("subscribe without on-change: %v", err)
	}
}

func TestDownUpAndTLS(t *testing.T) {
	d, c := newDevice(t, Options{}, true)
	ctx := ctxT(t)
	if _, err := c.Set(ctx, vlanSet(t, 10)); err != nil {
		t.Fatal(err)
	}
	d.Down()
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := c.Get(short, &gpb.GetRequest{Encoding: gpb.Encoding_JSON_IETF}); err == nil {
		t.Fatal("get from a device that is down")
	}
	if err := d.Up(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, &gpb.GetRequest{Encoding: gpb.Encoding_JSON_IETF}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("get after up: %v", err)
	}
	if len(d.Config().Vlan) != 1 {
		t.Error("configuration lost over down/up")
	}
	// A client without a certificate is refused by the mTLS device.
	other, err := NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(t, other.Client.Certificate[0]))
	cc, err := grpc.NewClient(d.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "device"})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	short2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if _, err := gpb.NewGNMIClient(cc).Get(short2, &gpb.GetRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("get with a foreign CA: %v, want Unavailable (TLS)", err)
	}
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
