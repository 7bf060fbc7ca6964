package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// product is what the manifests must agree with, read from the switchboard
// binary itself: the services it runs and its settings.
type product struct {
	bin      string
	services []string
	// settings by environment variable name (SWITCHBOARD_NATS_URL and
	// NATS_URL both name nats-url).
	settings map[string]productSetting
	// defaults by setting name, as `switchboard run --help` prints them.
	defaults map[string]string
}

type productSetting struct {
	name string // e.g. "nats-url"
	arg  string // what the value is, e.g. "path", "urls", "host:port"
	def  string
}

// buildProduct builds cmd/switchboard from the main module (the repository
// root) and reads its services and settings from its help output. It
// builds as the image does (static, -trimpath), so that the binary tested
// is the one that ships, and deploy/image/build finds it compiled.
func buildProduct(t *testing.T) product {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchboard")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", bin, "./cmd/switchboard")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build switchboard: %v\n%s", err, out)
	}
	p := product{bin: bin, settings: map[string]productSetting{}, defaults: map[string]string{}}

	help := runProduct(t, p, nil, "help")
	m := regexp.MustCompile(`(?m)^Services: (.+)$`).FindStringSubmatch(help)
	if m == nil {
		t.Fatalf("switchboard help lists no services:\n%s", help)
	}
	p.services = strings.Split(m[1], ", ")

	// Each flag line ("  --nats-url urls   help") is followed by its env
	// line ("   env SWITCHBOARD_NATS_URL, NATS_URL; default nats://…").
	flagLine := regexp.MustCompile(`^  --([a-z0-9-]+) (\S+)`)
	envLine := regexp.MustCompile(`^\s+env ([^;]+)(.*)$`)
	var name, arg string
	sc := bufio.NewScanner(strings.NewReader(runProduct(t, p, nil, "run", "--help")))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			name, arg = m[1], m[2]
			continue
		}
		m := envLine.FindStringSubmatch(sc.Text())
		if m == nil || name == "" {
			continue
		}
		s := productSetting{name: name, arg: arg}
		for _, part := range strings.Split(m[2], "; ") {
			if d, ok := strings.CutPrefix(part, "default "); ok {
				s.def = d
			}
		}
		p.defaults[name] = s.def
		for _, env := range strings.Split(m[1], ", ") {
			p.settings[env] = s
		}
		name = ""
	}
	if len(p.settings) < 10 || p.defaults["http-listen"] == "" || p.defaults["shutdown-timeout"] == "" ||
		p.settings["SWITCHBOARD_NATS_CREDS"].arg != "path" {
		t.Fatalf("could not read the settings from switchboard run --help: %v", p.settings)
	}
	return p
}

// runProduct runs the binary with exactly env as its environment and
// returns its stdout; a failure fails the test.
func runProduct(t *testing.T, p product, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("switchboard %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// effectiveConfig runs `switchboard config` with env and returns each
// setting's value and source ("env SWITCHBOARD_X", "default", …).
func effectiveConfig(t *testing.T, p product, env []string) (values, sources map[string]string) {
	t.Helper()
	out := runProduct(t, p, env, "config")
	values, sources = map[string]string{}, map[string]string{}
	line := regexp.MustCompile(`^(\S+)\s+= (.*?)(?:\s{3}\((.*)\))?$`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("switchboard config printed an unexpected line %q", l)
		}
		values[m[1]], sources[m[1]] = strings.TrimSpace(m[2]), m[3]
	}
	return values, sources
}

// servedPaths starts `switchboard dev` on free ports and returns the status
// code of a GET of each path on its ops HTTP server.
func servedPaths(t *testing.T, p product, paths []string) map[string]int {
	t.Helper()
	cmd := exec.Command(p.bin, "dev", "--nats-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	cmd.Env = []string{"HOME=" + t.TempDir()}
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start switchboard dev: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("switchboard dev did not shut down cleanly: %v\n%s", err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("switchboard dev still running 20s after SIGTERM")
		}
	})

	opsLine := regexp.MustCompile(`(?m)^  ops HTTP:  (\S+)`)
	var base string
	checkFor(t, 30*time.Second, func() error {
		select {
		case err := <-exited:
			t.Fatalf("switchboard dev exited before it was ready: %v\n%s", err, stderr.String())
		default:
		}
		out := stdout.String()
		m := opsLine.FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "  services:  ") {
			return fmt.Errorf("switchboard dev not ready:\n%s\n%s", out, stderr.String())
		}
		base = m[1]
		return nil
	})

	client := &http.Client{Timeout: 5 * time.Second}
	codes := map[string]int{}
	for _, path := range paths {
		// /readyz answers 503 until the services' streams are up.
		checkFor(t, 30*time.Second, func() error {
			resp, err := client.Get(base + path)
			if err != nil {
				return err
			}
			resp.Body.Close()
			codes[path] = resp.StatusCode
			if resp.StatusCode == http.StatusServiceUnavailable {
				return fmt.Errorf("GET %s: %s", path, resp.Status)
			}
			return nil
		})
	}
	return codes
}

// syncBuffer is a bytes.Buffer the child process writes while the test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkFor calls f every 20ms until it returns nil, and fails the test with
// its last error once timeout has passed.
func checkFor(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("still failing after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}

// imageUser returns the numeric user and group of the root Dockerfile's
// final stage (USER uid:gid).
func imageUser(t *testing.T) (uid, gid int64) {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+):(\d+)\s*$`).FindAllStringSubmatch(string(data), -1)
	if len(m) != 1 {
		t.Fatalf("want one numeric USER uid:gid line in ../Dockerfile, found %d", len(m))
	}
	if _, err := fmt.Sscan(m[0][1]+" "+m[0][2], &uid, &gid); err != nil {
		t.Fatal(err)
	}
	return uid, gid
}
