package telemetry

import (
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// httpTracer is the instrumentation scope of HTTP spans.
const httpTracer = "github.com/devloop/switchboard/telemetry"

// Transport returns base (http.DefaultTransport when nil) wrapped so that
// each request is a client span, a child of the span in the request's
// context, and carries its trace context (traceparent, tracestate). URLs
// may hold secrets: spans name the server's host and port, never the
// path or query. With tracing off it returns base as it is.
func (t *Telemetry) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if !t.Tracing() {
		return base
	}
	return &transport{base: base, tracer: t.Tracer(httpTracer), prop: t.prop}
}

type transport struct {
	base   http.RoundTripper
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	attrs := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(semconv.HTTPRequestMethodKey.String(req.Method))}
	if host, port, err := net.SplitHostPort(req.URL.Host); err == nil {
		p, _ := strconv.Atoi(port)
		attrs = append(attrs, trace.WithAttributes(semconv.ServerAddress(host), semconv.ServerPort(p)))
	} else {
		attrs = append(attrs, trace.WithAttributes(semconv.ServerAddress(req.URL.Host)))
	}
	ctx, span := tr.tracer.Start(req.Context(), req.Method, attrs...)
	defer span.End()
	// A RoundTripper must not change the request it is given.
	out := req.Clone(ctx)
	tr.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		return resp, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}

// Handler returns next wrapped so that each request is a server span that
// continues the caller's trace (its traceparent header). The span is
// named after the method; a handler that knows the route renames it with
// trace.SpanFromContext(r.Context()).SetName. With tracing off it returns
// next as it is.
func (t *Telemetry) Handler(next http.Handler) http.Handler {
	if !t.Tracing() {
		return next
	}
	tracer := t.Tracer(httpTracer)
	prop := t.prop
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(r.Method), semconv.URLPath(r.URL.Path)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(ctx))
		span.SetAttributes(semconv.HTTPResponseStatusCode(sw.code))
		if sw.code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.code))
		}
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the writer's Flush and
// deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
