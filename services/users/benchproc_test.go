package users_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/internal/benchload"
	"github.com/devloop/switchboard/internal/testkit"
)

// The benchmarks that run a deployment of processes (BenchmarkUsers
// "deploy", BenchmarkUsersScale): a nats-server process, `switchboard run
// users`, a raw echo process (internal/benchecho), and the benchmark
// process as the load generator.

// benchBuild builds pkg into dir and returns the binary's path; a build
// failure is a benchSkip.
func benchBuild(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, filepath.Base(strings.TrimSuffix(pkg, "/v2")))
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		return "", benchSkip{fmt.Errorf("cannot build %s: %w\n%s", pkg, err, out)}
	}
	return bin, nil
}

// benchProc is a process a benchmark started.
type benchProc struct {
	name    string
	cmd     *exec.Cmd
	ready   time.Duration // from start until its ready line
	exited  chan struct{}
	err     error // cmd.Wait's, once exited is closed
	stderr  lockedBuffer
	stopped sync.Once
}

// lockedBuffer is a strings.Builder safe for one writer and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// benchStartProc starts bin with args and, when readyLine is set, waits
// until a line of its stdout contains it (within two minutes: a store of a
// million users is large). The process is interrupted when top ends, if it
// was not stopped before.
func benchStartProc(top testing.TB, name, readyLine, bin string, args ...string) (*benchProc, error) {
	p := &benchProc{name: name, cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			if !seen && readyLine != "" && strings.Contains(sc.Text(), readyLine) {
				seen = true
				p.ready = time.Since(start)
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	top.Cleanup(func() {
		if err := p.Stop(); err != nil {
			top.Errorf("%v", err)
		}
	})
	if readyLine == "" {
		return p, nil
	}
	select {
	case <-ready:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", name, p.err, p.stderr.String())
	case <-time.After(2 * time.Minute):
		err := p.Stop()
		return nil, fmt.Errorf("%s not ready within 2 minutes (%v):\n%s", name, err, p.stderr.String())
	}
}

// Stop interrupts the process and waits for it (killing it after 15s).
func (p *benchProc) Stop() error {
	var err error
	p.stopped.Do(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
			err = fmt.Errorf("%s did not stop within 15s of SIGINT; killed:\n%s", p.name, p.stderr.String())
		}
	})
	return err
}

// PID is the process id, as benchload.ProcessCPU takes it.
func (p *benchProc) PID() string { return strconv.Itoa(p.cmd.Process.Pid) }

// CPU is the CPU time the process has used.
func (p *benchProc) CPU() (time.Duration, bool) { return benchload.ProcessCPU(p.PID()) }

// RSS is the process's resident and peak resident memory, in MiB, from
// /proc (0 where there is none).
func (p *benchProc) RSS() (rss, peak float64) {
	data, err := os.ReadFile("/proc/" + p.PID() + "/status")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak
}

// benchStartNATS runs a nats-server process with JetStream, its store in
// storeDir, and waits until it takes JetStream requests; it returns the
// process and its client URL.
func benchStartNATS(top testing.TB, bin, storeDir string) (*benchProc, string, error) {
	addr := testkit.FreeAddr(top)
	host, port, _ := strings.Cut(addr, ":")
	p, err := benchStartProc(top, "nats-server", "", bin, "-a", host, "-p", port, "-js", "-sd", storeDir)
	if err != nil {
		return nil, "", err
	}
	url := "nats://" + addr
	err = testkit.Poll(2*time.Minute, 20*time.Millisecond, func() error {
		select {
		case <-p.exited:
			return errors.New("exited")
		default:
		}
		nc, err := nats.Connect(url)
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err
	})
	if err != nil {
		return nil, "", fmt.Errorf("nats-server not ready: %w\n%s", err, p.stderr.String())
	}
	return p, url, nil
}

// benchProfileEnv names a folder: when it is set, the deployment
// benchmarks write a CPU and an allocation profile of the `switchboard run
// users` process for each case there (<case>.cpu.pprof,
// <case>.allocs.pprof), fetched from its net/http/pprof during the case.
// Read one with go tool pprof -top.
const benchProfileEnv = "SWITCHBOARD_BENCH_PROFILE"

// benchRunUsers runs `switchboard run users` against natsURL and waits for
// its ready banner. Under benchProfileEnv it serves pprof, and its
// profile function starts a case's profiles (benchProfile); otherwise
// profile is nil.
func benchRunUsers(top testing.TB, bin, natsURL, dataDir string) (p *benchProc, profile func(testing.TB) (stop func()), err error) {
	opsAddr := "127.0.0.1:0"
	args := []string{"run", "users", "--nats-url", natsURL, "--data-dir", dataDir, "--log-level", "error"}
	dir := os.Getenv(benchProfileEnv)
	if dir != "" {
		opsAddr = testkit.FreeAddr(top)
		args = append(args, "--pprof", "on")
	}
	args = append(args, "--http-listen", opsAddr)
	p, err = benchStartProc(top, "switchboard run users", " is ready", bin, args...)
	if err != nil || dir == "" {
		return p, nil, err
	}
	return p, func(b testing.TB) func() { return benchProfile(b, "http://"+opsAddr, dir) }, nil
}

// benchProfileSeconds is how long a case's profiles run, from the case's
// start: net/http/pprof profiles for a fixed time, and a request cancelled
// early gets nothing. The get and create cases run longer.
const benchProfileSeconds = 15

// benchProfile starts a CPU profile and an allocation profile (the
// allocations made in that time) of the process whose ops HTTP server is
// at opsURL, and returns a function that waits for them and writes them to
// dir/<b's name>.{cpu,allocs}.pprof.
func benchProfile(b testing.TB, opsURL, dir string) (stop func()) {
	base := filepath.Join(dir, strings.NewReplacer("/", "_", "=", "").Replace(b.Name()))
	kinds := map[string]string{"cpu": "profile", "allocs": "allocs"}
	done := make(chan error, len(kinds))
	for kind, path := range kinds {
		go func() {
			done <- benchFetch(fmt.Sprintf("%s/debug/pprof/%s?seconds=%d", opsURL, path, benchProfileSeconds), base+"."+kind+".pprof")
		}()
	}
	return func() {
		for range kinds {
			if err := <-done; err != nil {
				b.Logf("profile: %v", err)
			}
		}
		b.Logf("profiles of switchboard run users: %s.{cpu,allocs}.pprof", base)
	}
}

// benchFetch writes the body of a GET of url to the file name.
func benchFetch(url, name string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}
