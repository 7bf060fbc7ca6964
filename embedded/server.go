package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is a running in-process nats-server with JetStream. Start creates
// it; Shutdown stops it.
type Server struct {
	ns       *server.Server
	lock     *storeLock
	storeDir string
	addr     string // the listener's address, kept because ns forgets it on shutdown
	url      string

	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error // written before shutdownDone is closed
}

// errReadyTimeout is the cause of Start's deadline when ReadyTimeout passes.
// It is a context.DeadlineExceeded with a message that names the timeout.
type errReadyTimeout time.Duration

func (e errReadyTimeout) Error() string {
	return fmt.Sprintf("not ready after %v", time.Duration(e))
}

func (e errReadyTimeout) Unwrap() error { return context.DeadlineExceeded }

// Start starts a nats-server with JetStream and returns once it accepts
// connections and JetStream is enabled, or with an error once ctx is done or
// opts.ReadyTimeout passes. A busy address gives an error wrapping
// ErrAddrInUse and a store directory held by another server one wrapping
// ErrStoreLocked; both are reported at once.
//
// On error nothing is left running, except that if ctx or ReadyTimeout ended
// the wait, the half-started server is stopped and its store unlocked in the
// background.
func Start(ctx context.Context, opts Options) (*Server, error) {
	return start(ctx, opts, true)
}

// start is Start with the address pre-check optional, so that a test can
// reach nats-server's own listen failure.
func start(ctx context.Context, opts Options, precheck bool) (*Server, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("embedded nats: start: %w", context.Cause(ctx))
	}
	cfg, err := opts.config()
	if err != nil {
		return nil, err
	}
	// nats-server listens only after recovering JetStream, which can take a
	// while on a big store; a busy port should not wait for that. Its own
	// listen failure is still caught below if the port is taken meanwhile.
	if precheck {
		if err := checkAddr(cfg); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.storeDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: create store dir: %w", err)
	}
	lock, err := lockStore(cfg.storeDir)
	if err != nil {
		return nil, err
	}

	sopts, err := cfg.serverOptions()
	if err != nil {
		return nil, errors.Join(err, lock.release())
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("embedded nats: %w: %w", ErrInvalidOption, err), lock.release())
	}
	logs := newLogAdapter(cfg.logger)
	ns.SetLoggerV2(logs, sopts.Debug, sopts.Trace, false)

	readyBy := time.Now().Add(cfg.readyTimeout)
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.readyTimeout, errReadyTimeout(cfg.readyTimeout))
	defer cancel()

	started := make(chan struct{})
	go func() {
		// Start returns once the listener is up and JetStream enabled, or
		// after a Fatalf.
		ns.Start()
		close(started)
	}()

	// abort stops the half-started server, waiting for that as long as ctx
	// allows; the rest happens in the background.
	abort := func(cause error) error {
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			<-started // Shutdown racing Start is not safe in nats-server.
			ns.Shutdown()
			ns.WaitForShutdown()
			_ = lock.release()
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
		}
		return cause
	}

	ready := func() bool {
		// ReadyForConnections(0) never looks; it sleeps between looks only
		// when given more than 25ms, and the loop here does the waiting.
		return ns.ReadyForConnections(time.Millisecond) && ns.JetStreamEnabled()
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	startReturned := started
	for startReturned != nil || !ready() {
		select {
		case f := <-logs.fatals:
			return nil, abort(fatalError(cfg, f))
		case <-ctx.Done():
			return nil, abort(fmt.Errorf("embedded nats: start: %w", context.Cause(ctx)))
		case <-startReturned:
			startReturned = nil
		case <-tick.C:
		}
	}
	// The loop's select may take Start's return over an expired ctx, and
	// on a loaded machine the timer behind ctx can fire late: ready after
	// ReadyTimeout is still not ready in time.
	if ctx.Err() != nil {
		return nil, abort(fmt.Errorf("embedded nats: start: %w", context.Cause(ctx)))
	}
	if !time.Now().Before(readyBy) {
		return nil, abort(fmt.Errorf("embedded nats: start: %w", errReadyTimeout(cfg.readyTimeout)))
	}
	// A Fatalf during Start is queued by the time Start returns.
	select {
	case f := <-logs.fatals:
		return nil, abort(fatalError(cfg, f))
	default:
	}

	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		return nil, abort(fmt.Errorf("embedded nats: unexpected listener address %v", ns.Addr()))
	}
	return &Server{
		ns:           ns,
		lock:         lock,
		storeDir:     cfg.storeDir,
		addr:         addr.String(),
		url:          clientURL(addr),
		shutdownDone: make(chan struct{}),
	}, nil
}

// checkAddr fails fast if the fixed listen address is taken.
func checkAddr(cfg config) error {
	if cfg.port == server.RANDOM_PORT {
		return nil
	}
	addr := cfg.listenAddr()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return listenError(addr, err)
	}
	return l.Close()
}

func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return &startError{
			msg:  fmt.Sprintf("embedded nats: listen %s: address already in use (is another switchboard dev running?)", addr),
			errs: []error{ErrAddrInUse, err},
		}
	}
	return fmt.Errorf("embedded nats: %w", err) // a *net.OpError names the address
}

// fatalError turns a message nats-server gave to Fatalf into an error.
func fatalError(cfg config, f fatal) error {
	var opErr *net.OpError
	if errors.As(f.err, &opErr) && opErr.Op == "listen" {
		return listenError(cfg.listenAddr(), f.err)
	}
	if f.err != nil {
		return &startError{msg: "embedded nats: " + f.msg, errs: []error{f.err}}
	}
	return errors.New("embedded nats: " + f.msg)
}

// clientURL is a URL that reaches addr from this host, naming loopback when
// the server listens on all interfaces.
func clientURL(addr *net.TCPAddr) string {
	ip := addr.IP
	switch {
	case ip == nil || ip.Equal(net.IPv4zero):
		ip = net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		ip = net.IPv6loopback
	}
	u := url.URL{Scheme: "nats", Host: net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))}
	return u.String()
}

// ClientURL is the URL for clients outside the process, such as the nats CLI,
// e.g. "nats://127.0.0.1:4222", with the real port when Listen had port 0.
func (s *Server) ClientURL() string { return s.url }

// Addr is the address the server listens on, e.g. "127.0.0.1:54321".
func (s *Server) Addr() string { return s.addr }

// StoreDir is the absolute JetStream store directory.
func (s *Server) StoreDir() string { return s.storeDir }

// ConnectOption makes a connection in this process reach the server through
// an in-memory pipe instead of TCP:
//
//	nc, err := nats.Connect(s.ClientURL(), s.ConnectOption(), nats.Name("orders"))
func (s *Server) ConnectOption() nats.Option { return nats.InProcessServer(s.ns) }

// Connect opens an in-process connection named name. Later opts override
// earlier ones, including the name.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	all := append([]nats.Option{nats.Name(name), s.ConnectOption()}, opts...)
	nc, err := nats.Connect(s.url, all...)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: connect %q: %w", name, err)
	}
	return nc, nil
}

// NATS returns the underlying nats-server, for tests that need more than
// this package offers.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server: it closes the remaining client connections
// (drain your own connections first), stops JetStream, which flushes every
// stream to the store, waits for the server to finish and releases the store
// directory. If ctx ends first, Shutdown returns its error and the server
// finishes stopping in the background. Shutdown may be called more than once
// and from several goroutines; every call waits for the same shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		go func() {
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
			s.shutdownErr = s.lock.release()
			close(s.shutdownDone)
		}()
	})
	select {
	case <-s.shutdownDone:
		return s.shutdownErr
	default:
	}
	select {
	case <-s.shutdownDone:
		return s.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("embedded nats: shutdown: %w", context.Cause(ctx))
	}
}
