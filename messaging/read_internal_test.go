package messaging

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
)

// A read the stream leader never answers (sent during an election, or
// lost in a reconnect) is sent again after leaderAttempt instead of
// waiting out the caller's whole deadline.
func TestLastMsgAsksAgainWhenUnanswered(t *testing.T) {
	srv, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc, err := srv.Connect("reader")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	leader, err := srv.Connect("leader")
	if err != nil {
		t.Fatal(err)
	}
	defer leader.Close()
	// A stand-in for the leader that drops the first request, as one in
	// an election does, and answers the next.
	var asked atomic.Int32
	sub, err := leader.Subscribe("TEST.API.STREAM.MSG.GET.S", func(m *nats.Msg) {
		if asked.Add(1) == 1 {
			return
		}
		_ = m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"s.a","seq":7,"data":"e30=","time":"2026-12-02T00:00:00Z"}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := leader.Flush(); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.NewWithAPIPrefix(nc, "TEST.API") // not the embedded server's own JetStream API
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*leaderAttempt)
	defer cancel()
	m, err := LastMsg(ctx, js, "S", "s.a")
	if err != nil {
		t.Fatalf("LastMsg: %v, want the answer to the request sent again", err)
	}
	if m.Sequence != 7 || asked.Load() != 2 {
		t.Fatalf("LastMsg = seq %d after %d requests, want seq 7 after 2", m.Sequence, asked.Load())
	}
}
