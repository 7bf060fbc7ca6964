// Package messaging is Switchboard's toolkit for services that talk over NATS.
//
// Request-reply services are real nats.go micro services, so the nats CLI
// (`nats micro ls`, `nats micro info`, `nats micro stats`) discovers them. On
// top of micro, messaging adds:
//
//   - typed endpoints: a handler is func(ctx, Req) (Resp, error); one generic
//     path decodes strict JSON, validates, encodes and maps errors;
//   - an error model, [Error], carried in micro's Nats-Service-Error-Code and
//     Nats-Service-Error headers plus a JSON body, and turned back into
//     *Error by the [Client];
//   - middleware in the shape of net/http ([Middleware] wraps a [Handler]):
//     panic recovery, logging and deadlines;
//   - deadline propagation through the [HeaderDeadline] header;
//   - bounded per-endpoint concurrency with fast 503s on overload, and 413s
//     for oversized payloads;
//   - JetStream helpers: idempotent stream declaration, and publishing with
//     Nats-Msg-Id de-duplication and optimistic concurrency;
//   - observability through a [telemetry.Telemetry] (ServiceConfig,
//     ConsumerConfig, [WithTelemetry], [WithPublishTelemetry]): Prometheus
//     metrics of requests, calls, publishes and consumers, and spans whose
//     W3C trace context (traceparent, tracestate) travels in the headers of
//     requests and events, so one trace follows a request through the
//     events it causes; request and delivery loggers carry trace_id and
//     span_id.
//
// See docs/subjects.md, docs/headers.md and docs/errors.md for the wire
// contract, and docs/observability.md for the metrics and traces.
package messaging
