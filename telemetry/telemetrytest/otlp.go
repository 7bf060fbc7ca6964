package telemetrytest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one span an OTLP receiver got, with the service.name of its
// resource.
type Span struct {
	Service string
	*tracepb.Span
}

// TraceID, SpanID and ParentID are the ids in lower-case hex, as
// traceparent writes them; ParentID is "" for a root.
func (s Span) TraceID() string  { return hex.EncodeToString(s.GetTraceId()) }
func (s Span) SpanID() string   { return hex.EncodeToString(s.GetSpanId()) }
func (s Span) ParentID() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Attr is the string form of attribute key, or "".
func (s Span) Attr(key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() != key {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_BoolValue:
			return strconv.FormatBool(v.BoolValue)
		}
	}
	return ""
}

// OTLP is an OTLP trace receiver on loopback, over HTTP (POST /v1/traces,
// protobuf) and gRPC, that decodes the official OTLP protobuf messages and
// keeps the spans.
type OTLP struct {
	// HTTPEndpoint is the base URL for OTEL_EXPORTER_OTLP_ENDPOINT with
	// the http/protobuf protocol; GRPCEndpoint the one for grpc.
	HTTPEndpoint, GRPCEndpoint string

	mu    sync.Mutex
	spans []Span
}

// StartOTLP starts a receiver, stopped when the test ends.
func StartOTLP(t testing.TB) *OTLP {
	t.Helper()
	o := &OTLP{}
	hs := httptest.NewServer(http.HandlerFunc(o.serveHTTP))
	t.Cleanup(hs.Close)
	o.HTTPEndpoint = hs.URL
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, grpcTraces{o: o})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
	o.GRPCEndpoint = "http://" + ln.Addr().String()
	return o
}

func (o *OTLP) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(data, &req); err != nil {
		http.Error(w, "not an OTLP ExportTraceServiceRequest: "+err.Error(), http.StatusBadRequest)
		return
	}
	o.add(&req)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = io.Copy(w, bytes.NewReader(out))
}

type grpcTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	o *OTLP
}

func (g grpcTraces) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	g.o.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (o *OTLP) add(req *coltracepb.ExportTraceServiceRequest) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				o.spans = append(o.spans, Span{Service: service, Span: s})
			}
		}
	}
}

// Spans returns the spans received so far.
func (o *OTLP) Spans() []Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Span(nil), o.spans...)
}

// Trace returns the spans of trace id (lower-case hex).
func (o *OTLP) Trace(id string) []Span {
	var out []Span
	for _, s := range o.Spans() {
		if s.TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}
