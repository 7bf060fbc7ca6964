package main

// End-to-end tests: the real binary, driven by the real nats CLI as a user
// would. The commands here are the ones README.md shows.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/devloop/switchboard/services/users/contract"
)

const natsInstallHint = "go install github.com/nats-io/natscli/nats@v0.5.1"

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
func requireTool(t *testing.T, name, installHint string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s CLI required in CI: %v (install: %s)", name, err, installHint)
	}
	t.Skipf("needs the %s CLI: %s", name, installHint)
	return ""
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
	if !strings.Contains(string(out), `switchboard: unknown service "nosuch"; known services: users`) {
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
	p := &process{stdout: &syncBuffer{}, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = cleanEnv()
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
	checkFor(t, readyTimeout, pollInterval, func() error {
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
func natsCLI(t *testing.T, url string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nats", args...)
	// An empty config dir: no nats context of the user's applies.
	cmd.Env = cleanEnv("NATS_URL="+url, "XDG_CONFIG_HOME="+t.TempDir())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("nats %s: %v\nstdout:\n%s\nstderr:\n%s", shellQuote(args), err, out.String(), errOut.String())
	}
	return out.String(), errOut.String()
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

// natsReq runs nats req and decodes the reply body, which nats req prints
// on stdout (its progress and the reply headers go to stderr).
func natsReq(t *testing.T, url string, args ...string) (contract.User, string) {
	t.Helper()
	stdout, stderr := natsCLI(t, url, append([]string{"req"}, args...)...)
	var u contract.User
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &u); err != nil {
		t.Fatalf("nats %s: stdout is not a user: %v\nstdout:\n%s\nstderr:\n%s", shellQuote(append([]string{"req"}, args...)), err, stdout, stderr)
	}
	return u, stderr
}

func TestE2EWithNATSCLI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end test: builds the binary")
	}
	requireTool(t, "nats", natsInstallHint)

	dataDir := t.TempDir()
	args := []string{"dev", "--data-dir", dataDir, "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-format", "json"}
	sb := startProcess(t, args...)
	url := sb.natsURL

	out, _ := natsCLI(t, url, "micro", "ls")
	if !strings.Contains(out, "users") || !strings.Contains(out, contract.Version) {
		t.Errorf("nats micro ls does not list users %s:\n%s", contract.Version, out)
	}
	out, _ = natsCLI(t, url, "micro", "info", "users")
	for _, subject := range []string{contract.SubjectCreate, contract.SubjectGet, contract.SubjectUpdate, contract.SubjectDelete, contract.SubjectList} {
		if !strings.Contains(out, "Subject: "+subject) {
			t.Errorf("nats micro info users does not show %s:\n%s", subject, out)
		}
	}

	ada, stderr := natsReq(t, url, "users.create", `{"name":"Ada Lovelace","email":"ada@example.com","age":36}`)
	if ada.ID == "" || ada.Name != "Ada Lovelace" || ada.Email != "ada@example.com" || ada.Age != 36 || ada.Version != 1 {
		t.Errorf("users.create replied %+v", ada)
	}
	if strings.Contains(stderr, "Nats-Service-Error") {
		t.Errorf("users.create replied with an error:\n%s", stderr)
	}
	got, _ := natsReq(t, url, "users.get", fmt.Sprintf(`{"id":%q}`, ada.ID))
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
	first, _ := natsReq(t, url, "-H", "Idempotency-Key: k1", "users.create", create)
	second, _ := natsReq(t, url, "-H", "Idempotency-Key: k1", "users.create", create)
	if first.ID == "" || second != first {
		t.Errorf("retried users.create with the same Idempotency-Key = %+v, want the first reply %+v", second, first)
	}

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

	// Restart on the same data dir: the user is still there.
	sb.stop(t, os.Interrupt)
	sb = startProcess(t, args...)
	got, _ = natsReq(t, sb.natsURL, "users.get", fmt.Sprintf(`{"id":%q}`, ada.ID))
	if got != ada {
		t.Errorf("after restart users.get = %+v, want %+v", got, ada)
	}
	sb.stop(t, os.Interrupt)
}

// TestE2ETerminate stops the binary with SIGTERM, as service managers do.
func TestE2ETerminate(t *testing.T) {
	t.Parallel()
	sb := startProcess(t, "dev", "--data-dir", t.TempDir(), "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-format", "json")
	sb.stop(t, syscall.SIGTERM)
}
