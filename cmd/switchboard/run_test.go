package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// Bounds on waits that should take well under a second; generous so that a
// loaded CI machine with the race detector does not flake.
const (
	readyTimeout  = 20 * time.Second
	returnTimeout = 30 * time.Second
	pollInterval  = 10 * time.Millisecond
)

// fakeEnv is a getenv over m.
func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// instance is one call of run in a goroutine.
type instance struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan struct{}
	err            error // run's result, set before done is closed
	banner
}

// startRun calls run(args) in a goroutine with an empty environment; cancel
// ends it as a signal would. A cleanup stops it if the test does not.
func startRun(t *testing.T, args ...string) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(in.done)
		in.err = run(ctx, append([]string{"switchboard"}, args...), fakeEnv(nil), in.stdout, in.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-in.done:
		case <-time.After(returnTimeout):
			t.Errorf("run %q did not return %v after cancel", args, returnTimeout)
		}
	})
	return in
}

// waitReady waits for the ready banner and parses it. It fails the test if
// run returns first.
func (in *instance) waitReady(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, readyTimeout, pollInterval, func() error {
		select {
		case <-in.done:
			t.Fatalf("run returned before ready: %v\nstderr:\n%s", in.err, in.stderr)
		default:
		}
		b, ok := parseBanner(in.stdout.String())
		if !ok {
			return errors.New("no ready banner yet; stdout:\n" + in.stdout.String())
		}
		in.banner = b
		return nil
	})
}

// wait waits for run to return by itself and returns its error.
func (in *instance) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-in.done:
		return in.err
	case <-time.After(returnTimeout):
		t.Fatalf("run did not return within %v; stderr:\n%s", returnTimeout, in.stderr)
		return nil
	}
}

// stop cancels run, as SIGINT would, and returns its error.
func (in *instance) stop(t *testing.T) error {
	t.Helper()
	in.cancel()
	return in.wait(t)
}

// client connects to url over TCP, as another process would, with its
// nkey when it has one (dev's client role).
func client(t *testing.T, url natsTarget) *messaging.Client {
	t.Helper()
	opts := []nats.Option{nats.Name(t.Name())}
	if url.nkey != "" {
		opt, err := nats.NkeyOptionFromSeed(url.nkey)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, opt)
	}
	nc, err := nats.Connect(url.url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url.url, err)
	}
	t.Cleanup(nc.Close)
	c, err := messaging.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createUser(t *testing.T, c *messaging.Client, name, email string, age int) contract.User {
	t.Helper()
	u, err := contract.CreateUser(t.Context(), c, contract.CreateRequest{Name: name, Email: email, Age: &age})
	if err != nil {
		t.Fatalf("%s: %v", contract.SubjectCreate, err)
	}
	if u.ID == "" || u.Name != name || u.Email != email || u.Age != age || u.Version != 1 {
		t.Fatalf("%s returned %+v", contract.SubjectCreate, u)
	}
	return u
}

func getUser(t *testing.T, c *messaging.Client, id string) contract.User {
	t.Helper()
	u, err := contract.GetUser(t.Context(), c, contract.GetRequest{ID: id})
	if err != nil {
		t.Fatalf("%s %s: %v", contract.SubjectGet, id, err)
	}
	return u
}

// devArgs runs dev on dataDir with free ports and JSON logs.
func devArgs(dataDir string, extra ...string) []string {
	return append([]string{"dev", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-format", "json"}, extra...)
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int      // 0: run returns nil
		wantErr    []string // in the error
		wantIs     error
		wantStdout []string
		wantStderr []string
		notInAny   []string // in neither output nor error
	}{
		{
			name:       "version",
			args:       []string{"version"},
			wantStdout: []string{"switchboard " + buildVersion() + " (go"},
		},
		{
			name:       "help",
			args:       []string{"help"},
			wantStdout: []string{"switchboard dev [flags]", "switchboard run [flags] SERVICE...", "Services: users"},
		},
		{
			name:       "no command",
			args:       nil,
			wantCode:   2,
			wantErr:    []string{"no command given"},
			wantStderr: []string{"Usage:", "Services: users"},
		},
		{
			name:       "unknown command",
			args:       []string{"frobnicate"},
			wantCode:   2,
			wantErr:    []string{`unknown command "frobnicate"`},
			wantStderr: []string{"Usage:"},
		},
		{
			name:     "dev with an argument",
			args:     []string{"dev", "extra"},
			wantCode: 2,
			wantErr:  []string{"takes no arguments", "extra"},
		},
		{
			name:     "run without a service",
			args:     []string{"run"},
			wantCode: 2,
			wantErr:  []string{"at least one service", "users"},
		},
		{
			name:     "run an unknown service",
			args:     []string{"run", "nosuch"},
			wantCode: 2,
			wantErr:  []string{`unknown service "nosuch"`, "known services: users"},
		},
		{
			// Flags may follow service names; a bad one still names
			// itself.
			name:     "bad flag after a service",
			args:     []string{"run", "users", "--log-level", "loud"},
			wantCode: 2,
			wantErr:  []string{"log-level", "loud"},
		},
		{
			name:     "a flag-like service name after --",
			args:     []string{"run", "--", "--users"},
			wantCode: 2,
			wantErr:  []string{`unknown service "--users"`},
		},
		{
			name:     "config with an argument",
			args:     []string{"config", "extra"},
			wantCode: 2,
			wantErr:  []string{"config takes no arguments"},
		},
		{
			name: "config masks secrets and shows sources",
			args: []string{"config", "--nats-url", "nats://ada:s3cr3t@h:4222", "--nats-token", "tok123"},
			wantStdout: []string{
				"nats://ada:xxxxx@h:4222", "(flag --nats-url)",
				"nats-token", "xxxxx", "(flag --nats-token)",
				"(default)",
			},
			notInAny: []string{"s3cr3t", "tok123"},
		},
		{
			name:       "config shows the environment as a source",
			args:       []string{"config"},
			env:        map[string]string{"NATS_URL": "nats://10.0.0.1:4222", "SWITCHBOARD_LOG_LEVEL": "debug"},
			wantStdout: []string{"nats://10.0.0.1:4222", "(env NATS_URL)", "(env SWITCHBOARD_LOG_LEVEL)"},
		},
		{
			name:     "port out of range",
			args:     []string{"config", "--http-listen", "127.0.0.1:70000"},
			wantCode: 2,
			wantIs:   config.ErrInvalid,
			wantErr:  []string{"http-listen", "--http-listen", "port"},
		},
		{
			name:     "duration without a unit",
			args:     []string{"dev", "--request-timeout", "5"},
			wantCode: 2,
			wantIs:   config.ErrInvalid,
			wantErr:  []string{"request-timeout", "duration"},
		},
		{
			name:     "unknown flag",
			args:     []string{"run", "--frobnicate", "users"},
			wantCode: 2,
			wantIs:   config.ErrInvalid,
			wantErr:  []string{"frobnicate"},
		},
		{
			name:     "bad value in the environment",
			args:     []string{"dev"},
			env:      map[string]string{"SWITCHBOARD_LOG_LEVEL": "loud"},
			wantCode: 2,
			wantIs:   config.ErrInvalid,
			wantErr:  []string{"log-level", "SWITCHBOARD_LOG_LEVEL", "loud"},
		},
		{
			name:     "bad URL does not leak its password",
			args:     []string{"run", "--nats-url", "nats://ada:s3cr3t@h:99999", "users"},
			wantCode: 2,
			wantIs:   config.ErrInvalid,
			wantErr:  []string{"nats-url", "port"},
			notInAny: []string{"s3cr3t"},
		},
		{
			name:     "dev beyond loopback is refused",
			args:     []string{"dev", "--data-dir", "/nonexistent", "--nats-listen", "0.0.0.0:0", "--http-listen", ":0"},
			wantCode: 2,
			wantErr:  []string{"--nats-listen 0.0.0.0:0 and --http-listen :0 are reachable from other machines", "--dev-allow-remote"},
		},
		{
			name:     "dev beyond loopback needs gateway auth",
			args:     []string{"dev", "--data-dir", "/nonexistent", "--gateway-listen", "[::]:0", "--dev-allow-remote"},
			wantCode: 2,
			wantErr:  []string{"dev-allow-remote needs gateway authentication"},
		},
		{
			name:     "nats-config needs a directory",
			args:     []string{"nats-config"},
			wantCode: 2,
			wantErr:  []string{"--out DIR"},
		},
		{
			name:       "dev help",
			args:       []string{"dev", "--help"},
			wantStdout: []string{"Usage: switchboard dev", "--data-dir", "--nats-listen", "--http-listen", "--log-format"},
		},
		{
			name:       "run help",
			args:       []string{"run", "-h"},
			wantStdout: []string{"Usage: switchboard run", "users", "--nats-url"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := run(t.Context(), append([]string{"switchboard"}, tt.args...), fakeEnv(tt.env), &stdout, &stderr)

			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("run(%q) = %v, want nil", tt.args, err)
				}
			} else {
				var ex exitError
				if !errors.As(err, &ex) {
					t.Fatalf("run(%q) = %v, want an exitError with code %d", tt.args, err, tt.wantCode)
				}
				if ex.code != tt.wantCode {
					t.Errorf("exit code %d, want %d (error: %v)", ex.code, tt.wantCode, err)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
					t.Errorf("error %v does not match %v", err, tt.wantIs)
				}
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout does not contain %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr does not contain %q:\n%s", want, stderr.String())
				}
			}
			all := stdout.String() + stderr.String()
			if err != nil {
				all += err.Error()
			}
			for _, secret := range tt.notInAny {
				if strings.Contains(all, secret) {
					t.Errorf("%q was printed or returned:\n%s", secret, all)
				}
			}
		})
	}
}

// TestDev runs dev, serves a request over TCP, shuts down on cancel, and
// finds the user again after a restart on the same data directory.
func TestDev(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	sb := startRun(t, devArgs(dataDir, "--log-level", "debug")...)
	sb.waitReady(t)

	out := sb.stdout.String()
	for _, want := range []string{"switchboard dev is ready", "nats --server " + sb.natsURL.url + " --nkey " + sb.natsURL.nkey + " micro ls", "data dir:  " + dataDir, "services:  users"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner does not contain %q:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(sb.natsURL.url, "nats://127.0.0.1:") || strings.HasSuffix(sb.natsURL.url, ":0") {
		t.Errorf("NATS URL %q: want nats://127.0.0.1:<chosen port>", sb.natsURL.url)
	}

	code, body, err := getJSON(t.Context(), sb.opsURL+"/healthz")
	if err != nil || code != http.StatusOK || body["status"] != "ok" {
		t.Errorf("GET /healthz = %d %v, %v; want 200 {status: ok}", code, body, err)
	}
	code, body, err = getJSON(t.Context(), sb.opsURL+"/readyz")
	if err != nil || code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("GET /readyz = %d %v, %v; want 200 {status: ready}", code, body, err)
	}
	if svcs, _ := body["services"].(map[string]any); svcs["users"] != "ok" {
		t.Errorf("GET /readyz services = %v, want users: ok", body["services"])
	}

	c := client(t, sb.natsURL)
	ada := createUser(t, c, "Ada Lovelace", "ada@example.com", 36)
	if got := getUser(t, c, ada.ID); got != ada {
		t.Errorf("%s = %+v, want %+v", contract.SubjectGet, got, ada)
	}
	_, err = contract.CreateUser(t.Context(), c, contract.CreateRequest{})
	if !errors.Is(err, wire.ErrBadRequest) {
		t.Errorf("create with no fields: %v, want %v", err, wire.ErrBadRequest)
	}

	if err := sb.stop(t); err != nil {
		t.Fatalf("run after cancel = %v, want nil (clean shutdown); stderr:\n%s", err, sb.stderr)
	}
	recs := jsonRecords(t, sb.stderr.String())
	for _, want := range []map[string]any{
		{"msg": "request", "level": "DEBUG", "service": "users", "endpoint": "create", "subject": "users.create", "status": 200.0},
		{"msg": "request", "level": "DEBUG", "service": "users", "endpoint": "get", "subject": "users.get", "status": 200.0},
		{"msg": "request", "level": "DEBUG", "service": "users", "endpoint": "create", "subject": "users.create", "status": 400.0},
		{"msg": "ready", "nats_url": sb.natsURL.url, "ops_url": sb.opsURL},
		{"msg": "shut down cleanly"},
	} {
		rec, ok := findRecord(recs, want)
		if !ok {
			t.Errorf("no log record with %v in:\n%s", want, sb.stderr)
			continue
		}
		if want["msg"] == "request" && rec["request_id"] == "" {
			t.Errorf("request record without request_id: %v", rec)
		}
	}

	// Restart on the same data directory: the user is still there.
	again := startRun(t, devArgs(dataDir)...)
	again.waitReady(t)
	c = client(t, again.natsURL)
	if got := getUser(t, c, ada.ID); got != ada {
		t.Errorf("after restart %s = %+v, want %+v", contract.SubjectGet, got, ada)
	}
	if err := again.stop(t); err != nil {
		t.Fatalf("second run after cancel = %v, want nil; stderr:\n%s", err, again.stderr)
	}
}

// TestDevConflicts starts a second dev that collides with a running one. It
// must fail at once with a message that says why, leave the first one
// serving, and release what it had taken.
func TestDevConflicts(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	first := startRun(t, devArgs(dataDir)...)
	first.waitReady(t)
	natsAddr := strings.TrimPrefix(first.natsURL.url, "nats://")
	opsAddr := strings.TrimPrefix(first.opsURL, "http://")

	otherDir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		wantIs   error
		wantText string
	}{
		{
			name:     "same data dir",
			args:     devArgs(dataDir),
			wantIs:   embedded.ErrStoreLocked,
			wantText: "in use",
		},
		{
			name:     "same NATS port",
			args:     []string{"dev", "--data-dir", otherDir, "--nats-listen", natsAddr, "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-format", "json"},
			wantIs:   embedded.ErrAddrInUse,
			wantText: "address already in use",
		},
		{
			// Fails after NATS and the services are up: they must be torn
			// down, and otherDir unlocked (checked below).
			name:     "same HTTP port",
			args:     []string{"dev", "--data-dir", otherDir, "--nats-listen", "127.0.0.1:0", "--http-listen", opsAddr, "--gateway-listen", "127.0.0.1:0", "--log-format", "json"},
			wantIs:   syscall.EADDRINUSE,
			wantText: "address already in use",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			second := startRun(t, tt.args...)
			err := second.wait(t)
			if err == nil {
				t.Fatalf("second dev returned nil; stdout:\n%s", second.stdout)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not match %v", err, tt.wantIs)
			}
			if strings.Contains(second.stdout.String(), "is ready") {
				t.Errorf("second dev printed the ready banner:\n%s", second.stdout)
			}
			recs := jsonRecords(t, second.stderr.String())
			if _, ok := findRecord(recs, map[string]any{"msg": "start-up failed", "level": "ERROR"}); !ok {
				t.Errorf("no start-up failed record in:\n%s", second.stderr)
			}
		})
	}

	code, _, err := getJSON(t.Context(), first.opsURL+"/readyz")
	if err != nil || code != http.StatusOK {
		t.Errorf("first dev GET /readyz = %d, %v; want 200", code, err)
	}

	// The failed starts released otherDir.
	third := startRun(t, devArgs(otherDir)...)
	third.waitReady(t)
	if err := third.stop(t); err != nil {
		t.Errorf("dev on the released data dir: %v", err)
	}
	if err := first.stop(t); err != nil {
		t.Errorf("first dev after cancel = %v, want nil", err)
	}
}

// TestRunExternalNATS runs the users service against a NATS server it does
// not own, reached over TCP, and reports not ready when that server goes.
func TestRunExternalNATS(t *testing.T) {
	t.Parallel()
	srv, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	// The server has no auth, so it accepts any credentials: enough to check
	// that the password is never printed.
	withPassword := strings.Replace(srv.ClientURL(), "nats://", "nats://ada:s3cr3t@", 1)
	sb := startRun(t, "run", "--nats-url", withPassword, "--http-listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout", "1s", "users")
	sb.waitReady(t)

	if want := strings.Replace(srv.ClientURL(), "nats://", "nats://ada:xxxxx@", 1); sb.natsURL.url != want {
		t.Errorf("banner NATS URL = %q, want %q", sb.natsURL.url, want)
	}
	if out := sb.stdout.String(); strings.Contains(out, "data dir:") || !strings.Contains(out, "switchboard run is ready") {
		t.Errorf("banner of run: want no data dir line:\n%s", out)
	}

	c := client(t, natsTarget{url: srv.ClientURL()})
	grace := createUser(t, c, "Grace Hopper", "grace@example.com", 85)
	if got := getUser(t, c, grace.ID); got != grace {
		t.Errorf("%s = %+v, want %+v", contract.SubjectGet, got, grace)
	}
	code, body, err := getJSON(t.Context(), sb.opsURL+"/readyz")
	if err != nil || code != http.StatusOK || body["status"] != "ready" {
		t.Errorf("GET /readyz = %d %v, %v; want 200 {status: ready}", code, body, err)
	}

	if err := srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		code, body, err := getJSON(t.Context(), sb.opsURL+"/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || body["status"] != "unavailable" {
			return errors.New("readyz still " + http.StatusText(code))
		}
		reasons, _ := body["reasons"].([]any)
		if !slices.ContainsFunc(reasons, func(r any) bool { s, _ := r.(string); return strings.HasPrefix(s, "nats: ") }) {
			return errors.New("no nats reason in " + jsonString(body))
		}
		// The stream check would wait out its timeout while NATS is down.
		if svcs, _ := body["services"].(map[string]any); svcs["users"] != "not checked: nats not connected" {
			return errors.New("users checked without NATS: " + jsonString(body))
		}
		return nil
	})
	code, _, err = getJSON(t.Context(), sb.opsURL+"/healthz")
	if err != nil || code != http.StatusOK {
		t.Errorf("GET /healthz with NATS gone = %d, %v; want 200: the process is alive", code, err)
	}

	// Stopping during an outage is no failure: there is nothing to drain.
	err = sb.stop(t)
	if errors.Is(err, nats.ErrConnectionReconnecting) {
		t.Errorf("run after cancel with NATS gone = %v; want no drain error", err)
	}
	if err != nil {
		t.Errorf("run after cancel with NATS gone = %v; want a clean exit", err)
	}
	if _, ok := findRecord(jsonRecords(t, sb.stderr.String()), map[string]any{"msg": "nats not connected at shutdown: closed without draining"}); !ok {
		t.Errorf("no warning about the undrained connection in:\n%s", sb.stderr)
	}

	all := sb.stdout.String() + sb.stderr.String()
	if strings.Contains(all, "s3cr3t") {
		t.Errorf("the NATS password was printed:\n%s", all)
	}
}

// TestDevAdoptsAnEarlierStore: a data dir of a dev from before accounts
// (its streams in the global account) keeps its streams.
func TestDevAdoptsAnEarlierStore(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	old, err := embedded.Start(t.Context(), embedded.Options{Listen: "127.0.0.1:0", StoreDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := old.Connect("old")
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "EARLIER", Subjects: []string{"earlier.>"}}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := old.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	sb := startRun(t, devArgs(dataDir)...)
	sb.waitReady(t)
	operator := sb.natsURL.as(filepath.Join(natsauth.KeyDir(dataDir), natsauth.KeyFile(natsauth.OperatorUser)))
	opt, err := nats.NkeyOptionFromSeed(operator.nkey)
	if err != nil {
		t.Fatal(err)
	}
	nc, err = nats.Connect(operator.url, opt, nats.CustomInboxPrefix(natsauth.InboxPrefix(natsauth.OperatorUser)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(t.Context(), "EARLIER"); err != nil {
		t.Errorf("the earlier dev's stream after the upgrade: %v", err)
	}
	if err := sb.stop(t); err != nil {
		t.Fatal(err)
	}
}
