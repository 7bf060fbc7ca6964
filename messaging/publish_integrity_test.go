package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

func msgOn(subject, data string) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: []byte(data), Header: nats.Header{}}
}

func TestPublishMsgsExpectations(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js := eventsStream(t, nc)
	pub, err := messaging.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	first, err := pub.PublishMsgs(ctx, messaging.Expect(msgOn("events.a", "1"), messaging.ExpectLastSubjectSequence(0)))
	if err != nil {
		t.Fatalf("first write: %v", err)
	}
	// Expecting an empty subject fails now that it has a message.
	if _, err := pub.PublishMsgs(ctx, messaging.Expect(msgOn("events.a", "2"), messaging.ExpectLastSubjectSequence(0))); !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("stale expectation: err = %v, want ErrConflict", err)
	}
	second, err := pub.PublishMsgs(ctx, messaging.Expect(msgOn("events.a", "2"), messaging.ExpectLastSubjectSequence(first.Sequence)))
	if err != nil || second.Sequence != first.Sequence+1 {
		t.Fatalf("conditional write: %+v, %v", second, err)
	}
	m, err := messaging.LastMsg(ctx, js, "EVENTS", "events.a")
	if err != nil || m.Sequence != second.Sequence || string(m.Data) != "2" || m.Header.Get(jetstream.MsgIDHeader) == "" {
		t.Fatalf("LastMsg = %+v, %v", m, err)
	}
	if _, err := messaging.LastMsg(ctx, js, "EVENTS", "events.none"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("LastMsg of an empty subject: %v", err)
	}
	if _, err := messaging.LastMsg(ctx, js, "NOPE", "events.a"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("LastMsg of a missing stream: %v", err)
	}
}

// An atomic batch is stored whole or not at all: one failed expectation
// stores none of it.
func TestPublishMsgsBatchIsAtomic(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureStream(t.Context(), js, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, AllowAtomicPublish: true}); err != nil {
		t.Fatal(err)
	}
	pub, err := messaging.NewPublisher(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ack, err := pub.PublishMsgs(ctx,
		messaging.Expect(msgOn("events.claim.x", "a"), messaging.ExpectLastSubjectSequence(0)),
		messaging.Expect(msgOn("events.entity.a", "created"), messaging.ExpectLastSubjectSequence(0)))
	if err != nil || ack.Sequence != 2 {
		t.Fatalf("batch = %+v, %v; want stored at 1..2", ack, err)
	}
	// The claim is taken: a second entity claiming it stores nothing.
	_, err = pub.PublishMsgs(ctx,
		messaging.Expect(msgOn("events.claim.x", "b"), messaging.ExpectLastSubjectSequence(0)),
		messaging.Expect(msgOn("events.entity.b", "created"), messaging.ExpectLastSubjectSequence(0)))
	if !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("second claim: %v, want ErrConflict", err)
	}
	if _, err := messaging.LastMsg(ctx, js, "EVENTS", "events.entity.b"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("half of a refused batch was stored: %v", err)
	}
}

// A write whose ack was lost is sent again; the server refuses the resend's
// expectation because the first send was stored, and the publisher reports
// the success it was, not a conflict (a caller told 409 would write again).
func TestPublishResendAfterLostAckIsNotAConflict(t *testing.T) {
	for _, tt := range []struct {
		name  string
		batch bool
	}{{"single", false}, {"batch", true}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t)
			direct, err := jetstream.New(connect(t, srv))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := messaging.EnsureStream(t.Context(), direct, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, AllowAtomicPublish: true}); err != nil {
				t.Fatal(err)
			}
			proxy := testkit.StartProxy(t, srv.Addr())
			nc, err := nats.Connect(proxy.URL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			pub, err := messaging.NewPublisher(nc)
			if err != nil {
				t.Fatal(err)
			}
			msgs := []*nats.Msg{messaging.Expect(msgOn("events.entity.a", "created"), messaging.ExpectLastSubjectSequence(0))}
			if tt.batch {
				msgs = append([]*nats.Msg{messaging.Expect(msgOn("events.claim.a", "a"), messaging.ExpectLastSubjectSequence(0))}, msgs...)
			}
			before := proxy.Publishes()
			proxy.HoldReplies()
			type result struct {
				ack *jetstream.PubAck
				err error
			}
			done := make(chan result, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				ack, err := pub.PublishMsgs(ctx, msgs...)
				done <- result{ack, err}
			}()
			// The first send is stored; its ack is held back.
			var stored uint64
			testkit.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
				m, err := messaging.LastMsg(t.Context(), direct, "EVENTS", "events.entity.a")
				if err != nil {
					return err
				}
				stored = m.Sequence
				return nil
			})
			// Once the publisher has given up on that ack and sent again,
			// let the replies through.
			testkit.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
				if proxy.Publishes() < before+2*len(msgs) {
					return errors.New("no resend yet")
				}
				return nil
			})
			proxy.ReleaseReplies()
			r := <-done
			if r.err != nil {
				t.Fatalf("publish = %v, want success: the first send was stored", r.err)
			}
			if r.ack.Sequence != stored {
				t.Errorf("ack names sequence %d, the stored write is %d", r.ack.Sequence, stored)
			}
			info, err := direct.Stream(t.Context(), "EVENTS")
			if err != nil {
				t.Fatal(err)
			}
			if n := info.CachedInfo().State.Msgs; n != uint64(len(msgs)) {
				t.Errorf("the stream holds %d messages, want %d", n, len(msgs))
			}
		})
	}
}
