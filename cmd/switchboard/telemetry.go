package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/lifecycle"
	"github.com/devloop/switchboard/telemetry"
)

// newTelemetry makes the process's Telemetry: a registry with the Go
// runtime and process collectors, served on /metrics, and, when tracing
// is on, an OTLP tracer provider, shut down (flushing its spans) after
// everything else has stopped.
func newTelemetry(ctx context.Context, cfg config.Config, m mode, names []string, getenv func(string) string, logger *slog.Logger, sd *lifecycle.Stack) (*telemetry.Telemetry, *prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	o := telemetry.Options{Metrics: reg}
	if cfg.Observability.TracingOn() {
		// One process is one OTel service: "switchboard" in dev, the
		// services it runs otherwise (OTEL_SERVICE_NAME overrides).
		name := "switchboard"
		if m == modeRun {
			name = strings.Join(names, "+")
		}
		tp, err := telemetry.NewTracerProvider(ctx, telemetry.TracingOptions{ServiceName: name, ServiceVersion: buildVersion(), Getenv: getenv})
		if err != nil {
			return nil, nil, err
		}
		sd.Push("tracing", tp.Shutdown)
		o.TracerProvider = tp
		if v := getenv("OTEL_SERVICE_NAME"); v != "" {
			name = v
		}
		logger.Info("tracing: exporting spans with OTLP", slog.String("service_name", name),
			slog.String("endpoint", firstSet(getenv, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")),
			slog.String("protocol", firstSet(getenv, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")))
	}
	return telemetry.New(o), reg, nil
}

// firstSet is the value of the first of names that is set, or "default".
func firstSet(getenv func(string) string, names ...string) string {
	for _, n := range names {
		if v := getenv(n); v != "" {
			return v
		}
	}
	return "default"
}
