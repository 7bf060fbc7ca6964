package messaging

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/devloop/switchboard/telemetry"
)

// Metric names of a NATS connection.
const (
	metricNATSConnected  = "switchboard_nats_connected"
	metricNATSReconnects = "switchboard_nats_reconnects_total"
	metricNATSInMsgs     = "switchboard_nats_in_messages_total"
	metricNATSOutMsgs    = "switchboard_nats_out_messages_total"
	metricNATSInBytes    = "switchboard_nats_in_bytes_total"
	metricNATSOutBytes   = "switchboard_nats_out_bytes_total"
)

// RegisterConn exports nc's state and counters under t's registry, read
// when scraped: whether it is connected, how often it reconnected, and the
// messages and bytes it moved, labelled connection=name (a process has
// one connection per service identity, so name is that identity: a small,
// fixed set). It returns what unregisters them; with metrics off it does
// nothing.
func RegisterConn(t *telemetry.Telemetry, nc *nats.Conn, name string) (unregister func()) {
	if !t.Metrics() {
		return func() {}
	}
	labels := prometheus.Labels{"connection": name}
	d := func(metric, help string) *prometheus.Desc { return prometheus.NewDesc(metric, help, nil, labels) }
	return t.Register(&connCollector{
		nc:         nc,
		connected:  d(metricNATSConnected, "1 while the NATS connection is connected, 0 while it is disconnected, reconnecting or closed."),
		reconnects: d(metricNATSReconnects, "Times the NATS connection was re-established."),
		inMsgs:     d(metricNATSInMsgs, "Messages received on the NATS connection."),
		outMsgs:    d(metricNATSOutMsgs, "Messages sent on the NATS connection."),
		inBytes:    d(metricNATSInBytes, "Payload bytes received on the NATS connection."),
		outBytes:   d(metricNATSOutBytes, "Payload bytes sent on the NATS connection."),
	})
}

// connCollector reads a connection's figures when scraped.
type connCollector struct {
	nc                                                        *nats.Conn
	connected, reconnects, inMsgs, outMsgs, inBytes, outBytes *prometheus.Desc
}

// Describe sends nothing: the collector is unchecked.
func (cc *connCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads the connection's status and statistics.
func (cc *connCollector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if cc.nc.Status() == nats.CONNECTED {
		up = 1
	}
	st := cc.nc.Stats()
	for _, m := range []struct {
		d *prometheus.Desc
		t prometheus.ValueType
		v float64
	}{
		{cc.connected, prometheus.GaugeValue, up},
		{cc.reconnects, prometheus.CounterValue, float64(st.Reconnects)},
		{cc.inMsgs, prometheus.CounterValue, float64(st.InMsgs)},
		{cc.outMsgs, prometheus.CounterValue, float64(st.OutMsgs)},
		{cc.inBytes, prometheus.CounterValue, float64(st.InBytes)},
		{cc.outBytes, prometheus.CounterValue, float64(st.OutBytes)},
	} {
		if metric, err := prometheus.NewConstMetric(m.d, m.t, m.v); err == nil {
			ch <- metric
		}
	}
}
