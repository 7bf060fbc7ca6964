package messaging_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded/embeddedtest"
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

// Replication reaches every stream and bucket on a cluster, and never
// lowers what an operator raised.
func TestReplicationOnACluster(t *testing.T) {
	cl := embeddedtest.StartCluster(t, 3)
	js, err := jetstream.New(cl.Connect("setup"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	r3 := messaging.Replication{Replicas: 3}
	replicas := func(name string) int {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config.Replicas
	}

	// Created with the setting.
	if _, err := messaging.EnsureStream(ctx, js, r3.Stream(jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureKeyValue(ctx, js, r3.KeyValue(jetstream.KeyValueConfig{Bucket: "THINGS"})); err != nil {
		t.Fatal(err)
	}
	if err := messaging.EnsureDeadLetterStream(ctx, js, "", r3); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"EVENTS", "KV_THINGS", messaging.DefaultDeadLetterStream} {
		if n := replicas(name); n != 3 {
			t.Errorf("%s has %d replicas, want 3", name, n)
		}
	}

	// Declared again with fewer (an older deployment's setting): kept.
	r1 := messaging.Replication{Replicas: 1}
	if _, err := messaging.EnsureStream(ctx, js, r1.Stream(jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}})); err != nil {
		t.Fatal(err)
	}
	if err := messaging.EnsureDeadLetterStream(ctx, js, "", r1); err != nil {
		t.Fatal(err)
	}
	if n := replicas("EVENTS"); n != 3 {
		t.Errorf("EVENTS dropped to %d replicas, want the 3 it had", n)
	}

	// A bucket made with one replica is raised by a later setting.
	if _, err := messaging.EnsureKeyValue(ctx, js, r1.KeyValue(jetstream.KeyValueConfig{Bucket: "OLD"})); err != nil {
		t.Fatal(err)
	}
	if _, err := messaging.EnsureKeyValue(ctx, js, r3.KeyValue(jetstream.KeyValueConfig{Bucket: "OLD"})); err != nil {
		t.Fatal(err)
	}
	if n := replicas("KV_OLD"); n != 3 {
		t.Errorf("KV_OLD has %d replicas after a setting of 3, want 3", n)
	}
}

func TestReplicationFillsOnlyWhatTheConfigLeavesOpen(t *testing.T) {
	r := messaging.Replication{Replicas: 3, Tags: []string{"region:eu"}}
	got := r.Stream(jetstream.StreamConfig{Name: "A"})
	if got.Replicas != 3 || got.Placement == nil || !slices.Equal(got.Placement.Tags, []string{"region:eu"}) {
		t.Errorf("Stream = replicas %d placement %+v, want 3 and region:eu", got.Replicas, got.Placement)
	}
	own := r.Stream(jetstream.StreamConfig{Name: "B", Replicas: 5, Placement: &jetstream.Placement{Cluster: "c2"}})
	if own.Replicas != 5 || own.Placement.Cluster != "c2" || own.Placement.Tags != nil {
		t.Errorf("Stream overrode the config's own replicas or placement: %+v", own)
	}
	if zero := (messaging.Replication{}).KeyValue(jetstream.KeyValueConfig{Bucket: "C"}); zero.Replicas != 1 || zero.Placement != nil {
		t.Errorf("zero Replication = %+v, want one replica and no placement", zero)
	}
}

// A service that starts with its cluster declares its streams while the
// cluster is still electing a meta leader, which refuses for a while with
// "JetStream system temporarily unavailable" or lets the request time out.
// EnsureStream waits that out instead of failing the start-up.
func TestEnsureStreamWaitsForTheClustersLeader(t *testing.T) {
	cl := embeddedtest.NewCluster(t, 3)
	cl.Start(0) // one node of three: no meta leader until another joins
	nc := cl.ConnectNode(0, "declarer")
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Watch the declaration's API requests, to start the other nodes
	// only once it has been refused and tried again.
	requests := make(chan struct{}, 100)
	watch, err := nc.Subscribe("$JS.API.STREAM.*.ORDERS", func(*nats.Msg) { requests <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}, Storage: jetstream.FileStorage, Replicas: 3}
	done := make(chan error, 1)
	go func() {
		_, err := messaging.EnsureStream(ctx, js, cfg)
		done <- err
	}()
	for seen := 0; seen < 2; {
		select {
		case <-requests:
			seen++
		case err := <-done:
			t.Fatalf("EnsureStream returned before the cluster had a leader: %v", err)
		case <-ctx.Done():
			t.Fatal("EnsureStream did not try twice within 60s")
		}
	}
	cl.Start(1)
	cl.Start(2)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("EnsureStream once the cluster has a leader: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("EnsureStream did not return within 60s")
	}
	s, err := js.Stream(ctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("ORDERS has %d replicas, want 3", r)
	}
}

// Refusals that will not pass are not retried: a config the server
// cannot apply fails at once.
func TestEnsureStreamFailsAtOnceOnARefusedConfig(t *testing.T) {
	srv := startServer(t)
	js, err := jetstream.New(connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Replicas 3 on a server that is not clustered.
	_, err = messaging.EnsureStream(ctx, js, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
	if err == nil {
		t.Fatal("EnsureStream with 3 replicas on one server succeeded, want an error")
	}
	if ctx.Err() != nil {
		t.Fatalf("EnsureStream retried a refusal that will not pass until its ctx ended: %v", err)
	}
}
