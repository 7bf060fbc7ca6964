package eventstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/eventstore"
)

// thing is the entity of these tests: an id, a version, a unique handle
// and the owner whose listing it is in.
type thing struct {
	ID      string `json:"id"`
	Version int64  `json:"version"`
	Handle  string `json:"handle"`
	Owner   string `json:"owner"`
	Note    string `json:"note,omitempty"`
}

type thingEvent struct {
	Type  string `json:"type"`
	ID    string `json:"id"`
	Thing thing  `json:"thing"`
}

const (
	created = "thing.created"
	changed = "thing.changed"
	removed = "thing.removed"
)

func config() eventstore.Config[thing] {
	return eventstore.Config[thing]{
		Stream:        jetstream.StreamConfig{Name: "THINGS", Subjects: []string{"things.events.*"}, Storage: jetstream.FileStorage},
		EventFilter:   "things.events.*",
		Internal:      "things.internal",
		EventSubject:  func(id, _ string) string { return "things.events." + id },
		EntityFilter:  func(id string) string { return "things.events." + id },
		IDOf:          func(s string) string { return s[strings.LastIndexByte(s, '.')+1:] },
		FenceSubjects: "things.fence.*",
		FenceSubject:  func(id string) string { return "things.fence." + id },
		WriteFilter:   func(id string) string { return "things.*." + id },
		WithKey:       func(v thing, id string) thing { v.ID = id; return v },
		Encode: func(typ, eventID string, _ time.Time, v thing) any {
			return thingEvent{Type: typ, ID: eventID, Thing: v}
		},
		Decode: func(data []byte) (string, thing, error) {
			var ev thingEvent
			err := json.Unmarshal(data, &ev)
			return ev.Type, ev.Thing, err
		},
		Key:     func(v thing) string { return v.ID },
		Version: func(v thing) int64 { return v.Version },
		Ends:    func(typ string) bool { return typ == removed },
		Listing: func(v thing) string { return v.Owner },
		Uniques: func(v thing) []eventstore.Unique { return []eventstore.Unique{{Name: "handle", Value: v.Handle}} },
	}
}

// world is an embedded server and a way to open stores ("replicas") on it.
type world struct {
	t   *testing.T
	srv interface {
		Connect(string, ...nats.Option) (*nats.Conn, error)
	}
	nc *nats.Conn // a client connection, for raw access to the stream
	js jetstream.JetStream
}

func newWorld(t *testing.T) *world {
	t.Helper()
	srv := embeddedtest.Start(t, t.TempDir())
	nc := embeddedtest.Connect(t, srv, t.Name()+"/raw")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, srv: srv, nc: nc, js: js}
}

// open opens a store on a connection of its own, closed with the test.
func (w *world) open(c cache.Config) *eventstore.Store[thing] {
	w.t.Helper()
	nc, err := w.srv.Connect(w.t.Name() + "/store")
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(nc.Close)
	cfg := config()
	cfg.Cache = c
	s, err := eventstore.Open(context.Background(), nc, cfg)
	if err != nil {
		w.t.Fatalf("open: %v", err)
	}
	w.t.Cleanup(s.Close)
	return s
}

// publish puts a raw message on the stream, as anybody with access could.
func (w *world) publish(subject string, data []byte, h nats.Header) uint64 {
	w.t.Helper()
	ack, err := w.js.PublishMsg(w.t.Context(), &nats.Msg{Subject: subject, Data: data, Header: h})
	if err != nil {
		w.t.Fatal(err)
	}
	return ack.Sequence
}

func create(t *testing.T, s *eventstore.Store[thing], id, handle, owner string) eventstore.Record[thing] {
	t.Helper()
	rec, err := s.Create(t.Context(), id, eventstore.Change[thing]{Type: created, State: thing{ID: id, Version: 1, Handle: handle, Owner: owner}}, nil)
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	return rec
}

func next(v thing) thing {
	v.Version++
	return v
}
