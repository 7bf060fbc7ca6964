package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/embedded"
	"github.com/devloop/switchboard/lifecycle"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/natsauth"
)

type mode string

const (
	modeDev mode = "dev"
	modeRun mode = "run"
)

// serve runs the chosen services until a signal (or ctx) ends it, then
// shuts down in order: stop taking requests, finish those in flight, drain
// the NATS connection, stop the embedded server, within ShutdownTimeout.
// getenv is read for the OTEL_* settings of tracing.
func serve(ctx context.Context, cfg config.Config, m mode, names []string, getenv func(string) string, stdout, stderr io.Writer) error {
	logger := newLogger(cfg.Log, stderr)
	ctx, again, stopSignals := signals(ctx)
	defer stopSignals()
	logger.Info("starting switchboard", slog.String("version", buildVersion()), slog.String("mode", string(m)), slog.Any("config", cfg))

	var sd lifecycle.Stack
	err := start(ctx, cfg, m, names, getenv, logger, stdout, &sd)
	if err == nil {
		<-ctx.Done()
		logger.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
	} else {
		logger.Error("start-up failed", slog.String("error", err.Error()))
	}

	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sd.Stop(sctx) }()
	select {
	case serr := <-done:
		if serr != nil {
			logger.Error("shutdown incomplete", slog.String("error", serr.Error()))
		} else if err == nil {
			logger.Info("shut down cleanly")
		}
		return errors.Join(err, serr)
	case <-again:
		return errInterrupted
	}
}

// start brings everything up, registering each part's shutdown in sd as it
// goes, so that a failure half-way tears down what was started.
func start(ctx context.Context, cfg config.Config, m mode, names []string, getenv func(string) string, logger *slog.Logger, stdout io.Writer, sd *lifecycle.Stack) error {
	// Telemetry: metrics always (on /metrics), traces when asked for.
	tel, registry, err := newTelemetry(ctx, cfg, m, names, getenv, logger, sd)
	if err != nil {
		return err
	}

	// NATS: an embedded server in dev, an external one in run. Each
	// service connects as its own NATS user (docs/security.md).
	var natsURL, storeDir, cliHint string
	host, _ := os.Hostname()
	connName := fmt.Sprintf("switchboard-%s-%s-%d", m, host, os.Getpid())
	var connect func(name string) (*nats.Conn, error)
	if m == modeDev {
		if err := checkDevListen(cfg); err != nil {
			return err
		}
		// nats-server keeps its files in <data-dir>/jetstream, and dev
		// keeps the identities' nkeys in <data-dir>/nats.
		storeDir = cfg.DataDir
		model := accessModel()
		keyDir := natsauth.KeyDir(cfg.DataDir)
		keys, err := natsauth.LoadKeys(keyDir, model.Users())
		if err != nil {
			return err
		}
		accounts, err := model.Accounts(keys)
		if err != nil {
			return err
		}
		if err := adoptGlobalStore(cfg.DataDir, model.Account, logger); err != nil {
			return err
		}
		srv, err := embedded.Start(ctx, embedded.Options{
			Listen:   cfg.NATS.Listen,
			StoreDir: storeDir,
			Logger:   logger,
			Config:   accounts,
		})
		if err != nil {
			return err
		}
		sd.Push("embedded nats", srv.Shutdown)
		natsURL = srv.ClientURL()
		cliHint = fmt.Sprintf("nats --server %s --nkey %s micro ls", natsURL, filepath.Join(keyDir, natsauth.KeyFile(natsauth.ClientUser)))
		connect = func(name string) (*nats.Conn, error) {
			opts, err := keys.ConnectOptions(grantOf(name))
			if err != nil {
				return nil, err
			}
			nc, err := srv.Connect(connName+"-"+name, opts...)
			if err != nil {
				return nil, fmt.Errorf("connect to embedded nats as %s: %w", name, err)
			}
			return nc, nil
		}
	} else {
		natsURL = config.MaskURL(cfg.NATS.URL)
		cliHint = fmt.Sprintf("nats --server %s micro ls", natsURL)
		connect = func(name string) (*nats.Conn, error) {
			o := natsOptions(cfg, connName+"-"+name, logger)
			o.InboxPrefix = grantOf(name).InboxPrefix()
			return messaging.Connect(ctx, o)
		}
	}
	var conns []*nats.Conn

	// Cache: Redis, shared by the replicas, when configured. Each service
	// also keeps an in-process cache that its stream's change feed keeps
	// current, with or without Redis.
	backend, err := newCacheBackend(cfg, logger)
	if err != nil {
		return err
	}
	backend = cache.Observe(backend, tel)
	if backend != nil {
		sd.Push("cache", func(context.Context) error { return backend.Close() })
	}

	// Services, each on a connection of its own.
	var running []service
	for _, name := range names {
		nc, err := connect(name)
		if err != nil {
			return err
		}
		conns = append(conns, nc)
		sd.Push("nats connection "+name, func(ctx context.Context) error { return drain(ctx, nc, logger) })
		messaging.RegisterConn(tel, nc, name)
		svc, err := starterFor(name)(ctx, deps{nc: nc, cfg: cfg, logger: logger, cache: backend, telemetry: tel, dev: m == modeDev})
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		running = append(running, svc)
		sd.Push("service "+name, svc.Stop)
	}
	if err := tel.Err(); err != nil {
		return err // a metric registered twice in different shapes: a bug
	}

	// Ops HTTP.
	var ln net.Listener
	ln, err = net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("ops http: listen %s: %w (is another switchboard running? set --http-listen)", cfg.HTTPListen, err)
	}
	ops := opsHandler(logger, conns, backend, func() []service { return running }, registry, cfg.Observability.PProfOn())
	hs := &http.Server{Handler: ops, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("ops http stopped", slog.String("error", err.Error()))
		}
	}()
	// The ops server stops first, so /readyz stops answering before the
	// services stop taking requests.
	sd.Push("ops http", hs.Shutdown)
	opsURL := "http://" + ln.Addr().String()

	if len(conns) > 0 {
		checkDeployment(conns[0], cfg, m, logger)
	}
	fmt.Fprintf(stdout, "switchboard %s is ready\n", m)
	fmt.Fprintf(stdout, "  NATS URL:  %s   (try: %s)\n", natsURL, cliHint)
	opsPaths := "/healthz, /readyz, /metrics"
	if cfg.Observability.PProfOn() {
		opsPaths += ", /debug/pprof/"
	}
	fmt.Fprintf(stdout, "  ops HTTP:  %s   (%s)\n", opsURL, opsPaths)
	var gatewayURL string
	for _, svc := range running {
		if u, ok := svc.(urler); ok && svc.Name() == "gateway" {
			gatewayURL = u.URL()
			fmt.Fprintf(stdout, "  gateway:   %s   (API docs: %s/docs, OpenAPI: %s/openapi.json)\n", gatewayURL, gatewayURL, gatewayURL)
		}
	}
	if storeDir != "" {
		fmt.Fprintf(stdout, "  data dir:  %s\n", cfg.DataDir)
	}
	fmt.Fprintf(stdout, "  services:  %s\n", strings.Join(names, ", "))
	logger.Info("ready", slog.String("nats_url", natsURL), slog.String("ops_url", opsURL), slog.String("gateway_url", gatewayURL), slog.Any("services", names))
	return nil
}

// natsOptions is how to connect to the external NATS of cfg.
func natsOptions(cfg config.Config, name string, logger *slog.Logger) messaging.ConnectOptions {
	return messaging.ConnectOptions{
		URL: cfg.NATS.URL, Name: name, Logger: logger.With(slog.String("component", "nats")),
		CredsFile: cfg.NATS.CredsFile, NKeyFile: cfg.NATS.NKeyFile,
		User: cfg.NATS.User, Password: cfg.NATS.Password, Token: cfg.NATS.Token,
		CAFile: cfg.NATS.CAFile, CertFile: cfg.NATS.CertFile, KeyFile: cfg.NATS.KeyFile,
	}
}

func newCacheBackend(cfg config.Config, logger *slog.Logger) (cache.Backend, error) {
	if cfg.Redis.URL == "" {
		logger.Info("cache: in-process per service (set --redis-url to share one between replicas)", slog.Int("entries", cfg.Cache.Entries))
		return nil, nil
	}
	r, err := cache.NewRedis(cache.RedisOptions{URL: cfg.Redis.URL, Timeout: cfg.Redis.Timeout, PoolSize: cfg.Redis.PoolSize})
	if err != nil {
		return nil, err
	}
	logger.Info("cache: in-process per service, and redis", slog.String("url", config.MaskURL(cfg.Redis.URL)),
		slog.Duration("timeout", cfg.Redis.Timeout), slog.Duration("ttl", cfg.Cache.TTL), slog.Int("entries", cfg.Cache.Entries))
	return r, nil
}

// drain drains nc: its subscriptions deliver what they hold, pending
// publishes are flushed, then it closes. It waits for the close, bounded by
// ctx.
func drain(ctx context.Context, nc *nats.Conn, logger *slog.Logger) error {
	if nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	err := nc.Drain()
	if errors.Is(err, nats.ErrConnectionReconnecting) {
		// NATS is unreachable, so there is nothing to drain: Drain has
		// closed the connection. Stopping during an outage is no failure.
		logger.Warn("nats not connected at shutdown: closed without draining")
		return nil
	}
	if err != nil {
		nc.Close()
		return fmt.Errorf("drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("drain: %w", ctx.Err())
	}
}
