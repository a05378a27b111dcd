package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics (Prometheus text format), /healthz (200 while
// the process runs), /readyz (200 once the initial copy is complete and
// the lag is at most readyMaxLag, 503 otherwise; the body says why) and
// /wait (see WaitHandler) and POST /verify (see VerifyHandler and SetVerify).
func (m *Monitor) Handler(readyMaxLag time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /wait", WaitHandler(m.progress))
	mux.Handle("POST /verify", VerifyHandler(func() VerifyFunc {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.verify
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := m.Ready(readyMaxLag)
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, why)
	})
	return mux
}

// Serve listens on addr and serves h until ctx is done. It returns once
// listening (an address in use is an error then) and the address bound.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	return ln.Addr().String(), ServeListener(ctx, ln, h, log), nil
}

// ServeListener serves h on ln until ctx is done or stop is called; stop
// returns once the server has ended (it closes ln).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) (stop func()) {
	// Requests end with ctx: a verification in progress stops with the run.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("HTTP server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
