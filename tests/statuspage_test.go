package tests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gpb "github.com/openconfig/gnmi/proto/gnmi"

	"github.com/guildhouse-co/kedge/gen/kedgepath"
	"github.com/guildhouse-co/kedge/models/session"
)

// artifactDir is where tests keep what a person may want to look at
// (screenshots): $KEDGE_TEST_ARTIFACTS, else kedge-test-artifacts in the
// temporary directory; one subdirectory per run, kept after the test.
func artifactDir(t testing.TB, what string) string {
	t.Helper()
	base := os.Getenv("KEDGE_TEST_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "kedge-test-artifacts")
	}
	dir := filepath.Join(base, fmt.Sprintf("%s-%s-%d", what, time.Now().Format("20060102-150405"), os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Printed on stdout so that it shows without -v too.
	fmt.Printf("%s: artifacts in %s\n", t.Name(), dir)
	return dir
}

// waitDOM returns a JavaScript expression that resolves to Date.now() as
// soon as cond holds in the page (checked at every DOM mutation, not by
// polling) and rejects after ms.
func waitDOM(cond string, ms int) string {
	return fmt.Sprintf(`new Promise((resolve, reject) => {
  const cond = () => { try { return !!(%s); } catch (e) { return false; } };
  if (cond()) { resolve(Date.now()); return; }
  let to;
  const mo = new MutationObserver(() => { if (cond()) { mo.disconnect(); clearTimeout(to); resolve(Date.now()); } });
  mo.observe(document.documentElement, {subtree: true, childList: true, characterData: true, attributes: true});
  to = setTimeout(() => { mo.disconnect(); reject(new Error("not within %d ms: " + %q)); }, %d);
})`, cond, ms, cond, ms)
}

// TestStatusPageInChromium opens the status page of a running daemon in
// headless Chromium and checks it as a person would see it: the level,
// the transition's steps, the mesh graph with each peer's state, the
// route counts and the session; screenshots at levels 5 and 1 are kept
// (the directory is printed); a level change set through gNMI shows on
// the open page within a second, without a reload; and the page fetched
// nothing but from the node.
func TestStatusPageInChromium(t *testing.T) {
	chromiumPath(t)
	n := startObservedNode(t)
	art := artifactDir(t, "statuspage")

	// Something on every panel: routes of three classes, two peers, a
	// session, a few transitions.
	k := kedgepath.Root().Kedge()
	var ups []*gpb.Update
	for i, class := range []kedgepath.RouteClass{kedgepath.RouteClassManagement, kedgepath.RouteClassMonitoring, kedgepath.RouteClassUnderlay} {
		r := k.Routes().Route(fmt.Sprintf("10.79.%d.0/24", i), 254).Config()
		ups = append(ups, &gpb.Update{Path: r.Device().Path(), Val: r.Device().Val("rtA")},
			&gpb.Update{Path: r.Class().Path(), Val: r.Class().Val(class)})
	}
	for i, name := range []string{"anchor", "homelab-2"} {
		p := k.Mesh().Peers().Peer(name).Config()
		ups = append(ups, &gpb.Update{Path: p.PublicKey().Path(), Val: p.PublicKey().Val(strings.Repeat(string(rune('C'+i)), 42) + "A=")},
			&gpb.Update{Path: p.Critical().Path(), Val: p.Critical().Val(i == 0)})
	}
	n.set(t, ups...)
	if _, err := n.session(t, session.Management); err != nil {
		t.Fatal(err)
	}
	n.level(t, 3)
	n.level(t, 5)

	var mu sync.Mutex
	var requests []string
	loaded := make(chan struct{}, 4)
	c := startChromium(t, func(m cdpMsg) {
		switch m.Method {
		case "Network.requestWillBeSent":
			var p struct {
				Request struct {
					URL string `json:"url"`
				} `json:"request"`
			}
			json.Unmarshal(m.Params, &p)
			mu.Lock()
			requests = append(requests, p.Request.URL)
			mu.Unlock()
		case "Page.loadEventFired":
			select {
			case loaded <- struct{}{}:
			default:
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sid, err := c.page(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, dom := range []string{"Page.enable", "Network.enable", "Runtime.enable"} {
		if err := c.call(ctx, sid, dom, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.call(ctx, sid, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1280, "height": 1500, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.call(ctx, sid, "Page.navigate", map[string]any{"url": n.url + "/"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-loaded:
	case <-ctx.Done():
		t.Fatal("the page never loaded")
	}

	// Level 5 with everything drawn.
	eval := func(expr string, out any) {
		t.Helper()
		if err := c.eval(ctx, sid, expr, out); err != nil {
			t.Fatal(err)
		}
	}
	eval(waitDOM(`document.body.dataset.level === "5" && document.getElementById("node").textContent === "observed" &&
		document.querySelectorAll("#mesh .peer").length === 2 && document.querySelectorAll("#steps .step").length >= 2 &&
		document.querySelectorAll("#sessions tr").length === 1 && document.getElementById("conn").textContent === "live"`, 10000), nil)
	var page struct {
		Effective string   `json:"effective"`
		Peers     []string `json:"peers"`
		Steps     []string `json:"steps"`
		Routes    string   `json:"routes"`
		Session   string   `json:"session"`
		History   int      `json:"history"`
	}
	eval(`({effective: document.getElementById("effective").textContent,
		peers: [...document.querySelectorAll("#mesh .peer")].map(g => g.dataset.peer + ":" + g.dataset.status + (g.classList.contains("critical") ? ":critical" : "")),
		steps: [...document.querySelectorAll("#steps .step span:first-child")].map(s => s.textContent),
		routes: document.getElementById("routes-total").textContent,
		session: document.querySelector("#sessions tr").textContent,
		history: document.querySelectorAll("#history tr").length})`, &page)
	if page.Effective != "5" || len(page.Peers) != 2 || page.Routes != "3 routes" || !strings.Contains(page.Session, "spiffe://kedge.test/ops/operator") ||
		page.History < 3 {
		t.Errorf("page at level 5: %+v", page)
	}
	for _, p := range page.Peers {
		if !strings.HasPrefix(p, "anchor:") && !strings.HasPrefix(p, "homelab-2:") {
			t.Errorf("peer %q on the graph", p)
		}
	}
	shot(t, c, ctx, sid, filepath.Join(art, "level-5.png"))

	// The level changes through gNMI; the open page shows it within a
	// second, measured from just before the Set to the DOM change.
	eval(`window.kedgeMarker = "same page"; window.levelShown = `+waitDOM(`document.getElementById("effective").textContent === "1"`, 20000)+`; true`, nil)
	start := time.Now()
	p := k.Posture().Config().Level()
	n.set(t, &gpb.Update{Path: p.Path(), Val: p.Val(1)})
	var shownMS int64
	eval(`window.levelShown`, &shownMS)
	took := time.UnixMilli(shownMS).Sub(start)
	t.Logf("level 1 shown on the page %v after the Set began", took)
	if took > time.Second {
		t.Errorf("level 1 shown %v after the Set, want within a second", took)
	}
	var same string
	eval(`window.kedgeMarker + " " + performance.getEntriesByType("navigation").length`, &same)
	if same != "same page 1" {
		t.Errorf("the page reloaded (%q)", same)
	}
	// The transition to 1 finished and the card turned the level-1 colour.
	eval(waitDOM(`document.body.dataset.level === "1" && document.getElementById("last-summary").textContent.startsWith("5 → 1, ok")`, 20000), nil)
	var border string
	eval(`getComputedStyle(document.querySelector(".posture")).borderLeftColor`, &border)
	if border != "rgb(210, 49, 60)" {
		t.Errorf("level-1 card border %q, want the lockdown red", border)
	}
	shot(t, c, ctx, sid, filepath.Join(art, "level-1.png"))

	// Nothing came from anywhere but the node.
	mu.Lock()
	defer mu.Unlock()
	if len(requests) < 4 {
		t.Errorf("requests seen: %v", requests)
	}
	for _, u := range requests {
		if !strings.HasPrefix(u, n.url+"/") {
			t.Errorf("the page fetched %s, not from the node", u)
		}
	}
}

// shot saves a screenshot of the page and checks it is a PNG of the
// viewport's size.
func shot(t *testing.T, c *cdp, ctx context.Context, sid, path string) {
	t.Helper()
	var r struct {
		Data string `json:"data"`
	}
	if err := c.call(ctx, sid, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != 1280 || sz.Y != 1500 {
		t.Errorf("screenshot %v, want 1280x1500", sz)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
