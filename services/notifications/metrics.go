package notifications

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
)

// Metric names of the webhook deliveries. docs/observability.md lists
// them; their dead letters are the consumer runtime's
// (switchboard_consumer_dead_letters_total{stream="NOTIFICATIONS"}).
const (
	metricDeliveries      = "switchboard_webhook_deliveries_total"
	metricDeliveryLatency = "switchboard_webhook_request_duration_seconds"
)

// Outcomes of one delivery attempt.
const (
	outcomeDelivered = "delivered" // a 2xx
	outcomeRetry     = "retry"     // transient: retried after a backoff
	outcomeFailed    = "failed"    // permanent: dead-lettered
	outcomeSkipped   = "skipped"   // delivered before: not sent again
)

// webhookMetrics count delivery attempts by outcome; nil when metrics are
// off.
type webhookMetrics struct {
	attempts *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newWebhookMetrics(t *telemetry.Telemetry) *webhookMetrics {
	m := &webhookMetrics{
		attempts: t.CounterVec(metricDeliveries, "Webhook delivery attempts, by outcome: delivered (2xx), retry (408, 429, 5xx or no answer: sent again after a backoff), failed (other answers: dead-lettered), skipped (delivered before).", "outcome"),
		latency:  t.HistogramVec(metricDeliveryLatency, "Time a webhook POST took, from dial to the end of the response, by outcome (delivered, retry, failed).", nil, "outcome"),
	}
	if m.attempts == nil || m.latency == nil {
		return nil
	}
	for _, o := range []string{outcomeDelivered, outcomeRetry, outcomeFailed} {
		m.attempts.WithLabelValues(o)
		m.latency.WithLabelValues(o)
	}
	m.attempts.WithLabelValues(outcomeSkipped)
	return m
}

// observe records one POST that ended with err after took.
func (m *webhookMetrics) observe(err error, took time.Duration) {
	if m == nil {
		return
	}
	outcome := outcomeDelivered
	switch {
	case err == nil:
	case messaging.IsPermanent(err):
		outcome = outcomeFailed
	default:
		outcome = outcomeRetry
	}
	m.attempts.WithLabelValues(outcome).Inc()
	m.latency.WithLabelValues(outcome).Observe(took.Seconds())
}

// skipped records a delivery not sent again.
func (m *webhookMetrics) skipped() {
	if m != nil {
		m.attempts.WithLabelValues(outcomeSkipped).Inc()
	}
}
