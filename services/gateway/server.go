package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Timeouts of the HTTP phases. A request's own deadline (Options.Timeout,
// MaxTimeout) bounds the wait for the service; these bound the client.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 5 * time.Second
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout = 30 * time.Second
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
	// writeSlack is what the write timeout allows beyond MaxTimeout.
	writeSlack = 10 * time.Second
)

// Server is a Gateway listening on its own address: what `switchboard`
// runs as the gateway service.
type Server struct {
	*Gateway
	srv    *http.Server
	ln     net.Listener
	logger *slog.Logger

	mu       sync.Mutex
	serveErr error
	stopped  bool
}

// Start listens on listen (host:port; port 0 picks a free one), makes a
// Gateway over nc and serves it until Stop.
func Start(ctx context.Context, nc *nats.Conn, listen string, opts Options) (*Server, error) {
	g, err := New(ctx, nc, opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		g.Close()
		return nil, fmt.Errorf("gateway: listen %s: %w (is another switchboard running? set --gateway-listen)", listen, err)
	}
	s := &Server{
		Gateway: g,
		ln:      ln,
		logger:  g.opts.Logger,
		srv: &http.Server{
			Handler:           g,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      g.opts.MaxTimeout + writeSlack,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(g.opts.Logger.Handler(), slog.LevelWarn),
		},
	}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			return
		}
		s.logger.Error("gateway: http server stopped", slog.String("error", err.Error()))
		s.mu.Lock()
		s.serveErr = err
		s.mu.Unlock()
	}()
	s.logger.Info("gateway listening", slog.String("url", s.URL()))
	return s, nil
}

// Name is "gateway".
func (s *Server) Name() string { return "gateway" }

// URL is the gateway's base URL, e.g. http://127.0.0.1:8081.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Err is nil while the gateway serves.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.serveErr != nil:
		return fmt.Errorf("gateway: %w", s.serveErr)
	case s.stopped:
		return errors.New("gateway: stopped")
	}
	return nil
}

// Ready is nil while the gateway can route (see Gateway.Ready).
func (s *Server) Ready(context.Context) error { return s.Gateway.Ready() }

// Stop stops taking connections and waits for the requests in flight to
// be answered; when ctx ends first, it closes the connections left.
// Discovery stops once the requests are done.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
		err = fmt.Errorf("gateway: requests still in flight: %w", err)
	}
	s.Gateway.Close()
	return err
}
