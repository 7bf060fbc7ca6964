package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/devloop/switchboard/cache"
)

// opsHandler serves the operations endpoints: /metrics serves the
// registry's metrics to Prometheus (docs/observability.md); /debug/pprof/
// serves net/http/pprof when pprof is on; /healthz says the process is
// alive; /readyz says it can do its work (NATS connected, every service
// serving and its streams reachable), else 503 with the reasons. A cache
// that does not answer makes the process degraded, not unready: reads fall
// back to the source of truth. So does a service that reports itself
// degraded (the projector without PostgreSQL: events wait in the streams).
func opsHandler(nc *nats.Conn, backend cache.Backend, services func() []service, metrics prometheus.Gatherer, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	if pprofOn {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var reasons []string
		st := nc.Status()
		if st != nats.CONNECTED {
			reasons = append(reasons, fmt.Sprintf("nats: %s", st))
		}
		checks := map[string]string{}
		degraded := false
		for _, s := range services() {
			status := "ok"
			err := s.Err()
			rd, checkable := s.(readier)
			switch {
			case err != nil:
			case checkable && st != nats.CONNECTED:
				// Its check goes over NATS: it would only wait out the
				// timeout, longer than a probe waits for the answer.
				status = "not checked: nats not connected"
			case checkable:
				err = rd.Ready(ctx)
			}
			if err != nil {
				status = err.Error()
				reasons = append(reasons, fmt.Sprintf("%s: %v", s.Name(), err))
			} else if dg, ok := s.(degrader); ok && st == nats.CONNECTED {
				if derr := dg.Degraded(ctx); derr != nil {
					status = "degraded: " + derr.Error()
					degraded = true
				}
			}
			checks[s.Name()] = status
		}
		body := map[string]any{"status": "ready", "services": checks}
		if degraded {
			body["status"] = "degraded"
		}
		if backend != nil {
			c := map[string]string{"backend": backend.Name(), "status": "ok"}
			pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			if err := backend.Ping(pctx); err != nil {
				c["status"] = "degraded: " + err.Error()
				body["status"] = "degraded"
			}
			pcancel()
			body["cache"] = c
		}
		code := http.StatusOK
		if len(reasons) > 0 {
			body["status"] = "unavailable"
			body["reasons"] = reasons
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, body)
	})
	return mux
}

// degrader is implemented by services that can work at reduced capacity
// (the projector while PostgreSQL is unreachable): a non-nil Degraded
// makes the process degraded, not unready.
type degrader interface {
	Degraded(ctx context.Context) error
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
