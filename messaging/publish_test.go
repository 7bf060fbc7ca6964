package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

func TestPublisher(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js := eventsStream(t, nc)
	if _, err := messaging.NewPublisher(nc, messaging.WithMaxInFlight(0)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("bad option: %v", err)
	}
	pub, err := messaging.NewPublisher(nc, messaging.WithMaxInFlight(8))
	if err != nil {
		t.Fatal(err)
	}
	ctx := wire.WithRequestID(t.Context(), "req-1")
	ev := messaging.OutEvent{Subject: "events.o1.placed", Type: "order.placed", ID: "ev-1", Version: 1, Data: thing{N: 1}}
	first, err := pub.Publish(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := pub.Publish(ctx, ev)
	if err != nil || !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("republish = %+v, %v; want a duplicate of %d", again, err, first.Sequence)
	}
	s, _ := js.Stream(t.Context(), "EVENTS")
	m, err := s.GetMsg(t.Context(), first.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Nats-Msg-Id": "ev-1", wire.HeaderEventID: "ev-1", wire.HeaderEventType: "order.placed",
		wire.HeaderVersion: "1", wire.HeaderRequestID: "req-1", "Content-Type": "application/json",
	}
	for k, v := range want {
		if m.Header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, m.Header.Get(k), v)
		}
	}
	if string(m.Data) != `{"n":1}` {
		t.Errorf("data = %s", m.Data)
	}

	// Optimistic concurrency over all of one entity's subjects.
	_, err = pub.Publish(t.Context(), messaging.OutEvent{Subject: "events.o1.cancelled", Type: "order.cancelled", Data: thing{N: 2}},
		messaging.ExpectLastSequenceFor("events.o1.*", 0))
	if !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("stale expectation: %v, want ErrConflict", err)
	}
	if _, err := pub.Publish(t.Context(), messaging.OutEvent{Subject: "events.o1.cancelled", Type: "order.cancelled", Data: thing{N: 2}},
		messaging.ExpectLastSequenceFor("events.o1.*", first.Sequence)); err != nil {
		t.Fatalf("good expectation: %v", err)
	}

	// Many concurrent publishes through a small window all land.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			if _, err := pub.Publish(t.Context(), messaging.OutEvent{Subject: "events.bulk", Data: thing{N: i}}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := js.Stream(t.Context(), "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := info.Info(t.Context(), jetstream.WithSubjectFilter("events.bulk"))
	if st.State.Subjects["events.bulk"] != 200 {
		t.Fatalf("stored %d bulk events, want 200", st.State.Subjects["events.bulk"])
	}
}

func TestServiceShowsConsumerHealth(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js := eventsStream(t, nc)
	c := consume(t, js, messaging.ConsumerConfig{Durable: "audit"}, func(context.Context, messaging.Event[thing]) error { return nil })
	publishThings(t, js, 0, 3)
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if c.Stats(t.Context()).Handled != 3 {
			return errors.New("not yet handled")
		}
		return nil
	})
	svc := newService(t, nc, messaging.ServiceConfig{Name: "audit", Consumers: []*messaging.Consumer{c}},
		messaging.Typed("ping", func(context.Context, struct{}) (string, error) { return "pong", nil }))

	got, err := wire.Call[struct{}, map[string]messaging.ConsumerStats](t.Context(), newClient(t, nc), "audit.consumers", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if st := got["audit"]; st.Handled != 3 || st.Stream != "EVENTS" || st.Pending != 0 {
		t.Fatalf("consumers endpoint = %+v", got)
	}
	for _, ep := range svc.Stats().Endpoints {
		if ep.Name != "consumers" {
			continue
		}
		var data map[string]messaging.ConsumerStats
		if err := json.Unmarshal(ep.Data, &data); err != nil || data["audit"].Handled != 3 {
			t.Fatalf("stats data = %s, %v", ep.Data, err)
		}
		return
	}
	t.Fatal("no consumers endpoint in the stats")
}

// The headers Msg builds are independent values: changing one (an Add, an
// index) never changes another, although their values share storage.
func TestPublisherMsgHeadersAreIndependent(t *testing.T) {
	srv := startServer(t)
	pub, err := messaging.NewPublisher(connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := wire.WithRequestID(t.Context(), "req-1")
	msg, err := pub.Msg(ctx, messaging.OutEvent{Subject: "events.o1.placed", Type: "order.placed", ID: "ev-1", Version: 3, Data: thing{N: 1},
		Header: nats.Header{"X-Tenant": []string{"t1"}}})
	if err != nil {
		t.Fatal(err)
	}
	msg.Header.Add("Nats-Msg-Id", "other")
	msg.Header[wire.HeaderEventType][0] = "changed"
	want := map[string][]string{
		"Nats-Msg-Id":        {"ev-1", "other"},
		wire.HeaderEventID:   {"ev-1"},
		wire.HeaderEventType: {"changed"},
		wire.HeaderVersion:   {"3"},
		"Content-Type":       {"application/json"},
		wire.HeaderRequestID: {"req-1"},
		"X-Tenant":           {"t1"},
	}
	if len(msg.Header) != len(want) {
		t.Errorf("%d headers, want %d: %v", len(msg.Header), len(want), msg.Header)
	}
	for k, v := range want {
		if got := msg.Header.Values(k); !slices.Equal(got, v) {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}
