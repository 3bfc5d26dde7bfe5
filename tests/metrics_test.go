package tests

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/mirror"
	"github.com/guildhouse-co/kedge/models/session"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server"
	"github.com/guildhouse-co/kedge/server/config"
	"github.com/guildhouse-co/kedge/server/shellstream"
	"github.com/guildhouse-co/kedge/server/shellstream/spiffetest"
	"github.com/guildhouse-co/kedge/yang"
)

// observedNode is a daemon with its metrics listener, Shellstream (a test
// SPIRE authority) and the dataplane this machine allows: the VPP segment
// in a file of its own always, and as root the route and mesh backends
// in a throwaway namespace.
type observedNode struct {
	cfg  config.Config
	d    *server.Daemon
	c    gpb.GNMIClient
	cc   *grpc.ClientConn
	auth *spiffetest.Authority
	url  string
	sets int // gNMI Sets this test made
}

func startObservedNode(t *testing.T) *observedNode {
	t.Helper()
	auth, err := spiffetest.NewAuthority("kedge.test")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := spiffetest.StartWorkloadAPI(auth, auth.ID("/kedge/observed"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wl.Close)
	dir := t.TempDir()
	c := config.Defaults()
	c.DataDir = dir
	c.Listen = "127.0.0.1:0"
	c.Socket = filepath.Join(dir, "kedge.sock")
	c.NodeName = "observed"
	c.MetricsListen = "127.0.0.1:0"
	c.ShmPath = fmt.Sprintf("/dev/shm/kedge-test-metrics-%d-%d", os.Getpid(), rand.IntN(1<<30))
	t.Cleanup(func() { os.Remove(c.ShmPath) })
	c.BPFPinDir = "off"
	if os.Geteuid() == 0 {
		c.NetNS = newNS(t, "metrics").name
	}
	c.SPIFFESocket = wl.Addr()
	c.ShellstreamEndpoints = ssEcho(t, dir)
	c.Policy = ssPolicy(t, dir, map[string]string{auth.ID("/ops/operator").String(): "operator"})
	if err := c.Resolve(os.Hostname, func(string) error { return nil }); err != nil {
		t.Fatal(err)
	}
	gc, _, d := startKedgeDaemon(t, c)
	n := &observedNode{cfg: c, d: d, c: gc, cc: ssUnix(t, c.Socket), auth: auth, url: "http://" + d.MetricsAddr()}
	return n
}

// get fetches a path of the metrics listener.
func (n *observedNode) get(t testing.TB, p string) (int, string) {
	t.Helper()
	resp, err := http.Get(n.url + p)
	if err != nil {
		t.Fatalf("GET %s: %v", p, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape reads /metrics with the Prometheus text parser.
func (n *observedNode) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := n.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the value of the family's series whose labels include
// want (a counter, a gauge, or a histogram's count), and whether it is
// there.
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	total, found := 0.0, false
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total, found
}

func (n *observedNode) set(t testing.TB, ups ...*gpb.Update) {
	t.Helper()
	if _, err := n.c.Set(rpcCtx(t), &gpb.SetRequest{Update: ups}); err != nil {
		t.Fatalf("set: %v", err)
	}
	n.sets++
}

// summary reads the node through a mirror, as kedgectl does.
func (n *observedNode) summary(t testing.TB, sections ...summary.Section) *summary.Node {
	t.Helper()
	schema, err := yang.Schema()
	if err != nil {
		t.Fatal(err)
	}
	out := &summary.Node{}
	for _, s := range sections {
		var p *gpb.Path
		k := kedgepath.Root().Kedge()
		switch s {
		case summary.SectionPosture:
			p = k.Posture().Path()
		case summary.SectionRoutes:
			p = k.Routes().Path()
		case summary.SectionMesh:
			p = k.Mesh().Path()
		case summary.SectionSessions:
			p = k.Sessions().Path()
		}
		mt, err := mirror.Get(rpcCtx(t), n.c, schema, p)
		if err != nil {
			t.Fatal(err)
		}
		summary.Fill(out, mt, s)
	}
	return out
}

func (n *observedNode) level(t testing.TB, l uint8) {
	t.Helper()
	p := kedgepath.Root().Kedge().Posture().Config().Level()
	n.set(t, &gpb.Update{Path: p.Path(), Val: p.Val(l)})
	meshWait(t, fmt.Sprintf("effective level %d", l), 30*time.Second, func() bool {
		ps := n.summary(t, summary.SectionPosture).Posture
		return ps.Effective == l && ps.Last != nil && ps.Last.To == l && ps.Last.Result == "ok"
	})
}

func (n *observedNode) session(t *testing.T, typ session.Type) (*shellstream.ClientSession, error) {
	t.Helper()
	id := n.auth.ID("/ops/operator")
	tok, err := n.auth.JWTSVID(spiffetest.Claims{Subject: id, Audience: []string{n.cfg.ShellstreamID}})
	if err != nil {
		t.Fatal(err)
	}
	svid, err := n.auth.X509SVID(id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ssOpen(t, n.cc, shellstream.ClientConfig{SAT: tok, Chain: svid.Certificates, Key: svid.PrivateKey,
		Audience: n.cfg.ShellstreamID, Type: typ, Node: "console", Level: 5})
}

// TestMetricsAfterPostureWalk walks a daemon 5-4-3-2-1-2-3-4-5 with
// routes, mesh peers, a Subscribe stream, a granted and a denied
// Shellstream handshake and a refused login, then scrapes /metrics,
// parses it with the Prometheus text parser and checks the values
// against what happened and what the tree says.
func TestMetricsAfterPostureWalk(t *testing.T) {
	n := startObservedNode(t)
	if code, body := n.get(t, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	meshWait(t, "/readyz 200", 30*time.Second, func() bool { code, _ := n.get(t, "/readyz"); return code == 200 })

	// Routes of three classes and two mesh peers (config only).
	k := kedgepath.Root().Kedge()
	var ups []*gpb.Update
	for i, class := range []kedgepath.RouteClass{kedgepath.RouteClassManagement, kedgepath.RouteClassUnderlay, kedgepath.RouteClassPod} {
		r := k.Routes().Route(fmt.Sprintf("10.78.%d.0/24", i), 254).Config()
		ups = append(ups, &gpb.Update{Path: r.Device().Path(), Val: r.Device().Val("rtA")},
			&gpb.Update{Path: r.Class().Path(), Val: r.Class().Val(class)})
	}
	for i, name := range []string{"peer-a", "peer-b"} {
		p := k.Mesh().Peers().Peer(name).Config()
		key := strings.Repeat(string(rune('B'+i)), 42) + "A="
		ups = append(ups, &gpb.Update{Path: p.PublicKey().Path(), Val: p.PublicKey().Val(key)})
	}
	n.set(t, ups...)

	// A Subscribe stream, open during the walk.
	subCtx, endSub := context.WithCancel(context.Background())
	defer endSub()
	sub, err := n.c.Subscribe(subCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Send(&gpb.SubscribeRequest{Request: &gpb.SubscribeRequest_Subscribe{Subscribe: &gpb.SubscriptionList{
		Mode: gpb.SubscriptionList_STREAM, Subscription: []*gpb.Subscription{{Path: k.Posture().State().Path()}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Recv(); err != nil {
		t.Fatal(err)
	}

	// A management session granted at 5 (level 1 closes it later).
	if _, err := n.session(t, session.Management); err != nil {
		t.Fatalf("management session at level 5: %v", err)
	}
	// A login with no credentials over TCP: refused.
	tcp, err := grpc.NewClient(n.d.TCPAddr().String(), grpc.WithTransportCredentials(ssTLS(t, n.cfg.DataDir, n.cfg.NodeName)))
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if _, err := gpb.NewGNMIClient(tcp).Capabilities(rpcCtx(t), &gpb.CapabilityRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("capabilities without credentials: %v", err)
	}

	for _, l := range []uint8{4, 3, 2, 1, 2, 3, 4, 5} {
		n.level(t, l)
		if l == 2 {
			// Level 2 admits critical session types only: a routine
			// session is denied for posture.
			var d *shellstream.DeniedError
			if _, err := n.session(t, session.Routine); !errorsAs(err, &d) {
				t.Fatalf("routine session at level 2: %v, want a denial", err)
			}
		}
	}

	// The tree's own account, read through a mirror.
	tree := n.summary(t, summary.SectionPosture, summary.SectionRoutes, summary.SectionMesh, summary.SectionSessions)
	var fams map[string]*dto.MetricFamily
	meshWait(t, "the metrics to show the final tree", 30*time.Second, func() bool {
		fams = n.scrape(t)
		lvl, _ := metric(fams, "kedge_posture_effective_level", nil)
		routes, _ := metric(fams, "kedge_routes", nil)
		peers, _ := metric(fams, "kedge_mesh_peers", nil)
		sessions, _ := metric(fams, "kedge_shellstream_sessions", nil)
		return lvl == 5 && routes == 3 && peers == 2 && int(sessions) == len(tree.Sessions)
	})
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		got, ok := metric(fams, name, labels)
		if !ok || got != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}

	// Posture: levels, one transition per history entry with its
	// levels and result, and every transition's steps.
	check("kedge_posture_level", nil, 5)
	check("kedge_posture_effective_level", nil, 5)
	hist := tree.Posture.History
	if len(hist) < 9 {
		t.Fatalf("history has %d transitions, want the start and the walk's 8", len(hist))
	}
	check("kedge_posture_transitions_total", nil, float64(len(hist)))
	byLevels := map[[2]uint8]int{}
	for _, h := range hist {
		byLevels[[2]uint8{h.From, h.To}]++
	}
	for lv, c := range byLevels {
		check("kedge_posture_transitions_total", map[string]string{"from": strconv.Itoa(int(lv[0])), "to": strconv.Itoa(int(lv[1])), "result": "ok"}, float64(c))
	}
	check("kedge_posture_transition_duration_seconds", map[string]string{"result": "ok"}, float64(len(hist)))
	steps := map[string]bool{}
	for _, s := range tree.Posture.Last.Steps {
		steps[s.Name] = true
	}
	if !steps["shm"] || !steps["handshake"] {
		t.Errorf("last transition's steps %v lack shm or handshake", tree.Posture.Last.Steps)
	}
	for name := range steps {
		// These backends take part in every transition.
		check("kedge_posture_step_duration_seconds", map[string]string{"step": name, "result": "ok"}, float64(len(hist)))
	}

	// gNMI: every Set this test made, each one a commit; the refused
	// login; the stream open until it ends.
	check("kedge_gnmi_rpcs_total", map[string]string{"method": "Set", "code": "OK"}, float64(n.sets))
	check("kedge_commit_duration_seconds", nil, float64(n.sets))
	check("kedge_gnmi_rpcs_total", map[string]string{"method": "Capabilities", "code": "Unauthenticated"}, 1)
	check("kedge_gnmi_subscribers", nil, 1)
	if gets, _ := metric(fams, "kedge_gnmi_rpcs_total", map[string]string{"method": "Get", "code": "OK"}); gets < 9 {
		t.Errorf("Get OK = %v, want at least the walk's reads", gets)
	}

	// The tree's gauges match the tree.
	for _, c := range tree.Routes.ByClass {
		for st, v := range c.Status {
			check("kedge_routes", map[string]string{"class": c.Class, "status": st}, float64(v))
		}
	}
	peers := map[string]int{}
	for _, p := range tree.Mesh.Peers {
		peers[p.Status]++
	}
	for st, v := range peers {
		check("kedge_mesh_peers", map[string]string{"status": st}, float64(v))
	}
	sessions := map[string]int{}
	for _, x := range tree.Sessions {
		sessions[x.Status]++
	}
	if len(tree.Sessions) != 1 {
		t.Errorf("sessions in the tree: %+v, want the management session", tree.Sessions)
	}
	for st, v := range sessions {
		check("kedge_shellstream_sessions", map[string]string{"status": st}, float64(v))
	}

	// Shellstream: one handshake timed, a posture denial at level 2 on
	// the way down and one on the way up.
	check("kedge_shellstream_handshake_duration_seconds", nil, 1)
	check("kedge_shellstream_denials_total", map[string]string{"reason": "posture"}, 2)
	if t.Failed() {
		for _, m := range fams["kedge_shellstream_denials_total"].GetMetric() {
			t.Logf("denials %v = %v", m.GetLabel(), m.GetCounter().GetValue())
		}
	}

	// The change feed's readers are caught up or nearly; the follower
	// timed each commit it read.
	for _, r := range []string{"posture", "status"} {
		if _, ok := metric(fams, "kedge_change_feed_lag_commits", map[string]string{"reader": r}); !ok {
			t.Errorf("no kedge_change_feed_lag_commits for %s", r)
		}
	}
	if c, _ := metric(fams, "kedge_change_feed_delay_seconds", nil); c < float64(n.sets) {
		t.Errorf("kedge_change_feed_delay_seconds counted %v commits, want at least the %d Sets", c, n.sets)
	}

	// The stream ends: the subscriber gauge goes back to 0.
	endSub()
	meshWait(t, "kedge_gnmi_subscribers 0", 20*time.Second, func() bool {
		v, _ := metric(n.scrape(t), "kedge_gnmi_subscribers", nil)
		return v == 0
	})
}

func errorsAs(err error, target **shellstream.DeniedError) bool {
	if err == nil {
		return false
	}
	d, ok := err.(*shellstream.DeniedError)
	if ok {
		*target = d
	}
	return ok || strings.Contains(err.Error(), "denied")
}
