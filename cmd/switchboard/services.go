package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/notifications"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/projector"
	"github.com/devloop/switchboard/services/users"
	"github.com/devloop/switchboard/telemetry"
)

// service is what serve needs of a running service.
type service interface {
	Name() string
	// Err is nil while the service serves.
	Err() error
	// Stop stops taking requests and finishes those in flight.
	Stop(ctx context.Context) error
}

// readier is implemented by services that can check what they depend on
// (their streams, say) for /readyz.
type readier interface {
	Ready(ctx context.Context) error
}

// urler is implemented by services with an HTTP listener of their own
// (the gateway), whose URL the ready banner shows.
type urler interface {
	URL() string
}

// deps are what a service is started with.
type deps struct {
	nc     *nats.Conn
	cfg    config.Config
	logger *slog.Logger
	// cache is the shared cache backend; nil when there is none.
	cache cache.Backend
	// telemetry measures and traces every service.
	telemetry *telemetry.Telemetry
	// dev is true under `switchboard dev`.
	dev bool
}

// cacheConfig is how every service is given its caches.
func (d deps) cacheConfig() cache.Config {
	entries := d.cfg.Cache.Entries
	if entries == 0 {
		entries = -1 // off
	}
	return cache.Config{Backend: d.cache, TTL: d.cfg.Cache.TTL, Budget: d.cfg.Cache.Budget, LocalEntries: entries}
}

// replication is how every service replicates its streams and buckets.
func (d deps) replication() messaging.Replication { return replication(d.cfg) }

// limits are every service's endpoint limits.
func (d deps) limits() messaging.Limits {
	return messaging.Limits{Timeout: d.cfg.RequestTimeout}
}

type starter func(ctx context.Context, d deps) (service, error)

// registry lists every service the binary can run, in start order.
func registry() []struct {
	name  string
	start starter
} {
	return []struct {
		name  string
		start starter
	}{
		{"users", func(ctx context.Context, d deps) (service, error) {
			return users.Start(ctx, d.nc, users.Options{Logger: d.logger, Cache: d.cacheConfig(), Limits: d.limits(), Replication: d.replication(), Telemetry: d.telemetry})
		}},
		{"orders", func(ctx context.Context, d deps) (service, error) {
			return orders.Start(ctx, d.nc, orders.Options{Logger: d.logger, Cache: d.cacheConfig(), Limits: d.limits(), Replication: d.replication(), Telemetry: d.telemetry})
		}},
		{"notifications", func(ctx context.Context, d deps) (service, error) {
			policy := d.cfg.Notifications.PrivateAddresses
			key := d.cfg.Notifications.Key()
			if key == nil && d.dev {
				var err error
				if key, err = devEncryptionKey(d.cfg.DataDir); err != nil {
					return nil, err
				}
			}
			return notifications.Start(ctx, d.nc, notifications.Options{
				EncryptionKey: key,
				Logger:        d.logger,
				Limits:        d.limits(),
				Telemetry:     d.telemetry,
				Cache:         d.cacheConfig(),
				Replication:   d.replication(),
				WebhooksFile:  d.cfg.Notifications.WebhooksFile,
				// dev allows them, unless it is reachable from elsewhere.
				AllowPrivate: policy == "allow" || policy == "auto" && d.dev && !d.cfg.DevAllowRemote,
			})
		}},
		{"projector", func(ctx context.Context, d deps) (service, error) {
			if d.cfg.Postgres.URL == "" {
				return nil, errors.New("the projector needs PostgreSQL: set --postgres-url (SWITCHBOARD_POSTGRES_URL)")
			}
			return projector.Start(ctx, d.nc, projector.Options{
				PostgresURL: d.cfg.Postgres.URL,
				PoolSize:    d.cfg.Postgres.PoolSize,
				BatchSize:   d.cfg.Projector.BatchSize,
				Logger:      d.logger,
				Limits:      d.limits(),
				Telemetry:   d.telemetry,
				Replication: d.replication(),
			})
		}},
		// Last: it serves the others over HTTP, so it stops first.
		{"gateway", startGateway},
	}
}

// devServices are the services dev runs: all of them, but the projector
// only with a PostgreSQL URL, so that dev needs nothing installed.
func devServices(cfg config.Config) []string {
	var names []string
	for _, n := range knownServices() {
		if n == "projector" && cfg.Postgres.URL == "" {
			continue
		}
		names = append(names, n)
	}
	return names
}

func knownServices() []string {
	var names []string
	for _, s := range registry() {
		names = append(names, s.name)
	}
	return names
}

// selectServices checks names against the registry and removes repeats.
func selectServices(names []string) ([]string, error) {
	known := knownServices()
	var out []string
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown service %q; known services: %s", n, strings.Join(known, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func starterFor(name string) starter {
	for _, s := range registry() {
		if s.name == name {
			return s.start
		}
	}
	return nil
}

// devEncryptionKey is dev's webhook encryption key when none is set: one
// generated on the first run and kept in the data dir (mode 0600).
func devEncryptionKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "webhook-encryption.key")
	if data, err := os.ReadFile(path); err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
		if err != nil || len(key) != notifications.KeySize {
			return nil, fmt.Errorf("%s does not hold a webhook encryption key (32 bytes, base64)", path)
		}
		return key, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, notifications.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}
