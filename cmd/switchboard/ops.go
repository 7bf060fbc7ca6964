package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
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
func opsHandler(logger *slog.Logger, conns []*nats.Conn, backend cache.Backend, services func() []service, metrics prometheus.Gatherer, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	// A collector that fails is logged, and the rest is still served.
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slog.NewLogLogger(logger.With(slog.String("component", "metrics")).Handler(), slog.LevelError),
	}))
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
		var reasons []string
		st := nats.CONNECTED
		for _, nc := range conns {
			if s := nc.Status(); s != nats.CONNECTED {
				st = s
			}
		}
		if st != nats.CONNECTED {
			reasons = append(reasons, fmt.Sprintf("nats: %s", st))
		}
		svcs := services()
		results := make([]readyResult, len(svcs))
		var wg sync.WaitGroup
		for i, s := range svcs {
			wg.Go(func() { results[i] = checkService(r.Context(), s, st == nats.CONNECTED) })
		}
		wg.Wait()
		checks := map[string]string{}
		degraded := false
		for i, res := range results {
			checks[svcs[i].Name()] = res.status
			if res.err != nil {
				reasons = append(reasons, fmt.Sprintf("%s: %v", svcs[i].Name(), res.err))
			}
			degraded = degraded || res.degraded
		}
		ctx := r.Context()
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

// readyBudget bounds each service's readiness check. A probe waits 1 s by
// default (Kubernetes' timeoutSeconds); a stream electing a leader, or
// without quorum, does not answer for seconds, so the check reports that
// rather than making the probe time out. Checks run side by side, so
// /readyz answers within one budget however many services run.
const readyBudget = 750 * time.Millisecond

// readyResult is one service's readiness.
type readyResult struct {
	status   string
	err      error // makes the process unready
	degraded bool
}

// checkService checks s within readyBudget. connected is whether NATS is:
// a check over a lost connection would only wait out its budget.
func checkService(ctx context.Context, s service, connected bool) readyResult {
	if err := s.Err(); err != nil {
		return readyResult{status: err.Error(), err: err}
	}
	rd, checkable := s.(readier)
	if checkable && !connected {
		return readyResult{status: "not checked: nats not connected"}
	}
	ctx, cancel := context.WithTimeout(ctx, readyBudget)
	defer cancel()
	if checkable {
		if err := rd.Ready(ctx); err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("no answer within %v (a stream electing a leader, or without quorum?): %w", readyBudget, err)
			}
			return readyResult{status: err.Error(), err: err}
		}
	}
	if dg, ok := s.(degrader); ok && connected {
		if err := dg.Degraded(ctx); err != nil {
			return readyResult{status: "degraded: " + err.Error(), degraded: true}
		}
	}
	return readyResult{status: "ok"}
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
