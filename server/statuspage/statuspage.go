// Package statuspage serves the node's read-only status page: the posture
// level and effective level, a timeline of transitions with the last
// one's step timings, the mesh drawn as a graph with each peer's state,
// route counts by class and state, and the Shellstream sessions. The
// page's HTML, CSS and JavaScript are embedded in the binary and nothing
// is fetched from elsewhere (its Content-Security-Policy says so to the
// browser). It updates itself without reloading from server-sent events
// carrying the node summary whenever the change-feed follower publishes a
// new one.
package statuspage

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/guildhouse-co/kedge/models/summary"
)

//go:embed assets
var assets embed.FS

// Source gives the latest summary and a channel closed when a newer one
// is published (*observe.Follower).
type Source interface {
	Current() (*summary.Node, <-chan struct{})
}

// Timing of the event stream.
const (
	// minGap spaces events: a burst of commits (peer byte counters,
	// route states) costs each page one event per minGap at most, while
	// a level change still shows well within a second.
	minGap = 100 * time.Millisecond
	// keepalive is how often an idle stream sends a comment, so proxies
	// and the browser keep the connection.
	keepalive = 15 * time.Second
)

// csp allows the page its own origin only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page (/), its assets (/assets/...), the summary as
// JSON (/api/summary) and the event stream (/events).
func Handler(src Source) http.Handler {
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded directory exists at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	mux.HandleFunc("GET /api/summary", func(w http.ResponseWriter, r *http.Request) {
		n, _ := src.Current()
		if n == nil {
			http.Error(w, "no summary yet: the daemon is starting", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(n)
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) { events(w, r, src) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r)
	})
}

// events streams the summary as server-sent events: one "summary" event
// at once, then one whenever a newer summary is published (the latest
// only, so a slow page skips intermediate ones), until the client goes
// or the server shuts down.
func events(w http.ResponseWriter, r *http.Request, src Source) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	ctx := r.Context()
	ka := time.NewTicker(keepalive)
	defer ka.Stop()
	var last *summary.Node
	for {
		n, changed := src.Current()
		if n != nil && n != last {
			b, err := json.Marshal(n)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: summary\nid: %d\ndata: %s\n\n", n.Seq, b); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			last = n
			gap := time.NewTimer(minGap)
			select {
			case <-ctx.Done():
				gap.Stop()
				return
			case <-gap.C:
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-ka.C:
			if _, err := fmt.Fprint(w, ": keepalive\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}
