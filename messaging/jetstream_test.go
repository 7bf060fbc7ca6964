package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/messaging"
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
