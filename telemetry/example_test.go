package telemetry_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/telemetry"
)

// Example makes the one Telemetry of a process and gives it to a service:
// its requests are counted in the registry that /metrics would serve.
// Add a TracerProvider (telemetry.NewTracerProvider) to trace them too.
func Example() {
	reg := prometheus.NewRegistry()
	tel := telemetry.New(telemetry.Options{Metrics: reg})

	ctx := context.Background()
	dir, err := os.MkdirTemp("", "switchboard-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = srv.Shutdown(ctx) }()
	nc, err := srv.Connect("example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{Name: "greeter", Version: "1.0.0", Telemetry: tel.For("greeter")},
		messaging.Typed("hello", func(_ context.Context, req struct{}) (string, error) { return "hello", nil }))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = svc.Stop(ctx) }()
	if _, err := nc.Request("greeter.hello", nil, 5*time.Second); err != nil {
		fmt.Println(err)
		return
	}
	// The service counts a request once its reply is sent, so the count
	// may trail the reply by a moment: read until it is there.
	lines, total := requestCounts(reg)
	for deadline := time.Now().Add(5 * time.Second); total < 1 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		lines, total = requestCounts(reg)
	}
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// switchboard_requests_total code=200 endpoint=hello service=greeter: 1
}

// requestCounts formats each switchboard_requests_total series of reg with
// its labels, and sums them.
func requestCounts(reg *prometheus.Registry) (lines []string, total float64) {
	families, _ := reg.Gather()
	for _, f := range families {
		if f.GetName() != "switchboard_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += " " + l.GetName() + "=" + l.GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s%s: %v", f.GetName(), labels, m.GetCounter().GetValue()))
			total += m.GetCounter().GetValue()
		}
	}
	return lines, total
}
