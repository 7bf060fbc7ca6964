package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults applied to zero fields of Options.
const (
	DefaultListen       = "127.0.0.1:4222"
	DefaultReadyTimeout = 10 * time.Second
	// DefaultMaxPayload is above the 1 MiB that endpoints accept, so that an
	// oversized request reaches the endpoint and gets a 413 answer instead of
	// failing in the client.
	DefaultMaxPayload = 8 << 20
	DefaultServerName = "switchboard-dev"
)

// Options configures Start. The zero value is usable except for StoreDir.
type Options struct {
	// Listen is the client address host:port. "" means DefaultListen.
	// Port 0 picks a free port; Server.Addr and Server.ClientURL report it.
	// An empty host listens on all interfaces.
	Listen string

	// StoreDir is the JetStream store directory. It is required and is
	// created with mode 0o750 if missing.
	StoreDir string

	// Logger receives the server's log lines with component=nats-server;
	// nil discards them. Debug lines are produced only if Logger is enabled
	// at slog.LevelDebug, protocol traces only at LevelTrace.
	Logger *slog.Logger

	// ReadyTimeout bounds how long Start waits for the server to accept
	// connections with JetStream enabled. Zero means DefaultReadyTimeout.
	ReadyTimeout time.Duration

	// MaxPayload is the largest message the server accepts. Zero means
	// DefaultMaxPayload.
	MaxPayload int32

	// ServerName names the server in logs and monitoring; it cannot contain
	// spaces. "" means DefaultServerName.
	ServerName string

	// Config is nats-server configuration text (its file syntax) that the
	// server runs with, under the settings of these Options, which win:
	// accounts and users with their permissions (natsauth renders them),
	// TLS. "" means none: every client connects without credentials, to
	// the global account.
	Config string

	// Cluster, when set, makes the server one node of a NATS cluster:
	// replicated streams in one process or on one machine, as the cluster
	// tests use them. ServerName must then differ between the nodes.
	Cluster *Cluster
}

// Cluster is a node's place in a NATS cluster.
type Cluster struct {
	// Name is the cluster's name, the same on every node.
	Name string
	// Listen is this node's route address, host:port.
	Listen string
	// Routes are the other nodes' route addresses, host:port.
	Routes []string
}

// LevelTrace is the slog level at which nats-server's protocol traces (every
// message in and out) are enabled. They are logged at slog.LevelDebug, but
// only produced if Options.Logger is enabled at this lower level, so that
// debug logging of a dev run is not flooded with them.
const LevelTrace = slog.LevelDebug - 4

// config is Options with defaults applied and values checked.
type config struct {
	host         string
	port         int // nats-server convention: server.RANDOM_PORT for "any"
	storeDir     string
	logger       *slog.Logger
	readyTimeout time.Duration
	maxPayload   int32
	serverName   string
	serverConfig string
	cluster      *Cluster
}

func (o Options) config() (config, error) {
	c := config{
		logger:       o.Logger,
		readyTimeout: o.ReadyTimeout,
		maxPayload:   o.MaxPayload,
		serverName:   o.ServerName,
		serverConfig: o.Config,
		cluster:      o.Cluster,
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.readyTimeout == 0 {
		c.readyTimeout = DefaultReadyTimeout
	}
	if c.readyTimeout < 0 {
		return config{}, fmt.Errorf("%w: ReadyTimeout %v is negative", ErrInvalidOption, o.ReadyTimeout)
	}
	if c.maxPayload == 0 {
		c.maxPayload = DefaultMaxPayload
	}
	if c.maxPayload < 0 {
		return config{}, fmt.Errorf("%w: MaxPayload %d is negative", ErrInvalidOption, o.MaxPayload)
	}
	if int64(c.maxPayload) > server.MAX_PENDING_SIZE {
		return config{}, fmt.Errorf("%w: MaxPayload %d is above the server's pending limit %d",
			ErrInvalidOption, o.MaxPayload, server.MAX_PENDING_SIZE)
	}
	if c.serverName == "" {
		c.serverName = DefaultServerName
	}
	if strings.ContainsAny(c.serverName, " \t\r\n") {
		return config{}, fmt.Errorf("%w: ServerName %q contains spaces", ErrInvalidOption, o.ServerName)
	}

	if o.StoreDir == "" {
		return config{}, fmt.Errorf("%w: StoreDir is required", ErrInvalidOption)
	}
	dir, err := filepath.Abs(o.StoreDir)
	if err != nil {
		return config{}, fmt.Errorf("%w: StoreDir %q: %w", ErrInvalidOption, o.StoreDir, err)
	}
	c.storeDir = dir

	listen := o.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return config{}, fmt.Errorf("%w: Listen %q: %w", ErrInvalidOption, o.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return config{}, fmt.Errorf("%w: Listen %q: port must be a number from 0 to 65535", ErrInvalidOption, o.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if host == "" {
		host = "0.0.0.0" // what nats-server does; named for messages
	}
	c.host, c.port = host, port
	return c, nil
}

// listenAddr is the address as the user wrote it, for messages.
func (c config) listenAddr() string {
	port := c.port
	if port == server.RANDOM_PORT {
		port = 0
	}
	return net.JoinHostPort(c.host, strconv.Itoa(port))
}

func (c config) serverOptions() (*server.Options, error) {
	debug := c.logger.Enabled(context.Background(), slog.LevelDebug)
	trace := c.logger.Enabled(context.Background(), LevelTrace)
	o := &server.Options{}
	if c.serverConfig != "" {
		if err := o.ProcessConfigString(c.serverConfig); err != nil {
			return nil, fmt.Errorf("%w: Config: %w", ErrInvalidOption, err)
		}
	}
	o.ServerName = c.serverName
	o.Host, o.Port = c.host, c.port
	o.MaxPayload = c.maxPayload
	o.JetStream, o.StoreDir = true, c.storeDir
	// The process, not the library, owns signals.
	o.NoSigs = true
	// Our logger is installed with SetLoggerV2; NoLog would only stop
	// ConfigureLogger, which we never call.
	o.NoLog = false
	o.Debug, o.Trace = debug, trace
	// The ASCII art is a dozen noisy lines in every dev run and test.
	o.DisableJetStreamBanner = true
	if cl := c.cluster; cl != nil {
		host, port, err := net.SplitHostPort(cl.Listen)
		if err != nil {
			return nil, fmt.Errorf("%w: cluster listen %q: %w", ErrInvalidOption, cl.Listen, err)
		}
		o.Cluster = server.ClusterOpts{Name: cl.Name, Host: host}
		if o.Cluster.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("%w: cluster listen %q: port must be a number", ErrInvalidOption, cl.Listen)
		}
		for _, r := range cl.Routes {
			o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", Host: r})
		}
	}
	return o, nil
}
