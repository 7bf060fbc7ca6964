package messaging

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/devloop/switchboard/telemetry"
)

// tracerName is the instrumentation scope of messaging's spans.
const tracerName = "github.com/devloop/switchboard/messaging"

// headerCarrier reads and writes trace context in NATS headers. NATS
// header names are case-sensitive: the W3C names, traceparent and
// tracestate, are written in lower case, as W3C spells them and as the
// gateway forwards them; reading also accepts another case.
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range c {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) { c[key] = []string{value} }

func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

var _ propagation.TextMapCarrier = headerCarrier(nil)

// tracing is what a part needs to make spans; nil when tracing is off.
type tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

func newTracing(t *telemetry.Telemetry) *tracing {
	if !t.Tracing() {
		return nil
	}
	return &tracing{tracer: t.Tracer(tracerName), prop: t.Propagator()}
}

// extract returns ctx with the trace context of h.
func (tr *tracing) extract(ctx context.Context, h nats.Header) context.Context {
	if h == nil {
		return ctx
	}
	return tr.prop.Extract(ctx, headerCarrier(h))
}

// inject writes ctx's trace context into m's headers.
func (tr *tracing) inject(ctx context.Context, m *nats.Msg) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	tr.prop.Inject(ctx, headerCarrier(m.Header))
}

// endSpan records code (a wire status code) on span and ends it: codes
// of 500 and above are errors.
func endSpan(span trace.Span, code int, err error) {
	span.SetAttributes(semconv.RPCResponseStatusCode(strconv.Itoa(code)))
	if code >= 500 && err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

var natsSystem = semconv.MessagingSystemKey.String("nats")

// Metric names of the request side. docs/observability.md lists them all.
const (
	metricRequests        = "switchboard_requests_total"
	metricRequestDuration = "switchboard_request_duration_seconds"
	metricInFlight        = "switchboard_requests_in_flight"
	metricRefused         = "switchboard_requests_refused_total"
	metricPanics          = "switchboard_request_panics_total"
	metricClientRequests  = "switchboard_client_requests_total"
	metricClientDuration  = "switchboard_client_request_duration_seconds"
)

// serviceMetrics are a service's metric families; nil when metrics are off.
type serviceMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	refused  *prometheus.CounterVec
	panics   *prometheus.CounterVec
}

func newServiceMetrics(t *telemetry.Telemetry) *serviceMetrics {
	if !t.Metrics() {
		return nil
	}
	m := &serviceMetrics{
		requests: t.CounterVec(metricRequests, "Requests answered, by service, endpoint and status code (refusals included).", "service", "endpoint", "code"),
		duration: t.HistogramVec(metricRequestDuration, "Time from taking a request off the wire to sending its reply, by service and endpoint (refusals excluded).", nil, "service", "endpoint"),
		inFlight: t.GaugeVec(metricInFlight, "Requests being handled, by service and endpoint.", "service", "endpoint"),
		refused:  t.CounterVec(metricRefused, "Requests refused before a handler ran, by service, endpoint and reason (too_large: 413, overloaded: 503).", "service", "endpoint", "reason"),
		panics:   t.CounterVec(metricPanics, "Handler panics recovered (answered 500), by service and endpoint.", "service", "endpoint"),
	}
	if m.requests == nil || m.duration == nil || m.inFlight == nil || m.refused == nil || m.panics == nil {
		return nil // Err says why
	}
	return m
}

// endpointMetrics are one endpoint's series, resolved once: a request
// costs a few atomic adds.
type endpointMetrics struct {
	m                 *serviceMetrics
	service, endpoint string
	ok                prometheus.Counter
	duration          prometheus.Observer
	inFlight          prometheus.Gauge
}

func (m *serviceMetrics) endpoint(service, endpoint string) *endpointMetrics {
	if m == nil {
		return nil
	}
	// Series that start at zero make rate() and increase() see the first
	// refusal or panic, and dashboards show the endpoint before it has one.
	for _, reason := range []string{"too_large", "overloaded"} {
		m.refused.WithLabelValues(service, endpoint, reason)
	}
	m.panics.WithLabelValues(service, endpoint)
	return &endpointMetrics{
		m: m, service: service, endpoint: endpoint,
		ok:       m.requests.WithLabelValues(service, endpoint, "200"),
		duration: m.duration.WithLabelValues(service, endpoint),
		inFlight: m.inFlight.WithLabelValues(service, endpoint),
	}
}

// answered counts a reply of code.
func (em *endpointMetrics) answered(code int) {
	if code == 200 {
		em.ok.Inc()
		return
	}
	em.m.requests.WithLabelValues(em.service, em.endpoint, strconv.Itoa(code)).Inc()
}

// refusedWith counts a refusal.
func (em *endpointMetrics) refusedWith(reason string, code int) {
	em.m.refused.WithLabelValues(em.service, em.endpoint, reason).Inc()
	em.answered(code)
}

// clientMetrics are a client's metric families; nil when metrics are off.
type clientMetrics struct {
	caller   string
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newClientMetrics(t *telemetry.Telemetry) *clientMetrics {
	if !t.Metrics() {
		return nil
	}
	m := &clientMetrics{
		caller:   t.Service(),
		requests: t.CounterVec(metricClientRequests, "Calls made with a messaging.Client, by calling service, subject and status code (503: no responders, 504: no reply in time).", "caller", "subject", "code"),
		duration: t.HistogramVec(metricClientDuration, "Time from sending a call to its reply, by calling service and subject.", nil, "caller", "subject"),
	}
	if m.requests == nil || m.duration == nil {
		return nil
	}
	return m
}

func (m *clientMetrics) observe(subject string, code int, took time.Duration) {
	m.requests.WithLabelValues(m.caller, subject, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(m.caller, subject).Observe(took.Seconds())
}

// traceAttrs returns the trace_id and span_id attributes of sc, for the
// loggers of requests and deliveries.
func traceAttrs(sc trace.SpanContext) []any {
	if !sc.IsValid() {
		return nil
	}
	return []any{slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())}
}

// spanAttrs are the attributes every messaging span starts with.
func spanAttrs(extra ...attribute.KeyValue) trace.SpanStartOption {
	return trace.WithAttributes(append([]attribute.KeyValue{natsSystem}, extra...)...)
}

// Metric names of the publisher.
const (
	metricPublished         = "switchboard_published_messages_total"
	metricPublishDuplicates = "switchboard_publish_duplicates_total"
	metricPublishFailures   = "switchboard_publish_failures_total"
	metricPublishResends    = "switchboard_publish_resends_total"
	metricPublishDuration   = "switchboard_publish_duration_seconds"
)

// publishMetrics are a publisher's metric families; nil when metrics are
// off.
type publishMetrics struct {
	service    string
	published  *prometheus.CounterVec
	duplicates *prometheus.CounterVec
	failures   *prometheus.CounterVec
	resends    prometheus.Counter
	duration   *prometheus.HistogramVec
}

func newPublishMetrics(t *telemetry.Telemetry) *publishMetrics {
	if !t.Metrics() {
		return nil
	}
	resends := t.CounterVec(metricPublishResends, "Publishes sent again under the same message ids after an unknown outcome (no ack in time, a reconnect), by service.", "service")
	m := &publishMetrics{
		service:    t.Service(),
		published:  t.CounterVec(metricPublished, "Messages stored by publishes, by publishing service and stream (an atomic batch counts each message).", "service", "stream"),
		duplicates: t.CounterVec(metricPublishDuplicates, "Publishes the stream had stored already (same Nats-Msg-Id within its duplicate window), by service and stream.", "service", "stream"),
		failures:   t.CounterVec(metricPublishFailures, "Publishes that failed, by service and reason: conflict (an expectation did not hold), refused, unacknowledged (no ack after every attempt), canceled.", "service", "reason"),
		duration:   t.HistogramVec(metricPublishDuration, "Time from the first send of a publish to its ack, resends included, by service and stream.", nil, "service", "stream"),
	}
	if resends == nil || m.published == nil || m.duplicates == nil || m.failures == nil || m.duration == nil {
		return nil
	}
	m.resends = resends.WithLabelValues(m.service)
	for _, reason := range []string{failConflict, failRefused, failUnacknowledged, failCanceled} {
		m.failures.WithLabelValues(m.service, reason)
	}
	return m
}

func (m *publishMetrics) observe(ack *jetstream.PubAck, n, resends int, failure string, took time.Duration) {
	if resends > 0 {
		m.resends.Add(float64(resends))
	}
	if ack == nil {
		m.failures.WithLabelValues(m.service, failure).Inc()
		return
	}
	if ack.Duplicate && resends == 0 {
		// Stored before, by another publish. (After a resend, the
		// duplicate is this publish's own first send, stored unacked.)
		m.duplicates.WithLabelValues(m.service, ack.Stream).Inc()
	} else {
		m.published.WithLabelValues(m.service, ack.Stream).Add(float64(n))
	}
	m.duration.WithLabelValues(m.service, ack.Stream).Observe(took.Seconds())
}

// Metric names of the consumer runtime.
const (
	metricConsumerDeliveries   = "switchboard_consumer_deliveries_total"
	metricConsumerRedeliveries = "switchboard_consumer_redeliveries_total"
	metricConsumerAcks         = "switchboard_consumer_acks_total"
	metricConsumerRetries      = "switchboard_consumer_retries_total"
	metricConsumerDeadLetters  = "switchboard_consumer_dead_letters_total"
	metricConsumerDuration     = "switchboard_consumer_handler_duration_seconds"
	metricConsumerPending      = "switchboard_consumer_pending_messages"
	metricConsumerAckPending   = "switchboard_consumer_ack_pending_messages"
	metricConsumerRedelivered  = "switchboard_consumer_redelivered_messages"
	metricConsumerInFlight     = "switchboard_consumer_in_flight_messages"
	metricConsumerHeld         = "switchboard_consumer_held_messages"
)

// consumerMetrics are one consumer's series, resolved once; nil when
// metrics are off.
type consumerMetrics struct {
	deliveries, redeliveries, acks, retries prometheus.Counter
	duration                                prometheus.Observer
	deadLetters                             *prometheus.CounterVec
	stream, consumer                        string
}

func newConsumerMetrics(t *telemetry.Telemetry, stream, consumer string) *consumerMetrics {
	if !t.Metrics() {
		return nil
	}
	labels := []string{"stream", "consumer"}
	deliveries := t.CounterVec(metricConsumerDeliveries, "Messages handed to a consumer's handler, redeliveries included, by stream and durable consumer (a batch counts each message).", labels...)
	redeliveries := t.CounterVec(metricConsumerRedeliveries, "Deliveries of messages delivered before (retries, or redeliveries after a crash or an ack wait), by stream and consumer.", labels...)
	acks := t.CounterVec(metricConsumerAcks, "Messages handled and acknowledged, by stream and consumer.", labels...)
	retries := t.CounterVec(metricConsumerRetries, "Messages whose handler failed and that are redelivered after a backoff, by stream and consumer.", labels...)
	duration := t.HistogramVec(metricConsumerDuration, "Time a consumer's handler took for one message (or one batch of ConsumeBatches), by stream and consumer.", nil, labels...)
	dead := t.CounterVec(metricConsumerDeadLetters, "Messages dead-lettered, by stream, consumer and reason (permanent, max-deliveries, undecodable).", "stream", "consumer", "reason")
	if deliveries == nil || redeliveries == nil || acks == nil || retries == nil || duration == nil || dead == nil {
		return nil
	}
	for _, reason := range []string{ReasonPermanent, ReasonMaxDeliveries, ReasonUndecodable} {
		dead.WithLabelValues(stream, consumer, reason)
	}
	return &consumerMetrics{
		deliveries:   deliveries.WithLabelValues(stream, consumer),
		redeliveries: redeliveries.WithLabelValues(stream, consumer),
		acks:         acks.WithLabelValues(stream, consumer),
		retries:      retries.WithLabelValues(stream, consumer),
		duration:     duration.WithLabelValues(stream, consumer),
		deadLetters:  dead,
		stream:       stream,
		consumer:     consumer,
	}
}

// handled records one handler call over n messages.
func (m *consumerMetrics) handled(n int, redelivered int, took time.Duration) {
	m.deliveries.Add(float64(n))
	if redelivered > 0 {
		m.redeliveries.Add(float64(redelivered))
	}
	m.duration.Observe(took.Seconds())
}

// consumerCollector reads a consumer's server-side figures when scraped:
// what JetStream has not delivered yet (the lag), what waits for an ack,
// and what this process is handling. Every consumer of a process adds its
// own series to the same families (telemetry.Telemetry.Register), and
// removes them when it stops.
type consumerCollector struct {
	c                                                *Consumer
	pending, ackPending, redelivered, inFlight, held *prometheus.Desc
}

func newConsumerCollector(c *Consumer) *consumerCollector {
	labels := []string{"stream", "consumer"}
	return &consumerCollector{
		c:           c,
		pending:     prometheus.NewDesc(metricConsumerPending, "Messages of the stream the consumer has not been delivered yet (its lag), as JetStream reports when scraped.", labels, nil),
		ackPending:  prometheus.NewDesc(metricConsumerAckPending, "Messages delivered and not acknowledged yet (being handled, or waiting for a retry), as JetStream reports when scraped.", labels, nil),
		redelivered: prometheus.NewDesc(metricConsumerRedelivered, "Messages delivered more than once and not acknowledged yet, as JetStream reports when scraped.", labels, nil),
		inFlight:    prometheus.NewDesc(metricConsumerInFlight, "Messages this process's handlers are working on, by stream and consumer.", labels, nil),
		held:        prometheus.NewDesc(metricConsumerHeld, "Messages this process holds, being handled or queued for a worker (at most Workers+Prefetch), by stream and consumer.", labels, nil),
	}
}

// Describe sends nothing: the collector is unchecked.
func (cc *consumerCollector) Describe(chan<- *prometheus.Desc) {}

// Collect asks the server for the consumer's figures, within a second.
func (cc *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st := cc.c.Stats(ctx)
	send := func(d *prometheus.Desc, v float64) {
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, st.Stream, st.Consumer); err == nil {
			ch <- m
		}
	}
	send(cc.inFlight, float64(st.InFlight))
	send(cc.held, float64(st.Held))
	if st.InfoUnavailable {
		return
	}
	send(cc.pending, float64(st.Pending))
	send(cc.ackPending, float64(st.AckPending))
	send(cc.redelivered, float64(st.Redelivered))
}
