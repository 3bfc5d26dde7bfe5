package observe

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/gnmi/store"
	"github.com/guildhouse-co/kedge/models/summary"
	"github.com/guildhouse-co/kedge/server/statuspage"
	"github.com/guildhouse-co/kedge/yang/yangtest"
)

// next waits for the follower's next summary after the one it gave with
// changed, 10 s at most.
func next(t *testing.T, f *Follower, changed <-chan struct{}) (*summary.Node, <-chan struct{}) {
	t.Helper()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no new summary within 10 s")
	}
	return f.Current()
}

// The follower publishes a summary at start and after each burst of
// commits, recomputing only the sections the commits touched; it stops
// with the store.
func TestFollower(t *testing.T) {
	st := yangtest.Store(t)
	var delays atomic.Int64
	var seen atomic.Pointer[summary.Node]
	f := NewFollower(st, FollowerOptions{OnDelay: func(time.Duration) { delays.Add(1) }, OnSummary: func(n *summary.Node) { seen.Store(n) }})
	if n, _ := f.Current(); n != nil || f.Following() {
		t.Fatal("a summary before Run")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	// Read the first summary's channel before Run publishes it: the
	// first publication closes the channel we hold.
	_, changed := f.Current()
	go func() { done <- f.Run(ctx) }()
	first, changed := next(t, f, changed)
	if first.Routes.Total != 0 || len(first.Routes.ByClass) != len(kedgepath.RouteClassValues()) {
		t.Fatalf("first summary routes %+v", first.Routes)
	}

	k := kedgepath.Root().Kedge()
	if _, err := st.CommitState(ctx, []store.Op{store.Update(k.Posture().State().EffectiveLevel(), uint8(2))}); err != nil {
		t.Fatal(err)
	}
	n, changed := next(t, f, changed)
	if n.Posture.Effective != 2 || n.Seq != st.Seq() || !f.Following() || f.Processed() != n.Seq {
		t.Fatalf("after the level: effective %d seq %d (store %d, processed %d)", n.Posture.Effective, n.Seq, st.Seq(), f.Processed())
	}
	if seen.Load() != n {
		t.Error("OnSummary did not see the published summary")
	}
	r := k.Routes().Route("10.1.0.0/16", 254).Config()
	if _, err := st.Commit(ctx, []store.Op{store.Update(r.Device(), "eth0"), store.Update(r.Class(), kedgepath.RouteClassUnderlay)}); err != nil {
		t.Fatal(err)
	}
	m, _ := next(t, f, changed)
	if m.Routes.Total != 1 || m.Routes.ByClass[4].Status[summary.StatusUnreported] != 1 {
		t.Fatalf("after the route: %+v", m.Routes)
	}
	// A section a commit did not touch is the previous summary's: the
	// level's commit kept the first summary's route counts, the route's
	// recounted them.
	if &n.Routes.ByClass[0] != &first.Routes.ByClass[0] {
		t.Error("the routes section was recomputed for a posture commit")
	}
	if &m.Routes.ByClass[0] == &n.Routes.ByClass[0] {
		t.Error("the routes section was not recomputed for a route commit")
	}
	if n.Routes.Total != 0 {
		t.Error("a published summary changed")
	}
	if delays.Load() < 2 {
		t.Errorf("OnDelay called %d times for 2 commits", delays.Load())
	}

	st.Close()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("Run after the store closed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run still runs after the store closed")
	}
	if f.Following() {
		t.Error("Following after the store closed")
	}
}

// A section whose recount was costly is held back for holdFactor times
// that cost (the store's read lock blocks commits meanwhile), while the
// other sections follow at once; it is recounted when its timer fires, and
// Processed stays behind until then. The clock is the test's: it moves
// only when the test says, and by step at every reading.
func TestFollowerHoldsBackCostlySections(t *testing.T) {
	st := yangtest.Store(t)
	var base, step atomic.Int64 // nanoseconds
	now := func() time.Time { return time.Unix(0, base.Add(step.Load())) }
	fire := make(chan time.Time, 1)
	// The follower publishes what is due before it sets its timer for
	// what it holds back: the test waits for the timer, not the summary.
	waits := make(chan time.Duration, 8)
	f := NewFollower(st, FollowerOptions{Now: now, After: func(d time.Duration) <-chan time.Time {
		select {
		case waits <- d:
		default: // never block the follower
		}
		return fire
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, changed := f.Current()
	go f.Run(ctx)
	_, changed = next(t, f, changed)

	k := kedgepath.Root().Kedge()
	route := func(prefix string) {
		t.Helper()
		r := k.Routes().Route(prefix, 254).Config()
		if _, err := st.Commit(ctx, []store.Op{store.Update(r.Device(), "eth0")}); err != nil {
			t.Fatal(err)
		}
	}
	// The first route's recount "takes" 10 s: every clock reading moves
	// it 10 s on, and only the routes section is recounted.
	step.Store(int64(10 * time.Second))
	route("10.1.0.0/16")
	n, changed := next(t, f, changed)
	if n.Routes.Total != 1 || f.Processed() != st.Seq() {
		t.Fatalf("first route: total %d, processed %d of %d", n.Routes.Total, f.Processed(), st.Seq())
	}
	step.Store(0)
	route("10.2.0.0/16")
	if _, err := st.CommitState(ctx, []store.Op{store.Update(k.Posture().State().EffectiveLevel(), uint8(3))}); err != nil {
		t.Fatal(err)
	}
	// The level is published without the second route.
	for n.Posture.Effective != 3 {
		n, changed = next(t, f, changed)
	}
	if n.Routes.Total != 1 || f.Processed() >= st.Seq() {
		t.Fatalf("level published: routes %d (want the held-back 1), processed %d of %d", n.Routes.Total, f.Processed(), st.Seq())
	}
	select {
	case w := <-waits:
		if w <= 0 || w > 4*10*time.Second {
			t.Errorf("held back for %v, want at most 40 s", w)
		}
	case <-time.After(time.Minute):
		t.Fatal("the follower set no timer for the held-back routes")
	}
	// Past the hold, the timer fires and the routes are recounted.
	base.Add(int64(time.Minute))
	fire <- time.Time{}
	n, _ = next(t, f, changed)
	if n.Routes.Total != 2 || n.Posture.Effective != 3 || f.Processed() != st.Seq() {
		t.Fatalf("after the hold: routes %d level %d processed %d of %d", n.Routes.Total, n.Posture.Effective, f.Processed(), st.Seq())
	}
}

// The listener: health always, readiness naming what is missing, the
// page read-only, the page's event stream delivering summaries and ending
// at Close.
func TestServer(t *testing.T) {
	st := yangtest.Store(t)
	f := NewFollower(st, FollowerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, changed := f.Current()
	go f.Run(ctx)
	_, changed = next(t, f, changed)
	var ready atomic.Bool
	srv, err := Listen(Options{Addr: "127.0.0.1:0", Page: statuspage.Handler(f),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "kedge_up 1\n") }),
		Ready: func() []string {
			if ready.Load() {
				return nil
			}
			return []string{"the posture engine has not converged", "the gNMI listeners are not up"}
		}})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr().String()
	get := func(method, p string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url+p, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz %d %q", code, body)
	}
	if code, body := get("GET", "/readyz"); code != 503 || body != "not ready: the posture engine has not converged; the gNMI listeners are not up\n" {
		t.Errorf("/readyz before ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, body := get("GET", "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz when ready: %d %q", code, body)
	}
	if code, body := get("GET", "/metrics"); code != 200 || body != "kedge_up 1\n" {
		t.Errorf("/metrics %d %q", code, body)
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if code, _ := get(m, "/"); code != http.StatusMethodNotAllowed {
			t.Errorf("%s / = %d, want 405", m, code)
		}
	}
	if code, body := get("GET", "/"); code != 200 || !strings.Contains(body, "/assets/app.js") {
		t.Errorf("GET / = %d", code)
	}
	if code, body := get("GET", "/api/summary"); code != 200 || !strings.Contains(body, `"effective-level"`) {
		t.Errorf("GET /api/summary = %d %s", code, body)
	}

	// The event stream: the summary now, then the next one.
	resp, err := http.Get(url + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events content type %q", ct)
	}
	lines := make(chan string, 64)
	go func() {
		s := bufio.NewScanner(resp.Body)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	event := func() string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("the event stream ended")
				}
				if strings.HasPrefix(l, "data: ") {
					return l
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no event within 10 s")
			}
		}
	}
	if e := event(); !strings.Contains(e, `"effective-level":0`) {
		t.Errorf("first event %s", e)
	}
	k := kedgepath.Root().Kedge()
	if _, err := st.CommitState(ctx, []store.Op{store.Update(k.Posture().State().EffectiveLevel(), uint8(1))}); err != nil {
		t.Fatal(err)
	}
	if e := event(); !strings.Contains(e, `"effective-level":1`) {
		t.Errorf("event after the change %s", e)
	}
	_ = changed

	// Close ends the open stream at once rather than waiting for it.
	start := time.Now()
	if err := srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with an event stream open", d)
	}
}
