package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/wire"
)

type greetReq struct {
	Name string `json:"name"`
	Age  int    `json:"age"`
}

func (r greetReq) Validate() error {
	var v wire.Violations
	if r.Name == "" {
		v.Add("name", "is required")
	}
	if r.Age < 0 || r.Age > 150 {
		v.Add("age", "must be between 0 and 150")
	}
	return v.Err()
}

type greetResp struct {
	Greeting string `json:"greeting"`
}

func greet(_ context.Context, r greetReq) (greetResp, error) {
	return greetResp{Greeting: "hello " + r.Name}, nil
}

// raw sends data to subject and returns the raw reply, for tests of what
// travels on the wire.
func raw(t *testing.T, nc *nats.Conn, subject string, data []byte, hdr nats.Header) *nats.Msg {
	t.Helper()
	msg := &nats.Msg{Subject: subject, Data: data, Header: hdr}
	reply, err := nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatalf("request %s: %v", subject, err)
	}
	return reply
}

func TestTypedEndpoint(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	newService(t, nc, messaging.ServiceConfig{Name: "greeter"},
		messaging.Typed("greet", greet, messaging.WithMaxPayload(1024)))
	client := newClient(t, nc)

	tests := []struct {
		name        string
		givenData   string
		wantCode    int
		wantMessage string
		wantDetails []wire.Detail
		wantReply   string
	}{
		{name: "ok", givenData: `{"name":"Ada","age":36}`, wantReply: `{"greeting":"hello Ada"}`},
		{name: "whitespace around object", givenData: " \n{\"name\":\"Ada\"}\n ", wantReply: `{"greeting":"hello Ada"}`},
		{name: "validation details", givenData: `{"age":200}`, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "name", Message: "is required"}, {Field: "age", Message: "must be between 0 and 150"}}},
		{name: "empty body is the zero request", givenData: ``, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "name", Message: "is required"}}},
		{name: "unknown field", givenData: `{"name":"Ada","nmae":"x"}`, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "nmae", Message: "unknown field"}}},
		{name: "wrong type", givenData: `{"name":"Ada","age":"old"}`, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "age", Message: "must be an integer, got string"}}},
		{name: "fraction for integer", givenData: `{"name":"Ada","age":3.5}`, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "age", Message: "must be an integer, got number 3.5"}}},
		{name: "not an object", givenData: `[1,2]`, wantCode: 400, wantMessage: "request must be an object, got array"},
		{name: "malformed", givenData: `{"name":`, wantCode: 400, wantMessage: "malformed JSON: unexpected end of input"},
		{name: "syntax error", givenData: `{"name" "Ada"}`, wantCode: 400, wantMessage: "malformed JSON at offset 8: invalid character '\"' after object name (expecting ':')"},
		{name: "trailing data", givenData: `{"name":"Ada"} {"name":"Bob"}`, wantCode: 400, wantMessage: "malformed JSON: unexpected data after the request object (offset 15)"},
		// Stricter than encoding/json (docs/errors.md): a member given
		// twice, a name in another case and invalid UTF-8 are refused.
		{name: "duplicate member", givenData: `{"name":"Ada","name":"Bob"}`, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "name", Message: "appears more than once"}}},
		{name: "name in another case", givenData: `{"Name":"Ada"}`, wantCode: 400, wantMessage: "invalid request",
			wantDetails: []wire.Detail{{Field: "Name", Message: "unknown field"}}},
		{name: "invalid UTF-8", givenData: "{\"name\":\"Ada\xff\"}", wantCode: 400, wantMessage: "malformed JSON at offset 12: invalid UTF-8"},
		{name: "too large for this endpoint", givenData: `{"name":"` + strings.Repeat("a", 2000) + `"}`, wantCode: 413,
			wantMessage: "payload of 2011 bytes is over this endpoint's limit of 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := raw(t, nc, "greeter.greet", []byte(tt.givenData), nil)
			if tt.wantCode == 0 {
				if got := reply.Header.Get(micro.ErrorCodeHeader); got != "" {
					t.Fatalf("error reply %s: %s", got, reply.Data)
				}
				if string(reply.Data) != tt.wantReply {
					t.Fatalf("reply = %s, want %s", reply.Data, tt.wantReply)
				}
				return
			}
			if got := reply.Header.Get(micro.ErrorCodeHeader); got != fmt.Sprint(tt.wantCode) {
				t.Fatalf("code header = %q, want %d (body %s)", got, tt.wantCode, reply.Data)
			}
			if got := reply.Header.Get(micro.ErrorHeader); got != tt.wantMessage {
				t.Errorf("description header = %q, want %q", got, tt.wantMessage)
			}
			var body wire.Error
			if err := json.Unmarshal(reply.Data, &body); err != nil {
				t.Fatalf("error body %q is not JSON: %v", reply.Data, err)
			}
			if body.Code != tt.wantCode || body.Message != tt.wantMessage || fmt.Sprint(body.Details) != fmt.Sprint(tt.wantDetails) {
				t.Errorf("body = %+v, want code %d message %q details %v", body, tt.wantCode, tt.wantMessage, tt.wantDetails)
			}

			// The typed client sees the same error as *wire.Error.
			_, err := client.Call(context.Background(), "greeter.greet", []byte(tt.givenData))
			var e *wire.Error
			if !errors.As(err, &e) || e.Code != tt.wantCode || e.Message != tt.wantMessage {
				t.Errorf("client error = %v, want code %d %q", err, tt.wantCode, tt.wantMessage)
			}
		})
	}

	// The service is still serving after every bad input above.
	got, err := wire.Call[greetReq, greetResp](context.Background(), client, "greeter.greet", greetReq{Name: "Bob"})
	if err != nil || got.Greeting != "hello Bob" {
		t.Fatalf("after bad input: %v, %v", got, err)
	}
}

func TestDefaultPayloadLimit(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	newService(t, nc, messaging.ServiceConfig{Name: "greeter"}, messaging.Typed("greet", greet))
	client := newClient(t, nc)

	big := []byte(`{"name":"` + strings.Repeat("a", messaging.DefaultMaxPayload) + `"}`)
	_, err := client.Call(context.Background(), "greeter.greet", big)
	if !errors.Is(err, wire.ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestErrorMapping(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	errSecret := errors.New("db password is hunter2")
	newService(t, nc, messaging.ServiceConfig{Name: "errs"},
		messaging.Typed("notfound", func(_ context.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, fmt.Errorf("user %q: %w", "u1", wire.ErrNotFound)
		}),
		messaging.Typed("conflict", func(_ context.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, wire.NewError(wire.CodeConflict, "stale version", wire.Detail{Field: "version", Message: "current is 3"})
		}),
		messaging.Typed("internal", func(_ context.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, fmt.Errorf("load: %w", errSecret)
		}),
		messaging.Typed("toomany", func(_ context.Context, _ struct{}) (struct{}, error) {
			return struct{}{}, wire.Errorf(wire.CodeTooManyRequests, "slow down: %w", wire.ErrTooManyRequests)
		}),
	)
	client := newClient(t, nc)

	tests := []struct {
		name        string
		givenSubj   string
		wantErr     error
		wantCode    int
		wantMessage string
	}{
		{name: "wrapped sentinel", givenSubj: "errs.notfound", wantErr: wire.ErrNotFound, wantCode: 404, wantMessage: `user "u1": not found`},
		{name: "error with details", givenSubj: "errs.conflict", wantErr: wire.ErrConflict, wantCode: 409, wantMessage: "stale version"},
		{name: "internal error text is not sent", givenSubj: "errs.internal", wantErr: wire.ErrInternal, wantCode: 500, wantMessage: "internal error"},
		{name: "429", givenSubj: "errs.toomany", wantErr: wire.ErrTooManyRequests, wantCode: 429, wantMessage: "slow down: too many requests"},
		{name: "no responders", givenSubj: "errs.nobody", wantErr: wire.ErrUnavailable, wantCode: 503, wantMessage: "no service answers on errs.nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := wire.Call[struct{}, struct{}](context.Background(), client, tt.givenSubj, struct{}{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.wantErr)
			}
			var e *wire.Error
			if !errors.As(err, &e) || e.Code != tt.wantCode || e.Message != tt.wantMessage {
				t.Fatalf("err = %#v, want code %d message %q", err, tt.wantCode, tt.wantMessage)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("internal detail leaked: %v", err)
			}
		})
	}

	_, err := wire.Call[struct{}, struct{}](context.Background(), client, "errs.conflict", struct{}{})
	var e *wire.Error
	if !errors.As(err, &e) || len(e.Details) != 1 || e.Details[0].Field != "version" {
		t.Fatalf("details lost: %#v", err)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	newService(t, nc, messaging.ServiceConfig{Name: "boom"},
		messaging.Typed("panic", func(_ context.Context, r greetReq) (greetResp, error) {
			if r.Name == "panic" {
				panic("kaboom")
			}
			return greetResp{Greeting: "fine"}, nil
		}))
	client := newClient(t, nc)

	for range 3 {
		_, err := wire.Call[greetReq, greetResp](context.Background(), client, "boom.panic", greetReq{Name: "panic"})
		if !errors.Is(err, wire.ErrInternal) {
			t.Fatalf("err = %v, want ErrInternal", err)
		}
	}
	got, err := wire.Call[greetReq, greetResp](context.Background(), client, "boom.panic", greetReq{Name: "ok"})
	if err != nil || got.Greeting != "fine" {
		t.Fatalf("after panics: %v %v", got, err)
	}
}

func TestDeadlinePropagates(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	handlerErr := make(chan error, 1)
	var calls int
	var mu sync.Mutex
	newService(t, nc, messaging.ServiceConfig{Name: "slow"},
		messaging.Typed("wait", func(ctx context.Context, _ struct{}) (struct{}, error) {
			mu.Lock()
			calls++
			mu.Unlock()
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return struct{}{}, ctx.Err()
		}))
	client := newClient(t, nc)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := client.Call(ctx, "slow.wait", nil)
	if !errors.Is(err, wire.ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrDeadlineExceeded and context.DeadlineExceeded", err)
	}
	select {
	case herr := <-handlerErr:
		if !errors.Is(herr, context.DeadlineExceeded) {
			t.Fatalf("handler ctx err = %v, want DeadlineExceeded", herr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler context did not end at the caller's deadline")
	}

	// A request whose deadline passed before it arrived is not worked on.
	hdr := nats.Header{}
	hdr.Set(wire.HeaderDeadline, wire.FormatDeadline(time.Now().Add(-time.Second)))
	reply := raw(t, nc, "slow.wait", nil, hdr)
	if got := reply.Header.Get(micro.ErrorCodeHeader); got != "504" {
		t.Fatalf("expired request: code %q, want 504", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1 (the expired request must not run)", calls)
	}

	hdr.Set(wire.HeaderDeadline, "tomorrow")
	reply = raw(t, nc, "slow.wait", nil, hdr)
	if got := reply.Header.Get(micro.ErrorCodeHeader); got != "400" {
		t.Fatalf("bad deadline header: code %q, want 400", got)
	}
}

func TestClientTimeoutOption(t *testing.T) {
	if _, err := messaging.NewClient(nil); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("nil conn: %v", err)
	}
	srv := startServer(t)
	nc := connect(t, srv)
	if _, err := messaging.NewClient(nc, messaging.WithTimeout(0)); !errors.Is(err, messaging.ErrInvalidOption) {
		t.Fatalf("zero timeout: %v", err)
	}
	newService(t, nc, messaging.ServiceConfig{Name: "slow"},
		messaging.Typed("wait", func(ctx context.Context, _ struct{}) (struct{}, error) {
			<-ctx.Done()
			return struct{}{}, ctx.Err()
		}))
	client := newClient(t, nc, messaging.WithTimeout(100*time.Millisecond))
	// No deadline on ctx: the client's default timeout applies.
	_, err := client.Call(context.Background(), "slow.wait", nil)
	if !errors.Is(err, wire.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want ErrDeadlineExceeded", err)
	}
}

func TestSlowHandlerDoesNotBlockOthers(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	newService(t, nc, messaging.ServiceConfig{Name: "mixed"},
		messaging.Typed("work", func(ctx context.Context, r greetReq) (greetResp, error) {
			if r.Name == "slow" {
				started <- struct{}{}
				select {
				case <-release:
				case <-ctx.Done():
					return greetResp{}, ctx.Err()
				}
			}
			return greetResp{Greeting: r.Name}, nil
		}))
	client := newClient(t, nc)

	slowDone := make(chan error, 1)
	go func() {
		_, err := wire.Call[greetReq, greetResp](context.Background(), client, "mixed.work", greetReq{Name: "slow"})
		slowDone <- err
	}()
	<-started
	// The slow request holds its handler; fast ones on the same endpoint
	// are still answered.
	for i := range 10 {
		got, err := wire.Call[greetReq, greetResp](context.Background(), client, "mixed.work", greetReq{Name: fmt.Sprint("fast", i)})
		if err != nil || got.Greeting != fmt.Sprint("fast", i) {
			t.Fatalf("fast request %d while slow in flight: %v %v", i, got, err)
		}
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("slow request: %v", err)
	}
}

func TestOverloadAnswers503AndServiceStays(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	svc := newService(t, nc, messaging.ServiceConfig{Name: "busy"},
		messaging.Typed("work", func(ctx context.Context, _ struct{}) (struct{}, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return struct{}{}, nil
		}, messaging.WithMaxConcurrency(2)))
	client := newClient(t, nc)

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := client.Call(context.Background(), "busy.work", nil); err != nil {
				t.Errorf("in-limit request: %v", err)
			}
		}()
	}
	<-started
	<-started
	for range 20 {
		_, err := client.Call(context.Background(), "busy.work", nil)
		if !errors.Is(err, wire.ErrUnavailable) {
			t.Fatalf("over the limit: err = %v, want ErrUnavailable", err)
		}
	}
	// Still registered and discoverable.
	if _, err := nc.Request("$SRV.PING.busy", nil, 2*time.Second); err != nil {
		t.Fatalf("service not answering pings while overloaded: %v", err)
	}
	if err := svc.Err(); err != nil {
		t.Fatalf("service err: %v", err)
	}
	close(release)
	wg.Wait()
	if _, err := client.Call(context.Background(), "busy.work", nil); err != nil {
		t.Fatalf("after overload: %v", err)
	}
	// Refusals are counted in the stats data.
	st := svc.Stats()
	var data messaging.EndpointStats
	if err := json.Unmarshal(st.Endpoints[0].Data, &data); err != nil {
		t.Fatalf("stats data: %v", err)
	}
	if data.RejectedOverload != 20 || data.Handled != 3 || data.MaxConcurrency != 2 {
		t.Fatalf("stats data = %+v, want 20 rejected, 3 handled, max 2", data)
	}
}

func TestFloodDoesNotStopService(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	release := make(chan struct{})
	svc := newService(t, nc, messaging.ServiceConfig{Name: "flood"},
		messaging.Typed("work", func(ctx context.Context, _ struct{}) (struct{}, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return struct{}{}, nil
		}, messaging.WithMaxConcurrency(4)))

	// Publish far more requests than the endpoint takes, without waiting
	// for replies: each is refused at once instead of piling up.
	pub := connect(t, srv)
	inbox := nats.NewInbox()
	replies := make(chan *nats.Msg, 10000)
	sub, err := pub.ChanSubscribe(inbox, replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	const n = 5000
	for range n {
		if err := pub.PublishRequest("flood.work", inbox, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	var refused int
	testkit.Eventually(t, 10*time.Second, 5*time.Millisecond, func() error {
		for {
			select {
			case m := <-replies:
				if m.Header.Get(micro.ErrorCodeHeader) == "503" {
					refused++
				}
			default:
				if refused < n-4 {
					return fmt.Errorf("%d of %d refused", refused, n-4)
				}
				return nil
			}
		}
	})
	close(release)
	if err := svc.Err(); err != nil {
		t.Fatalf("service stopped by the flood: %v", err)
	}
	// The released handlers free their slots just after; until then a new
	// request may still be refused.
	client := newClient(t, nc)
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := client.Call(context.Background(), "flood.work", nil)
		return err
	})
}

func TestInfoCarriesSchemas(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	svc := newService(t, nc, messaging.ServiceConfig{Name: "greeter", Version: "1.2.3", Description: "says hello"},
		messaging.Typed("greet", greet, messaging.WithDescription("Greets a person.")))

	info := svc.Info()
	if info.Name != "greeter" || info.Version != "1.2.3" || info.Description != "says hello" || len(info.Endpoints) != 1 {
		t.Fatalf("info = %+v", info)
	}
	ep := info.Endpoints[0]
	if ep.Subject != "greeter.greet" || ep.QueueGroup != "q" || ep.Metadata["description"] != "Greets a person." {
		t.Fatalf("endpoint = %+v", ep)
	}
	var schema struct {
		Type       string                    `json:"type"`
		Properties map[string]map[string]any `json:"properties"`
	}
	if err := json.Unmarshal([]byte(ep.Metadata["request_schema"]), &schema); err != nil {
		t.Fatalf("request_schema: %v", err)
	}
	if schema.Type != "object" || schema.Properties["age"]["type"] != "integer" || schema.Properties["name"]["type"] != "string" {
		t.Fatalf("request schema = %+v", schema)
	}
	if !strings.Contains(ep.Metadata["response_schema"], `"greeting"`) {
		t.Fatalf("response schema = %s", ep.Metadata["response_schema"])
	}
}

func TestReplicasShareLoad(t *testing.T) {
	srv := startServer(t)
	var mu sync.Mutex
	served := map[string]int{}
	for _, name := range []string{"a", "b"} {
		nc := connect(t, srv)
		newService(t, nc, messaging.ServiceConfig{Name: "shared"},
			messaging.Typed("who", func(_ context.Context, _ struct{}) (string, error) {
				mu.Lock()
				served[name]++
				mu.Unlock()
				return name, nil
			}))
	}
	client := newClient(t, connect(t, srv))
	for range 200 {
		if _, err := wire.Call[struct{}, string](context.Background(), client, "shared.who", struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if served["a"]+served["b"] != 200 || served["a"] == 0 || served["b"] == 0 {
		t.Fatalf("served = %v, want 200 requests shared by both replicas", served)
	}
}

func TestStopWaitsForInFlight(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	release := make(chan struct{})
	started := make(chan struct{})
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{Name: "graceful", Version: "1.0.0"},
		messaging.Typed("work", func(ctx context.Context, _ struct{}) (string, error) {
			close(started)
			<-release
			return "done", nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, connect(t, srv))
	replyErr := make(chan error, 1)
	go func() {
		got, err := wire.Call[struct{}, string](context.Background(), client, "graceful.work", struct{}{})
		if err == nil && got != "done" {
			err = fmt.Errorf("got %q", got)
		}
		replyErr <- err
	}()
	<-started
	stopErr := make(chan error, 1)
	go func() { stopErr <- svc.Stop(context.Background()) }()
	// New requests are no longer taken once the service stops.
	testkit.Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		_, err := client.Call(context.Background(), "graceful.work", nil)
		if errors.Is(err, wire.ErrUnavailable) {
			return nil
		}
		return fmt.Errorf("request during stop: %v", err)
	})
	close(release)
	if err := <-replyErr; err != nil {
		t.Fatalf("in-flight request lost at stop: %v", err)
	}
	if err := <-stopErr; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if !errors.Is(svc.Err(), messaging.ErrStopped) {
		t.Fatalf("Err after stop = %v", svc.Err())
	}
}

func TestStopTimeoutCancelsHandlers(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	started := make(chan struct{})
	handlerErr := make(chan error, 1)
	svc, err := messaging.NewService(nc, messaging.ServiceConfig{Name: "stuck", Version: "1.0.0"},
		messaging.Typed("work", func(ctx context.Context, _ struct{}) (struct{}, error) {
			close(started)
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return struct{}{}, ctx.Err()
		}))
	if err != nil {
		t.Fatal(err)
	}
	client := newClient(t, connect(t, srv))
	go func() { _, _ = client.Call(context.Background(), "stuck.work", nil) }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := svc.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop = %v, want DeadlineExceeded", err)
	}
	if err := <-handlerErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler ctx = %v, want Canceled", err)
	}
}

func TestInvalidServiceConfig(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	tests := []struct {
		name    string
		cfg     messaging.ServiceConfig
		routes  []messaging.Endpoint
		wantErr error
	}{
		{name: "bad max payload option", cfg: messaging.ServiceConfig{Name: "x", Version: "1.0.0"},
			routes: []messaging.Endpoint{messaging.Typed("a", greet, messaging.WithMaxPayload(0))}, wantErr: messaging.ErrInvalidOption},
		{name: "bad concurrency option", cfg: messaging.ServiceConfig{Name: "x", Version: "1.0.0"},
			routes: []messaging.Endpoint{messaging.Typed("a", greet, messaging.WithMaxConcurrency(0))}, wantErr: messaging.ErrInvalidOption},
		{name: "duplicate subject", cfg: messaging.ServiceConfig{Name: "x", Version: "1.0.0"},
			routes: []messaging.Endpoint{messaging.Typed("a", greet), messaging.Typed("b", greet, messaging.WithSubject("x.a"))}, wantErr: messaging.ErrInvalidOption},
		{name: "bad version", cfg: messaging.ServiceConfig{Name: "x", Version: "one"}, wantErr: micro.ErrConfigValidation},
		{name: "bad name", cfg: messaging.ServiceConfig{Name: "x y", Version: "1.0.0"}, wantErr: micro.ErrConfigValidation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := messaging.NewService(nc, tt.cfg, tt.routes...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// A client keeps a session: the positions its writes' replies name go
// with its next calls, merged with those of the calls' contexts, and a
// service puts them in its handlers' contexts (wire.PositionsFrom).
func TestClientSessionCarriesPositions(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv)
	seen := make(chan string, 10)
	newService(t, nc, messaging.ServiceConfig{Name: "store"},
		messaging.Typed("write", func(ctx context.Context, _ struct{}) (struct{}, error) {
			messaging.SetReplyHeader(ctx, wire.HeaderStream, "THINGS")
			messaging.SetReplyHeader(ctx, wire.HeaderSequence, "41")
			return struct{}{}, nil
		}),
		messaging.Typed("read", func(ctx context.Context, _ struct{}) (struct{}, error) {
			seen <- wire.PositionsFrom(ctx).String()
			return struct{}{}, nil
		}))
	c := newClient(t, nc)
	call := func(ctx context.Context, ep string) {
		t.Helper()
		if _, err := wire.Call[struct{}, struct{}](ctx, c, "store."+ep, struct{}{}); err != nil {
			t.Fatal(err)
		}
	}
	call(t.Context(), "read")
	if got := <-seen; got != "" {
		t.Fatalf("a fresh client sent positions %q", got)
	}
	call(t.Context(), "write")
	call(t.Context(), "read")
	if got := <-seen; got != "THINGS=41" {
		t.Fatalf("positions = %q, want the session's", got)
	}
	call(wire.WithPositions(t.Context(), wire.Positions{"OTHER": 5}), "read")
	if got := <-seen; got != "OTHER=5,THINGS=41" {
		t.Fatalf("positions = %q, want the session's and the context's", got)
	}
	bare, err := messaging.NewClient(nc, messaging.WithoutSession())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Call[struct{}, struct{}](t.Context(), bare, "store.write", struct{}{}); err != nil {
		t.Fatal(err)
	}
	if _, err := wire.Call[struct{}, struct{}](t.Context(), bare, "store.read", struct{}{}); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "" {
		t.Fatalf("a client without a session sent %q", got)
	}
	// A malformed header is a 400, like a malformed deadline.
	_, err = c.Call(t.Context(), "store.read", nil, wire.WithHeader(wire.HeaderAfter, "nonsense"))
	if !errors.Is(err, wire.ErrBadRequest) {
		t.Fatalf("bad %s: %v", wire.HeaderAfter, err)
	}
}

// A reply larger than the server's max payload cannot be sent: the caller
// gets a clear error reply at once, not a silence it would wait out.
func TestReplyTooLargeIsAClearError(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	nc := connect(t, srv)
	newService(t, nc, messaging.ServiceConfig{Name: "big"},
		messaging.Typed("reply", func(context.Context, struct{}) (string, error) { return strings.Repeat("x", 100<<10), nil }))
	_, err = wire.Call[struct{}, string](t.Context(), newClient(t, nc, messaging.WithTimeout(5*time.Second)), "big.reply", struct{}{})
	// A 500 that says why, not the 504 of a caller that timed out.
	var e *wire.Error
	if !errors.As(err, &e) || e.Code != wire.CodeInternal || !strings.Contains(e.Message, "larger than the server's max payload") {
		t.Fatalf("err = %v, want a 500 naming the max payload", err)
	}
}
