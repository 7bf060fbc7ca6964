package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

func TestEnsureStreamIsIdempotent(t *testing.T) {
	srv := startServer(t)
	js, err := jetstream.New(connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage}
	if _, err := messaging.EnsureStream(ctx, js, cfg); err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := messaging.EnsureStream(ctx, js, cfg); err != nil {
		t.Fatalf("declare again: %v", err)
	}
	cfg.MaxAge = time.Hour
	s, err := messaging.EnsureStream(ctx, js, cfg)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil || info.Config.MaxAge != time.Hour {
		t.Fatalf("updated config = %+v, %v", info, err)
	}
	cfg.Storage = jetstream.MemoryStorage
	if _, err := messaging.EnsureStream(ctx, js, cfg); err == nil {
		t.Fatal("changing the storage type succeeded, want an error")
	}
}

func TestPublishExpectations(t *testing.T) {
	srv := startServer(t)
	js, err := jetstream.New(connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := messaging.EnsureStream(ctx, js, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	msg := func(data string) *nats.Msg { return &nats.Msg{Subject: "events.a", Data: []byte(data)} }

	first, err := messaging.Publish(ctx, js, msg("1"), messaging.ExpectLastSubjectSequence(0), messaging.WithMsgID("e1"))
	if err != nil {
		t.Fatalf("first write: %v", err)
	}
	// A retry with the same id is not stored twice and names the first.
	dup, err := messaging.Publish(ctx, js, msg("1 again"), messaging.WithMsgID("e1"))
	if err != nil || !dup.Duplicate || dup.Sequence != first.Sequence {
		t.Fatalf("duplicate = %+v, %v; want Duplicate of seq %d", dup, err, first.Sequence)
	}
	// Expecting an empty subject fails now that it has a message.
	_, err = messaging.Publish(ctx, js, msg("2"), messaging.ExpectLastSubjectSequence(0))
	if !errors.Is(err, wire.ErrConflict) {
		t.Fatalf("stale expectation: err = %v, want ErrConflict", err)
	}
	second, err := messaging.Publish(ctx, js, msg("2"), messaging.ExpectLastSubjectSequence(first.Sequence))
	if err != nil || second.Sequence != first.Sequence+1 {
		t.Fatalf("conditional write: %+v, %v", second, err)
	}
}

func TestEnsureKeyValueLeavesExistingBucket(t *testing.T) {
	srv := startServer(t)
	js, err := jetstream.New(connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	kv, err := messaging.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "THINGS", History: 1})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// Declaring it again, even with other settings, keeps the bucket and
	// its data as they are.
	again, err := messaging.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "THINGS", History: 5})
	if err != nil {
		t.Fatalf("declare again: %v", err)
	}
	st, err := again.Status(ctx)
	if err != nil || st.History() != 1 {
		t.Fatalf("status = %v, %v; want history 1 kept", st, err)
	}
	if e, err := again.Get(ctx, "a"); err != nil || string(e.Value()) != "1" {
		t.Fatalf("data lost: %v %v", e, err)
	}
}
