package notes_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded/embeddedtest"
	"github.com/devloop/switchboard/internal/examples/notes"
	"github.com/devloop/switchboard/internal/examples/notes/contract"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/wire"
)

// TestGuide follows docs/architecture.md "Adding a service" with the
// notes service, and checks each thing the guide says a new service gets
// from the shared parts without writing it.
func TestGuide(t *testing.T) {
	// The server enforces the permissions of notes.Access(), as dev and
	// production do: the service runs as its own NATS user, the caller as
	// the client role and the gateway as the gateway.
	model := natsauth.NewModel(notes.Access(), gateway.Access(natsauth.Endpoints(notes.Access())))
	as := func(user string) natsauth.Grant {
		g, ok := model.Grant(user)
		if !ok {
			t.Fatalf("no grant for %s", user)
		}
		return g
	}
	srv := embeddedtest.StartSecure(t, t.TempDir(), model)
	svc, err := notes.Start(t.Context(), embeddedtest.ConnectAs(t, srv, as(notes.Access().User), "notes"), notes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop(t.Context()) })
	nc := embeddedtest.ConnectAs(t, srv, as(natsauth.ClientUser), "caller")
	c, err := messaging.NewClient(nc, messaging.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	t.Run("discovered like any micro service", func(t *testing.T) {
		msg, err := nc.RequestWithContext(ctx, "$SRV.INFO.notes", nil)
		if err != nil {
			t.Fatal(err)
		}
		var info struct {
			Name      string `json:"name"`
			Endpoints []struct {
				Subject  string            `json:"subject"`
				Metadata map[string]string `json:"metadata"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal(msg.Data, &info); err != nil {
			t.Fatal(err)
		}
		var subjects []string
		for _, ep := range info.Endpoints {
			subjects = append(subjects, ep.Subject)
			if ep.Metadata["request_schema"] == "" {
				t.Errorf("%s publishes no request schema", ep.Subject)
			}
		}
		if got, want := strings.Join(subjects, ","), "notes.create,notes.get,notes.update"; info.Name != "notes" || got != want {
			t.Fatalf("$SRV.INFO.notes: %s with %s, want notes with %s", info.Name, got, want)
		}
	})

	t.Run("bad input is a 400 naming the field", func(t *testing.T) {
		_, err := contract.CreateNote(ctx, c, contract.CreateRequest{Title: " "})
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeBadRequest || len(we.Details) != 1 || we.Details[0].Field != "title" {
			t.Fatalf("blank title: %v, want a 400 about title", err)
		}
		_, err = c.Call(ctx, contract.SubjectCreate, []byte(`{"title":"x","colour":"red"}`))
		if wire.CodeOf(err) != wire.CodeBadRequest {
			t.Fatalf("unknown field: %v, want 400", err)
		}
	})

	var n contract.Note
	t.Run("create, read, update with optimistic concurrency", func(t *testing.T) {
		if n, err = contract.CreateNote(ctx, c, contract.CreateRequest{Title: "groceries", Body: "eggs"}); err != nil {
			t.Fatal(err)
		}
		got, err := contract.GetNote(ctx, c, contract.GetRequest{ID: n.ID})
		if err != nil || got.Body != "eggs" || got.Version != 1 {
			t.Fatalf("get: %+v, %v", got, err)
		}
		up, err := contract.UpdateNote(ctx, c, contract.UpdateRequest{ID: n.ID, Version: 1, Body: "eggs, milk"})
		if err != nil || up.Version != 2 {
			t.Fatalf("update: %+v, %v", up, err)
		}
		_, err = contract.UpdateNote(ctx, c, contract.UpdateRequest{ID: n.ID, Version: 1, Body: "lost"})
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeConflict || len(we.Details) == 0 || we.Details[0].Field != "version" {
			t.Fatalf("stale update: %v, want 409 about version", err)
		}
		if _, err := contract.GetNote(ctx, c, contract.GetRequest{ID: "01JNOSUCHNOTE0000000000000"}); !errors.Is(err, wire.ErrNotFound) {
			t.Fatalf("get unknown: %v, want 404", err)
		}
	})

	t.Run("idempotent creates", func(t *testing.T) {
		req := contract.CreateRequest{Title: "once", Body: "b"}
		first, err := contract.CreateNote(ctx, c, req, wire.WithIdempotencyKey("k-1"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := contract.CreateNote(ctx, c, req, wire.WithIdempotencyKey("k-1"))
		if err != nil || again.ID != first.ID {
			t.Fatalf("retry: %+v, %v; want note %s", again, err, first.ID)
		}
		req.Body = "other"
		if _, err := contract.CreateNote(ctx, c, req, wire.WithIdempotencyKey("k-1")); wire.CodeOf(err) != wire.CodeUnprocessable {
			t.Fatalf("key reused for another request: %v, want 422", err)
		}
	})

	t.Run("writes are public events and name their position", func(t *testing.T) {
		reply, err := c.Call(ctx, contract.SubjectUpdate, []byte(`{"id":"`+n.ID+`","version":2,"body":"eggs, milk, tea"}`))
		if err != nil {
			t.Fatal(err)
		}
		seq, err := strconv.ParseUint(reply.Header.Get(wire.HeaderSequence), 10, 64)
		if err != nil || reply.Header.Get(wire.HeaderStream) != contract.Stream {
			t.Fatalf("reply headers %v: want %s and a sequence", reply.Header, contract.Stream)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, contract.Stream)
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		var ev contract.Event
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if m.Subject != contract.EventSubjectPrefix+n.ID || m.Header.Get(wire.HeaderEventType) != contract.EventUpdated ||
			ev.Note.Body != "eggs, milk, tea" || ev.Note.Version != 3 {
			t.Fatalf("event at %d: %s %v %+v", seq, m.Subject, m.Header, ev)
		}
	})

	t.Run("served over HTTP by the gateway", func(t *testing.T) {
		g, err := gateway.New(ctx, embeddedtest.ConnectAs(t, srv, as(gateway.User), "gateway"), gateway.Options{Refresh: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		hs := httptest.NewServer(g)
		t.Cleanup(hs.Close)
		var body string
		testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
			resp, err := http.Get(hs.URL + "/v1/notes/" + n.ID)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status + ": " + string(data))
			}
			body = string(data)
			return nil
		})
		if !strings.Contains(body, `"body":"eggs, milk, tea"`) {
			t.Fatalf("GET /v1/notes/%s: %s", n.ID, body)
		}
	})
}
