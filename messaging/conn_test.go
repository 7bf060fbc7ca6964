package messaging_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/messaging"
)

// TestConnectNeverShowsTheURLsSecret: NATS unreachable at start, the retry
// log and the error show the URL with its password and token masked.
func TestConnectNeverShowsTheURLsSecret(t *testing.T) {
	t.Parallel()
	for _, url := range []string{"nats://ada:s3cretPW@127.0.0.1:1", "nats://s3cretPW@127.0.0.1:1"} {
		var logs lockedBuffer
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := messaging.Connect(ctx, messaging.ConnectOptions{URL: url, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		cancel()
		if err == nil {
			t.Fatalf("Connect to %s succeeded", url)
		}
		if !strings.Contains(logs.String(), "nats not reachable yet") || !strings.Contains(err.Error(), "xxxxx@127.0.0.1:1") {
			t.Errorf("want the masked URL in the retry log and the error; log:\n%s\nerror: %v", logs.String(), err)
		}
		if strings.Contains(logs.String()+err.Error(), "s3cretPW") {
			t.Errorf("the secret of %s shows:\n%s\n%v", url, logs.String(), err)
		}
	}
}
