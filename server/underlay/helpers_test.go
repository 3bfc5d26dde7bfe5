package underlay

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"google.golang.org/grpc/codes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/oc"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/gnmi/tree"
	"github.com/guildhouse-co/kedge/models/accord"
	"github.com/guildhouse-co/kedge/server/underlay/underlaytest"
	"github.com/guildhouse-co/kedge/yang"
)

// env is a store, a component and test devices with their PKI; the PKI
// directory is the credentials directory.
type env struct {
	t    testing.TB
	st   *store.Store
	dir  string
	pki  *underlaytest.PKI
	c    *Component
	devs map[string]*underlaytest.Device
	rec  *recordingNotary
	opt  Options
	// wait bounds each wait for a condition (30 s in tests).
	wait time.Duration
}

// devSpec is one test device.
type devSpec struct {
	name            string
	commitConfirmed bool
	onChange        bool
}

func newEnv(t testing.TB, specs []devSpec, o Options) *env {
	t.Helper()
	dir := t.TempDir()
	pki, err := underlaytest.NewPKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "store"), schema, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, dir: dir, pki: pki, devs: map[string]*underlaytest.Device{}, rec: &recordingNotary{}, wait: 30 * time.Second}
	var devJSON []string
	for _, s := range specs {
		d, err := underlaytest.New(underlaytest.Options{
			TLS:             &tls.Config{Certificates: []tls.Certificate{pki.Server}, ClientCAs: pki.CAPool, ClientAuth: tls.RequireAndVerifyClientCert},
			CommitConfirmed: s.commitConfirmed, OnChange: s.onChange,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Close)
		e.devs[s.name] = d
		devJSON = append(devJSON, fmt.Sprintf(`{"name":%q,"config":{"name":%q,"address":"127.0.0.1","port":%d,"server-name":"device",
			"ca-file":"ca.pem","cert-file":"client.pem","key-file":"client.key","commit-confirmed":%v,"on-change":%v}}`,
			s.name, s.name, d.Addr().Port(), s.commitConfirmed, s.onChange))
	}
	e.set("/kedge/underlay/devices", `{"device":[`+strings.Join(devJSON, ",")+`]}`)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o.CredentialsDir = dir
	if o.RetryMax == 0 {
		o.RetryMin, o.RetryMax = 20*time.Millisecond, 200*time.Millisecond
	}
	if o.Notary == nil {
		o.Notary = e.rec
	}
	e.opt = o
	e.start()
	return e
}

func (e *env) start() {
	c, err := New(e.st, e.opt)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Start(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	e.c = c
	e.t.Cleanup(func() { c.Close() })
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), e.wait)
	e.t.Cleanup(cancel)
	return ctx
}

// set commits a JSON value at a path, as a gNMI Set update would.
func (e *env) set(path, js string) {
	e.t.Helper()
	if _, err := e.st.Commit(e.ctx(), []store.Op{updateOp(e.t, path, js)}); err != nil {
		e.t.Fatalf("set %s: %v", path, err)
	}
}

func updateOp(t testing.TB, path, js string) store.Op {
	t.Helper()
	p, err := tree.ParsePath(path)
	if err != nil {
		t.Fatal(err)
	}
	return store.Op{Kind: store.OpUpdate, Path: p, Val: &gpb.TypedValue{Value: &gpb.TypedValue_JsonIetfVal{JsonIetfVal: []byte(js)}}}
}

// vlan puts a VLAN in the intent, tagged on eth1 of each named device.
func (e *env) vlan(id int, devices ...string) {
	e.t.Helper()
	var ms []string
	for _, d := range devices {
		ms = append(ms, fmt.Sprintf(`{"device":%q,"port":"eth1","config":{"device":%q,"port":"eth1"}}`, d, d))
	}
	e.set(fmt.Sprintf("/kedge/underlay/vlans/vlan[id=%d]", id),
		fmt.Sprintf(`{"config":{"id":%d,"name":"v%d"},"members":{"member":[%s]}}`, id, id, strings.Join(ms, ",")))
}

// propose writes a mutation proposal; extra is more config JSON members.
func (e *env) propose(id, tier string, vlans []int, extra string) {
	e.t.Helper()
	if len(vlans) > 0 {
		vs, _ := json.Marshal(vlans)
		extra = `"vlans":` + string(vs) + "," + extra
	}
	extra = strings.TrimSuffix(extra, ",")
	if extra != "" {
		extra = "," + extra
	}
	e.set(fmt.Sprintf("/kedge/underlay/mutations/mutation[id=%s]", id),
		fmt.Sprintf(`{"config":{"id":%q,"tier":%q,"proposer":"tester"%s}}`, id, tier, extra))
}

func (e *env) level(n uint8) {
	e.t.Helper()
	a, err := accord.Default(n)
	if err != nil {
		e.t.Fatal(err)
	}
	e.accord(a)
}

func (e *env) accord(a accord.Accord) {
	e.t.Helper()
	if err := e.c.SetAccord(e.ctx(), a); err != nil {
		e.t.Fatal(err)
	}
}

// leaf reads a leaf as a string ("" when unset).
func leaf(t *tree.Tree, path string) string {
	p, err := tree.ParsePath(path)
	if err != nil {
		panic(err)
	}
	tg, ok, err := t.Lookup(p)
	if err != nil || !ok || tg.Node == nil {
		return ""
	}
	return tg.In.Leaf(tg.Node).String()
}

// waitFor waits, without sleeping, until cond holds for the tree; every
// commit wakes it.
func (e *env) waitFor(what string, cond func(t *tree.Tree) bool) {
	e.t.Helper()
	ctx := e.ctx()
	var ok bool
	w, err := e.st.ReadWatch(func(t *tree.Tree, _ uint64) error { ok = cond(t); return nil })
	if err != nil {
		e.t.Fatal(err)
	}
	for !ok {
		if _, err := w.Next(ctx); err != nil && err != store.ErrResync {
			e.t.Fatalf("waiting for %s: %v\n%s", what, err, e.dump())
		}
		_ = e.st.Read(func(t *tree.Tree) error { ok = cond(t); return nil })
	}
}

// mutation returns a mutation's state leaf.
func mstate(id, leafName string) string {
	return "/kedge/underlay/mutations/mutation[id=" + id + "]/state/" + leafName
}

func dstate(dev, leafName string) string {
	return "/kedge/underlay/devices/device[name=" + dev + "]/state/" + leafName
}

func (e *env) waitStatus(id, status string) {
	e.t.Helper()
	e.waitFor("mutation "+id+" "+status, func(t *tree.Tree) bool { return leaf(t, mstate(id, "status")) == status })
}

func (e *env) get(path string) string {
	var v string
	_ = e.st.Read(func(t *tree.Tree) error { v = leaf(t, path); return nil })
	return v
}

// dump renders the underlay's, the devices' and the mutations' state for
// failure messages (not the intent, which can be large).
func (e *env) dump() string {
	var out []string
	_ = e.st.Read(func(t *tree.Tree) error {
		for _, path := range []string{"/kedge/underlay/state", "/kedge/underlay/devices", "/kedge/underlay/mutations"} {
			p, _ := tree.ParsePath(path)
			if tg, ok, _ := t.Lookup(p); ok {
				js, _ := tree.Match{In: tg.In}.JSON(tree.EncodeOpts{})
				if len(js) > 20000 {
					js = append(js[:20000], "..."...)
				}
				out = append(out, path+": "+string(js))
			}
		}
		return nil
	})
	return strings.Join(out, "\n")
}

// hasVLANs reports whether a device configuration holds exactly ids.
func hasVLANs(c *oc.Device, ids ...uint16) bool {
	if len(c.Vlan) != len(ids) {
		return false
	}
	for _, id := range ids {
		if c.Vlan[id] == nil {
			return false
		}
	}
	return true
}

// recordingNotary keeps what the component records.
type recordingNotary struct {
	mu   sync.Mutex
	recs []ExecutedMutation
}

func (r *recordingNotary) RecordUnderlay(_ context.Context, m ExecutedMutation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, m)
	return nil
}

func (r *recordingNotary) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.recs {
		out = append(out, m.ID)
	}
	return out
}

func faultOf(reject, hang bool) underlaytest.Fault {
	f := underlaytest.Fault{HangConfirms: hang}
	if reject {
		f.RejectSets = codes.FailedPrecondition
	}
	return f
}

// writeForeignCA writes the CA of another PKI to path.
func writeForeignCA(t testing.TB, path string) {
	t.Helper()
	p, err := underlaytest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
