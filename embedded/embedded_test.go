package embedded_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/testkit"
)

// startServer starts a server on a free loopback port with its own store,
// stopped when the test ends. Zero fields of opts get those defaults.
func startServer(t *testing.T, opts embedded.Options) *embedded.Server {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.StoreDir == "" {
		opts.StoreDir = t.TempDir()
	}
	s, err := embedded.Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

func shutdown(t *testing.T, s *embedded.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func connect(t *testing.T, s *embedded.Server, name string) *nats.Conn {
	t.Helper()
	nc, err := s.Connect(name)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newStream(t *testing.T, nc *nats.Conn) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	stream, err := js.CreateOrUpdateStream(t.Context(), jetstream.StreamConfig{
		Name:     "ORDERS",
		Subjects: []string{"orders.>"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	return js, stream
}

func TestStart(t *testing.T) {
	s := startServer(t, embedded.Options{})

	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Addr() = %q, want 127.0.0.1 and a real port", s.Addr())
	}
	if want := "nats://" + s.Addr(); s.ClientURL() != want {
		t.Errorf("ClientURL() = %q, want %q", s.ClientURL(), want)
	}
	if !filepath.IsAbs(s.StoreDir()) {
		t.Errorf("StoreDir() = %q, want an absolute path", s.StoreDir())
	}
	if !s.NATS().JetStreamEnabled() {
		t.Error("JetStream is not enabled")
	}

	inProc := connect(t, s, "in-process")
	sub, err := inProc.SubscribeSync("greet")
	if err != nil {
		t.Fatalf("SubscribeSync: %v", err)
	}
	if err := inProc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	// A client outside the process, over TCP, reaches the in-process one.
	tcp, err := nats.Connect(s.ClientURL(), nats.Name("tcp"))
	if err != nil {
		t.Fatalf("TCP connect to %s: %v", s.ClientURL(), err)
	}
	t.Cleanup(tcp.Close)
	if err := tcp.Publish("greet", []byte("hello")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("NextMsg: %v", err)
	}
	if string(msg.Data) != "hello" {
		t.Errorf("got %q, want %q", msg.Data, "hello")
	}

	// The in-process connection does not use TCP.
	if addr := inProc.ConnectedAddr(); strings.Contains(addr, s.Addr()) {
		t.Errorf("in-process connection is connected to %q, want a pipe", addr)
	}
	if max := inProc.MaxPayload(); max != embedded.DefaultMaxPayload {
		t.Errorf("MaxPayload = %d, want %d", max, embedded.DefaultMaxPayload)
	}
}

func TestJetStream(t *testing.T) {
	s := startServer(t, embedded.Options{})
	js, stream := newStream(t, connect(t, s, "js"))

	ack, err := js.Publish(t.Context(), "orders.created", []byte(`{"id":1}`))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got, err := stream.GetMsg(t.Context(), ack.Sequence)
	if err != nil {
		t.Fatalf("GetMsg: %v", err)
	}
	if got.Subject != "orders.created" || string(got.Data) != `{"id":1}` {
		t.Errorf("got %s %s, want orders.created {\"id\":1}", got.Subject, got.Data)
	}
	// The stream is on disk in the store directory.
	if _, err := os.Stat(filepath.Join(s.StoreDir(), "jetstream", "$G", "streams", "ORDERS")); err != nil {
		t.Errorf("stream not in the store directory: %v", err)
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, embedded.Options{StoreDir: dir})
	nc := connect(t, first, "first")
	js, _ := newStream(t, nc)
	ack, err := js.Publish(t.Context(), "orders.created", []byte("kept"))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	nc.Close()
	addr := first.Addr()
	shutdown(t, first)

	// Same store and the same port: Shutdown released both.
	second := startServer(t, embedded.Options{StoreDir: dir, Listen: addr})
	js2, err := jetstream.New(connect(t, second, "second"))
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	stream, err := js2.Stream(t.Context(), "ORDERS")
	if err != nil {
		t.Fatalf("Stream after restart: %v", err)
	}
	got, err := stream.GetMsg(t.Context(), ack.Sequence)
	if err != nil {
		t.Fatalf("GetMsg after restart: %v", err)
	}
	if string(got.Data) != "kept" {
		t.Errorf("got %q after restart, want %q", got.Data, "kept")
	}
}

func TestStartAddrInUse(t *testing.T) {
	first := startServer(t, embedded.Options{})

	s, err := embedded.Start(t.Context(), embedded.Options{Listen: first.Addr(), StoreDir: t.TempDir()})
	if err == nil {
		shutdown(t, s)
		t.Fatal("second server on the same port started")
	}
	if !errors.Is(err, embedded.ErrAddrInUse) {
		t.Fatalf("err = %v, want ErrAddrInUse", err)
	}
	if want := "listen " + first.Addr() + ": address already in use"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to contain %q", err, want)
	}
}

func TestStartStoreLocked(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, embedded.Options{StoreDir: dir})

	s, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
	if err == nil {
		shutdown(t, s)
		t.Fatal("second server on the same store dir started")
	}
	if !errors.Is(err, embedded.ErrStoreLocked) {
		t.Fatalf("err = %v, want ErrStoreLocked", err)
	}
	if want := fmt.Sprintf("in use by another server in this process (pid %d)", os.Getpid()); !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to contain %q", err, want)
	}

	// Shutdown releases the store.
	shutdown(t, first)
	startServer(t, embedded.Options{StoreDir: dir})
}

func TestShutdownIdempotent(t *testing.T) {
	s := startServer(t, embedded.Options{})

	// A caller that gives up does not stop the shutdown.
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Shutdown(cancelled); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown(cancelled ctx) = %v, want nil or context.Canceled", err)
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { shutdown(t, s) })
	}
	wg.Wait()
	shutdown(t, s)

	if _, err := net.Dial("tcp", s.Addr()); err == nil {
		t.Error("server still accepts TCP connections after Shutdown")
	}
	if _, err := s.Connect("late"); err == nil {
		t.Error("in-process Connect succeeded after Shutdown")
	}
}

func TestStartInvalid(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name      string
		givenCtx  context.Context
		givenOpts embedded.Options
		wantErr   error
	}{
		{"no store dir", t.Context(), embedded.Options{Listen: "127.0.0.1:0"}, embedded.ErrInvalidOption},
		{"listen without port", t.Context(), embedded.Options{Listen: "127.0.0.1", StoreDir: t.TempDir()}, embedded.ErrInvalidOption},
		{"port out of range", t.Context(), embedded.Options{Listen: "127.0.0.1:70000", StoreDir: t.TempDir()}, embedded.ErrInvalidOption},
		{"negative max payload", t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), MaxPayload: -1}, embedded.ErrInvalidOption},
		{"server name with space", t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), ServerName: "a b"}, embedded.ErrInvalidOption},
		{"store dir is a file", t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: file}, nil},
		{"cancelled context", cancelled, embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := embedded.Start(tt.givenCtx, tt.givenOpts)
			if err == nil {
				shutdown(t, s)
				t.Fatal("Start succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestStartReadyTimeout(t *testing.T) {
	dir := t.TempDir()
	_, err := embedded.Start(t.Context(), embedded.Options{
		Listen:       "127.0.0.1:0",
		StoreDir:     dir,
		ReadyTimeout: time.Nanosecond,
	})
	if err == nil || !strings.Contains(err.Error(), "not ready after 1ns") {
		t.Fatalf("err = %v, want a ready timeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}

	// The half-started server stops in the background and frees the store.
	testkit.Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
		s, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: dir})
		if err != nil {
			return err
		}
		shutdown(t, s)
		return nil
	})
}

func TestLogger(t *testing.T) {
	tests := []struct {
		name      string
		givenMin  slog.Level
		wantDebug bool
	}{
		{"info", slog.LevelInfo, false},
		{"debug", slog.LevelDebug, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRecorder(tt.givenMin)
			startServer(t, embedded.Options{Logger: slog.New(h)})

			ready, ok := h.find("Server is ready")
			if !ok {
				t.Fatalf("no %q line among %d records", "Server is ready", len(h.all()))
			}
			if ready.Level != slog.LevelInfo {
				t.Errorf("level = %v, want INFO", ready.Level)
			}
			if got := attr(ready, "component"); got != "nats-server" {
				t.Errorf("component = %q, want nats-server", got)
			}
			if _, got := h.find("Go build:"); got != tt.wantDebug {
				t.Errorf("debug line logged = %v, want %v", got, tt.wantDebug)
			}
		})
	}
}

// recorder is a slog.Handler that keeps records at or above min.
type recorder struct {
	min   slog.Level
	attrs []slog.Attr

	mu      *sync.Mutex // shared with the handlers WithAttrs returns
	records *[]slog.Record
}

func newRecorder(min slog.Level) *recorder {
	return &recorder{min: min, mu: new(sync.Mutex), records: new([]slog.Record)}
}

func (h *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min }

func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.records = append(*h.records, r)
	return nil
}

func (h *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *recorder) WithGroup(string) slog.Handler { return h }

func (h *recorder) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), *h.records...)
}

func (h *recorder) find(prefix string) (slog.Record, bool) {
	for _, r := range h.all() {
		if strings.HasPrefix(strings.TrimSpace(r.Message), prefix) {
			return r, true
		}
	}
	return slog.Record{}, false
}

func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// TestStartWithConfig: the server runs the configuration text it is given
// (here a user with a password), under the settings of Options.
func TestStartWithConfig(t *testing.T) {
	s := startServer(t, embedded.Options{Config: `authorization { users: [{user: "ada", password: "s3cret"}] }`})
	if nc, err := nats.Connect(s.ClientURL()); err == nil {
		nc.Close()
		t.Error("an anonymous client connected to a server that requires a user")
	}
	nc, err := s.Connect("ada", nats.UserInfo("ada", "s3cret"))
	if err != nil {
		t.Fatalf("Connect as ada: %v", err)
	}
	nc.Close()
	if !s.NATS().JetStreamEnabled() {
		t.Error("JetStream is not enabled")
	}
	_, err = embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Config: "accounts {"})
	if !errors.Is(err, embedded.ErrInvalidOption) {
		t.Errorf("Start with a broken configuration: %v, want ErrInvalidOption", err)
	}
}
