package main

// End-to-end tests: the real binary, driven by the real nats CLI as a user
// would. The commands here are the ones README.md and docs/orders.md show.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/devloop/switchboard/internal/testkit"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
	notifcontract "github.com/devloop/switchboard/services/notifications/contract"
	orders "github.com/devloop/switchboard/services/orders/contract"
	"github.com/devloop/switchboard/services/users/contract"
)

const (
	natsInstallHint = "go install github.com/nats-io/natscli/nats@v0.5.1"
	// script gives `nats stream view` the terminal it insists on.
	scriptInstallHint = "apt-get install bsdutils (util-linux's script)"
)

// binDir holds the binary built for this test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// binary builds ./ (this command) once per test run, with version "e2e",
// and returns its path; under -short it skips the test instead. It builds
// with -race when the tests run with it: the packages are then already
// compiled, and a data race in the binary fails its exit status.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: builds the binary")
	}
	build.once.Do(func() {
		path := filepath.Join(binDir, "switchboard")
		args := []string{"build", "-o", path, "-ldflags", "-X main.version=e2e"}
		if raceEnabled() {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		build.path = path
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// requireTool skips the test when name is not on PATH, except in CI, where
// every tool must be there.
func requireTool(t *testing.T, name, installHint string) {
	t.Helper()
	if !haveTool(t, name, installHint) {
		t.Skipf("needs the %s command: %s", name, installHint)
	}
}

// haveTool reports whether name is on PATH. In CI, where every tool must be
// there, a missing one fails the test instead.
func haveTool(t *testing.T, name, installHint string) bool {
	t.Helper()
	_, err := exec.LookPath(name)
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("%s command required in CI: %v (install: %s)", name, err, installHint)
	}
	return err == nil
}

// cleanEnv is the test's environment without the variables that would
// configure switchboard or the nats CLI behind the test's back, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SWITCHBOARD_") || strings.HasPrefix(kv, "NATS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func TestE2EVersion(t *testing.T) {
	out, err := exec.Command(binary(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("switchboard version: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "switchboard e2e (go") {
		t.Errorf("switchboard version printed %q, want switchboard e2e (go…", out)
	}
}

func TestE2EUsageExitStatus(t *testing.T) {
	out, err := exec.Command(binary(t), "run", "nosuch").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("switchboard run nosuch: %v, want exit status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), `switchboard: unknown service "nosuch"; known services: users, orders`) {
		t.Errorf("switchboard run nosuch printed:\n%s", out)
	}
}

// process is a running switchboard.
type process struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	exited chan struct{} // closed once cmd.Wait has returned
	err    error         // cmd.Wait's result
	banner
}

// startProcess starts switchboard with args and waits for its ready
// banner. A cleanup kills it if the test has not stopped it.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startProcessEnv(t, nil, args...)
}

// startProcessEnv is startProcess with env (KEY=value) added to the clean
// environment.
func startProcessEnv(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = cleanEnv(env...)
	// exec copies the output in its own goroutines and Wait waits for them,
	// so the buffers hold everything once exited is closed.
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	testkit.Eventually(t, readyTimeout, pollInterval, func() error {
		select {
		case <-p.exited:
			t.Fatalf("switchboard %s exited before ready: %v\nstderr:\n%s", strings.Join(args, " "), p.err, p.stderr)
		default:
		}
		b, ok := parseBanner(p.stdout.String())
		if !ok {
			return errors.New("no ready banner yet; stdout:\n" + p.stdout.String())
		}
		p.banner = b
		return nil
	})
	return p
}

// stop sends sig (SIGINT is Ctrl-C, SIGTERM what service managers send)
// and checks that the process shuts down cleanly with exit status 0.
func (p *process) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(returnTimeout):
		t.Fatalf("switchboard still running %v after %v; stderr:\n%s", returnTimeout, sig, p.stderr)
	}
	if p.err != nil {
		t.Fatalf("switchboard after %v: %v, want exit status 0; stderr:\n%s", sig, p.err, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), `"msg":"shut down cleanly"`) {
		t.Errorf("no clean shutdown logged; stderr:\n%s", p.stderr)
	}
}

// natsCLI runs the nats CLI against url with NATS_URL, as the README does,
// and returns its stdout and stderr. It fails the test on a non-zero exit.
func natsCLI(t *testing.T, url natsTarget, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, err := runCLI(t, url, "nats", args...)
	if err != nil {
		t.Fatalf("nats %s: %v\nstdout:\n%s\nstderr:\n%s", shellQuote(args), err, stdout, stderr)
	}
	return stdout, stderr
}

// runCLI runs the command name (the nats CLI, or a command that runs it)
// with NATS_URL (and NATS_NKEY) set to reach url, and returns its output
// and exit error.
func runCLI(t *testing.T, url natsTarget, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	// An empty config dir: no nats context of the user's applies.
	cmd.Env = cleanEnv("NATS_URL="+url.url, "XDG_CONFIG_HOME="+t.TempDir())
	if url.nkey != "" {
		cmd.Env = append(cmd.Env, "NATS_NKEY="+url.nkey)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// shellQuote renders args as they would be typed, for messages.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, ` "'{}>*`) {
			a = "'" + a + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// natsReq runs nats req and decodes the reply body into a T; nats req
// prints the body on stdout (its progress and the reply headers go to
// stderr). A reply carrying an error header fails the test.
func natsReq[T any](t *testing.T, url natsTarget, args ...string) (T, string) {
	t.Helper()
	stdout, stderr := natsCLI(t, url, append([]string{"req"}, args...)...)
	if strings.Contains(stderr, "Nats-Service-Error-Code") {
		t.Fatalf("nats %s answered an error:\nstdout:\n%s\nstderr:\n%s", shellQuote(append([]string{"req"}, args...)), stdout, stderr)
	}
	var v T
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &v); err != nil {
		t.Fatalf("nats %s: stdout is not a %T: %v\nstdout:\n%s\nstderr:\n%s", shellQuote(append([]string{"req"}, args...)), v, err, stdout, stderr)
	}
	return v, stderr
}

func TestE2EWithNATSCLI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test: builds the binary")
	}
	requireTool(t, "nats", natsInstallHint)

	dataDir := t.TempDir()
	args := []string{"dev", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-format", "json"}
	sb := startProcess(t, args...)
	url := sb.natsURL

	out, _ := natsCLI(t, url, "micro", "ls")
	for _, name := range []string{contract.ServiceName, orders.ServiceName} {
		if !regexp.MustCompile(`(?m)^│ ` + name + `\s+│`).MatchString(out) {
			t.Errorf("nats micro ls does not list %s:\n%s", name, out)
		}
	}
	// The table leaves out a version equal to the row above's.
	if !strings.Contains(out, contract.Version) {
		t.Errorf("nats micro ls does not show version %s:\n%s", contract.Version, out)
	}
	out, _ = natsCLI(t, url, "micro", "info", "users")
	for _, subject := range []string{contract.SubjectCreate, contract.SubjectGet, contract.SubjectUpdate, contract.SubjectDelete, contract.SubjectList} {
		if !strings.Contains(out, "Subject: "+subject) {
			t.Errorf("nats micro info users does not show %s:\n%s", subject, out)
		}
	}
	out, _ = natsCLI(t, url, "micro", "info", "orders")
	for _, subject := range []string{orders.SubjectCreate, orders.SubjectGet, orders.SubjectList, orders.SubjectCancel, "orders.consumers"} {
		if !strings.Contains(out, "Subject: "+subject) {
			t.Errorf("nats micro info orders does not show %s:\n%s", subject, out)
		}
	}

	ada, stderr := natsReq[contract.User](t, url, "users.create", `{"name":"Ada Lovelace","email":"ada@example.com","age":36}`)
	if ada.ID == "" || ada.Name != "Ada Lovelace" || ada.Email != "ada@example.com" || ada.Age != 36 || ada.Version != 1 {
		t.Errorf("users.create replied %+v", ada)
	}
	if strings.Contains(stderr, "Nats-Service-Error") {
		t.Errorf("users.create replied with an error:\n%s", stderr)
	}
	got, _ := natsReq[contract.User](t, url, "users.get", fmt.Sprintf(`{"id":%q}`, ada.ID))
	if got != ada {
		t.Errorf("users.get = %+v, want %+v", got, ada)
	}

	// nats req exits 0 on an error reply: the code is in a header, on stderr.
	stdout, stderr := natsCLI(t, url, "req", "users.create", `{"name":""}`)
	if !strings.Contains(stdout+stderr, "Nats-Service-Error-Code: 400") {
		t.Errorf("bad users.create: no Nats-Service-Error-Code: 400 in\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if !strings.Contains(stdout, `"field":"name"`) {
		t.Errorf("bad users.create: the body does not name the field:\n%s", stdout)
	}

	create := `{"name":"Grace Hopper","email":"grace@example.com","age":85}`
	first, _ := natsReq[contract.User](t, url, "-H", "Idempotency-Key: k1", "users.create", create)
	second, _ := natsReq[contract.User](t, url, "-H", "Idempotency-Key: k1", "users.create", create)
	if first.ID == "" || second != first {
		t.Errorf("retried users.create with the same Idempotency-Key = %+v, want the first reply %+v", second, first)
	}

	e2eClientRole(t, url, ada)

	out, _ = natsCLI(t, url, "stream", "ls")
	if !strings.Contains(out, contract.Stream) {
		t.Errorf("nats stream ls does not list %s:\n%s", contract.Stream, out)
	}
	natsCLI(t, url, "consumer", "add", "USERS", "e2e", "--pull", "--deliver", "all", "--ack", "explicit", "--filter", "users.events.>", "--defaults")
	out, _ = natsCLI(t, url, "consumer", "next", "USERS", "e2e", "--count", "1")
	for _, want := range []string{"subj: users.events." + ada.ID, "Switchboard-Event-Type: user.created", `"type":"user.created"`, `"name":"Ada Lovelace"`} {
		if !strings.Contains(out, want) {
			t.Errorf("nats consumer next does not show %q:\n%s", want, out)
		}
	}

	e2eWebhook(t, url)
	order := e2eOrders(t, url, url.as(filepath.Join(natsauth.KeyDir(dataDir), natsauth.KeyFile("users"))))

	// Restart on the same data dir: the user and the order are still there.
	sb.stop(t, os.Interrupt)
	checkLogRecords(t, sb.stderr.String())
	sb = startProcess(t, args...)
	got, _ = natsReq[contract.User](t, sb.natsURL, "users.get", fmt.Sprintf(`{"id":%q}`, ada.ID))
	if got != ada {
		t.Errorf("after restart users.get = %+v, want %+v", got, ada)
	}
	gotOrder, _ := natsReq[orders.Order](t, sb.natsURL, "orders.get", fmt.Sprintf(`{"id":%q}`, order.ID))
	if !reflect.DeepEqual(gotOrder, order) {
		t.Errorf("after restart orders.get = %+v, want %+v", gotOrder, order)
	}
	sb.stop(t, os.Interrupt)
}

// checkLogRecords checks every JSON log record in logs: a record that
// names a key twice (service=users service=users) is one that log
// pipelines keep only half of. It fails unless it saw the services'
// start-up records.
func checkLogRecords(t *testing.T, logs string) {
	t.Helper()
	started := 0
	for line := range strings.Lines(logs) {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil {
			t.Fatalf("log record %q: %v", line, err)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("log record %q: %v", line, err)
			}
			key := tok.(string)
			if seen[key] {
				t.Errorf("log record names %q twice: %s", key, line)
			}
			seen[key] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("log record %q: %v", line, err)
			}
		}
		if strings.Contains(line, `"msg":"service started"`) {
			started++
		}
	}
	if started < 3 {
		t.Errorf("saw %d \"service started\" records, want one per service (3 or more):\n%s", started, logs)
	}
}

// e2eClientRole checks, with the nats CLI as the banner says to run it,
// that the client role can neither forge an event nor purge a stream:
// the forged user.deleted of issue 11 leaves the user there.
func e2eClientRole(t *testing.T, url natsTarget, u contract.User) {
	t.Helper()
	forged := fmt.Sprintf(`{"type":%q,"id":"forged","occurred_at":"2026-01-01T00:00:00Z","user":{"id":%q}}`, contract.EventDeleted, u.ID)
	stdout, stderr, err := runCLI(t, url, "nats", "pub", "-H", "Switchboard-Event-Type:"+contract.EventDeleted, contract.EventSubjectPrefix+u.ID, forged)
	if err == nil || !strings.Contains(stderr, "Permissions Violation for Publish") {
		t.Errorf("nats pub of a forged %s as the client role: %v, want a permissions violation\n%s%s", contract.EventDeleted, err, stdout, stderr)
	}
	if got, _ := natsReq[contract.User](t, url, "users.get", fmt.Sprintf(`{"id":%q}`, u.ID)); got != u {
		t.Errorf("after a forged %s, users.get = %+v, want %+v", contract.EventDeleted, got, u)
	}
	if out, _ := natsCLI(t, url, "stream", "get", contract.Stream, "--last-for", contract.EventSubjectPrefix+u.ID); strings.Contains(out, "forged") {
		t.Errorf("the forged event is in %s:\n%s", contract.Stream, out)
	}
	stdout, stderr, err = runCLI(t, url, "nats", "stream", "purge", contract.Stream, "-f", "--timeout", "2s")
	if err == nil {
		t.Errorf("nats stream purge %s as the client role succeeded:\n%s%s", contract.Stream, stdout, stderr)
	}
	if out, _ := natsCLI(t, url, "stream", "info", contract.Stream, "--json"); !strings.Contains(out, `"deny_purge": true`) {
		t.Errorf("%s does not deny purges:\n%s", contract.Stream, out)
	}
}

// e2eWebhook adds a webhook with nats req, creates a user with nats req,
// and checks that the receiver (in this test process, on loopback, which
// dev allows) gets the signed user.created event, as docs/notifications.md
// describes.
func e2eWebhook(t *testing.T, url natsTarget) {
	t.Helper()
	type received struct {
		header http.Header
		body   []byte
	}
	got := make(chan received, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), body}
	}))
	t.Cleanup(recv.Close)
	const secret = "whsec_ZTJlLXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm"
	put := fmt.Sprintf(`{"id":"e2e","url":%q,"secret":%q,"subjects":["users.events.>"]}`, recv.URL+"/hook", secret)
	wh, _ := natsReq[map[string]any](t, url, "notifications.webhooks.put", put)
	if wh["id"] != "e2e" || wh["secret"] != nil {
		t.Fatalf("webhooks.put = %v, want the webhook without its secret", wh)
	}
	hook, _ := natsReq[contract.User](t, url, "users.create", `{"name":"Webhook Watcher","email":"hook@example.com","age":40}`)
	if hook.ID == "" {
		t.Fatalf("users.create failed: %+v", hook)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case r := <-got:
			if r.header.Get(notifcontract.HeaderEventType) != contract.EventCreated || !strings.Contains(string(r.body), hook.ID) {
				continue // another event
			}
			// As a receiver checks it: the specification's own library.
			wh, err := standardwebhooks.NewWebhook(secret)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Verify(r.body, r.header); err != nil {
				t.Errorf("the delivery does not verify: %v", err)
			}
			if r.header.Get(notifcontract.HeaderWebhookID) != "e2e" || r.header.Get(notifcontract.HeaderMsgID) == "" {
				t.Errorf("webhook headers = %v", r.header)
			}
			return
		case <-deadline:
			t.Fatal("the webhook receiver got no user.created event for the new user")
		}
	}
}

// poisonSubject is the subject of a user event that is not JSON; the user
// id is the ULID spec's example, which no user of the test has.
const poisonSubject = "users.events.01ARZ3NDEKTSV4RRFFQ69G5FAV"

// e2eOrders drives the orders service on the running switchboard at url,
// as docs/orders.md does: it places an order, reads its event, has a poison
// user event dead-lettered, then deletes the user and sees the order
// cancelled. It returns the cancelled order.
func e2eOrders(t *testing.T, url, asUsers natsTarget) orders.Order {
	linus, _ := natsReq[contract.User](t, url, "users.create", `{"name":"Linus Torvalds","email":"linus@example.com","age":56}`)
	if linus.ID == "" {
		t.Fatalf("users.create replied %+v", linus)
	}
	create := fmt.Sprintf(`{"user_id":%q,"items":[{"sku":"book-1","quantity":2,"unit_price_cents":1250}],"currency":"EUR"}`, linus.ID)
	order, stderr := natsReq[orders.Order](t, url, "orders.create", create)
	want := orders.Order{
		ID: order.ID, UserID: linus.ID, Items: []orders.Item{{SKU: "book-1", Quantity: 2, UnitPriceCents: 1250}},
		Currency: "EUR", TotalCents: 2500, Status: orders.StatusPlaced, Version: 1,
		CreatedAt: order.CreatedAt, UpdatedAt: order.CreatedAt,
	}
	if order.ID == "" || order.CreatedAt.IsZero() || !reflect.DeepEqual(order, want) {
		t.Errorf("orders.create = %+v, want %+v", order, want)
	}
	if strings.Contains(stderr, "Nats-Service-Error") {
		t.Errorf("orders.create replied with an error:\n%s", stderr)
	}

	// orders asks users whether the user exists.
	stdout, stderr := natsCLI(t, url, "req", "orders.create", strings.Replace(create, linus.ID, "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1))
	if !strings.Contains(stderr, "Nats-Service-Error-Code: 400") || !strings.Contains(stdout, `{"field":"user_id","message":"no such user"}`) {
		t.Errorf("orders.create for an unknown user: want a 400 naming user_id; got\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}

	natsCLI(t, url, "consumer", "add", "ORDERS", "e2e-orders", "--pull", "--deliver", "all", "--ack", "explicit", "--filter", "orders.events.*.placed", "--defaults")
	out, _ := natsCLI(t, url, "consumer", "next", "ORDERS", "e2e-orders", "--count", "1")
	for _, want := range []string{
		"subj: orders.events." + order.ID + ".placed", "Switchboard-Event-Type: order.placed", "Switchboard-Version: 1",
		`{"type":"order.placed",`, `"order":` + jsonString(order),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nats consumer next ORDERS does not show %s:\n%s", want, out)
		}
	}

	// A user event that does not decode goes to the dead-letter stream at
	// once, and does not hold up the events behind it. Other consumers of
	// USERS may dead-letter it too: select this consumer's by subject.
	// Only the users identity may publish on users.events: the poison is
	// published with its nkey, from the data dir.
	natsCLI(t, asUsers, "pub", poisonSubject, "not json")
	const dlSubject = "deadletter.USERS.orders-on-user-events"
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		stdout, stderr, err := runCLI(t, url, "nats", "stream", "get", "DEADLETTER", "--last-for", dlSubject)
		if err != nil {
			return fmt.Errorf("nats stream get DEADLETTER --last-for %s: %v\n%s%s", dlSubject, err, stdout, stderr)
		}
		return nil
	})
	out, _ = natsCLI(t, url, "stream", "get", "DEADLETTER", "--last-for", dlSubject)
	deadLetter := []string{
		"Switchboard-Dead-Letter-Reason: undecodable",
		"Switchboard-Dead-Letter-Subject: " + poisonSubject,
		"Switchboard-Dead-Letter-Stream: USERS",
		"Switchboard-Dead-Letter-Consumer: orders-on-user-events",
		"Switchboard-Dead-Letter-Deliveries: 1",
		"Switchboard-Dead-Letter-Error: ",
		"not json",
	}
	for _, want := range append(deadLetter, "on Subject "+dlSubject) {
		if !strings.Contains(out, want) {
			t.Errorf("nats stream get DEADLETTER does not show %s:\n%s", want, out)
		}
	}
	// nats stream view pages, and refuses to without a terminal: script
	// gives it one.
	if haveTool(t, "script", scriptInstallHint) {
		view := "nats stream view DEADLETTER --subject " + dlSubject
		stdout, stderr, err := runCLI(t, url, "script", "-qec", view, "/dev/null")
		if err != nil {
			t.Fatalf("script -qec '%s' /dev/null: %v\nstdout:\n%s\nstderr:\n%s", view, err, stdout, stderr)
		}
		for _, want := range append(deadLetter, "Subject: "+dlSubject) {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s does not show %s:\n%s", view, want, stdout)
			}
		}
	} else {
		t.Logf("not checking nats stream view, which needs the script command: %s", scriptInstallHint)
	}
	// The consumer counts the dead letter once it is stored: poll.
	testkit.Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		stats, _ := natsReq[map[string]messaging.ConsumerStats](t, url, "orders.consumers", "")
		st, ok := stats["orders-on-user-events"]
		if !ok || st.DeadLettered != 1 || st.Stream != "USERS" {
			return fmt.Errorf("orders.consumers = %+v, want orders-on-user-events on USERS with dead_lettered 1", stats)
		}
		return nil
	})

	// Deleting the user cancels the order, through the consumer.
	natsCLI(t, url, "req", "users.delete", fmt.Sprintf(`{"id":%q}`, linus.ID))
	testkit.Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		order, _ = natsReq[orders.Order](t, url, "orders.get", fmt.Sprintf(`{"id":%q}`, order.ID))
		if order.Status != orders.StatusCancelled || order.CancelReason != "user deleted" || order.Version != 2 {
			return fmt.Errorf("orders.get = %+v, want status cancelled, cancel_reason \"user deleted\", version 2", order)
		}
		return nil
	})
	stdout, stderr = natsCLI(t, url, "req", "orders.cancel", fmt.Sprintf(`{"id":%q,"version":2}`, order.ID))
	if !strings.Contains(stderr, "Nats-Service-Error-Code: 409") || !strings.Contains(stdout, "already cancelled") {
		t.Errorf("orders.cancel of a cancelled order: want a 409; got\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	return order
}

// TestE2ETerminate stops the binary with SIGTERM, as service managers do.
func TestE2ETerminate(t *testing.T) {
	t.Parallel()
	sb := startProcess(t, "dev", "--data-dir", t.TempDir(), "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0", "--log-format", "json")
	sb.stop(t, syscall.SIGTERM)
}
