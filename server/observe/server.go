// Package observe owns the daemon's observation listener and what feeds
// it: an HTTP server (loopback by default, --metrics-listen) with the
// Prometheus metrics at /metrics, liveness at /healthz (the process
// serves HTTP), readiness at /readyz (the store is open and followed, the
// posture engine has converged, the gNMI listeners are up: what the
// DaemonSet's probes ask), and the read-only status page at / (package
// statuspage); and the Follower, which keeps the node's summary current
// from the store's change feed for the page and the metrics. Nothing here
// writes the tree or reaches a backend.
package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Options configure a Server.
type Options struct {
	// Addr is the TCP address to listen on (host:port; port 0 picks one).
	Addr   string
	Logger *slog.Logger
	// Metrics serves /metrics; Page serves everything else under / (nil:
	// 404).
	Metrics http.Handler
	Page    http.Handler
	// Ready reports what keeps the daemon from being ready, one reason
	// per item; none means ready.
	Ready func() []string
}

// Server is the observation listener. Create it with Listen; stop it
// with Close.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	errc   chan error
	cancel context.CancelFunc // ends the requests' base context
}

// Listen binds o.Addr and serves in the background.
func Listen(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	mux := http.NewServeMux()
	if o.Metrics != nil {
		mux.Handle("GET /metrics", o.Metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var why []string
		if o.Ready != nil {
			why = o.Ready()
		}
		if len(why) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", strings.Join(why, "; "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if o.Page != nil {
		mux.Handle("/", readOnly(o.Page))
	}
	// Requests run under a context Close ends first, so the page's
	// event streams, which never finish by themselves, end at once.
	base, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, errc: make(chan error, 1), cancel: cancel, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return base },
	}}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.errc <- err
	}()
	return s, nil
}

// readOnly refuses every method but GET and HEAD: the page only shows.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Err delivers the error that stopped the server serving on its own.
func (s *Server) Err() <-chan error { return s.errc }

// Close stops the server: open requests (server-sent event streams among
// them) get until ctx ends, then they are cut.
func (s *Server) Close(ctx context.Context) error {
	s.cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	if err != nil {
		return fmt.Errorf("close observation listener: %w", err)
	}
	return nil
}
