package messaging_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
)

// A process has one connection per service identity: each gets series of
// its own, the registry gathers them without a duplicate-series error,
// and a closed connection reads as not connected.
func TestRegisterConnOneSeriesPerConnection(t *testing.T) {
	reg := prometheus.NewRegistry()
	tel := telemetry.New(telemetry.Options{Metrics: reg})
	srv := startServer(t)
	users := connect(t, srv)
	orders := connect(t, srv)
	messaging.RegisterConn(tel, users, "users")
	unregister := messaging.RegisterConn(tel, orders, "orders")
	if err := tel.Err(); err != nil {
		t.Fatal(err)
	}
	if got := connected(t, reg); len(got) != 2 || got["users"] != 1 || got["orders"] != 1 {
		t.Fatalf("switchboard_nats_connected by connection = %v, want users 1, orders 1", got)
	}

	orders.Close()
	if got := connected(t, reg); len(got) != 2 || got["users"] != 1 || got["orders"] != 0 {
		t.Fatalf("switchboard_nats_connected by connection = %v, want users 1, orders 0", got)
	}

	unregister()
	if got := connected(t, reg); len(got) != 1 || got["users"] != 1 {
		t.Fatalf("after unregister: %v, want users only", got)
	}
}

// connected gathers reg, failing on any gather error, and returns
// switchboard_nats_connected by its connection label.
func connected(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "switchboard_nats_connected" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "connection" {
					got[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return got
}
