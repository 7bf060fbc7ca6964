// Package telemetry carries what Switchboard's parts need to be observed:
// a Prometheus registerer for their metrics, and an OpenTelemetry tracer
// provider and propagator for their traces. One [Telemetry] is made in
// main and passed down, like a logger; nothing here is global.
//
// A nil *Telemetry is valid and turns both off, so do a Telemetry without
// a registerer (no metrics) and one without a tracer provider (no spans,
// no trace context read or written). Instrumented code checks
// [Telemetry.Metrics] and [Telemetry.Tracing] once, when it is built, and
// pays nothing per call for what is off.
//
// Every part registers its metrics through the same Telemetry, so services
// that share a process share one set of metric families:
// [Telemetry.CounterVec] and its siblings make a family once and hand the
// same one to every later caller. [NewTracerProvider] builds the SDK
// provider that exports spans with OTLP, configured by the standard
// OTEL_* environment variables. See docs/observability.md.
package telemetry
