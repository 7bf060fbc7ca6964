package embedded_test

import (
	"context"
	"testing"

	"github.com/devloop/switchboard/embedded"
)

// BenchmarkStart measures Start on an empty store up to ready with JetStream
// enabled; Shutdown is not timed.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()

		s, err := embedded.Start(ctx, embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
		if err != nil {
			b.Fatalf("Start: %v", err)
		}

		b.StopTimer()
		if err := s.Shutdown(ctx); err != nil {
			b.Fatalf("Shutdown: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1e3/float64(b.N), "ms/op")
}
