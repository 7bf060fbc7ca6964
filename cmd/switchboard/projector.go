package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/projector"
)

// projectorCommand runs `switchboard projector rebuild [PROJECTION...]`
// against the external NATS and PostgreSQL of cfg.
func projectorCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild" {
		return usageError("projector takes a sub-command: rebuild [%s]...", strings.Join(projector.Projections(), "|"))
	}
	names := args[1:]
	for _, n := range names {
		if !slices.Contains(projector.Projections(), n) {
			return usageError("unknown projection %q; known: %s", n, strings.Join(projector.Projections(), ", "))
		}
	}
	if cfg.Postgres.URL == "" {
		return usageError("projector rebuild needs --postgres-url (SWITCHBOARD_POSTGRES_URL)")
	}
	logger := newLogger(cfg.Log, stderr)
	ctx, _, stop := signals(ctx)
	defer stop()
	host, _ := os.Hostname()
	o := natsOptions(cfg, fmt.Sprintf("switchboard-rebuild-%s-%d", host, os.Getpid()), logger)
	o.InboxPrefix = grantOf(projector.Access().User).InboxPrefix() // it runs as the projector
	nc, err := messaging.Connect(ctx, o)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	results, err := projector.Rebuild(ctx, js, cfg.Postgres.URL, names, logger)
	for _, r := range results {
		fmt.Fprintf(stdout, "rebuilt %s from %s: %d events, up to sequence %d, in %s\n", r.Projection, r.Stream, r.Events, r.Sequence, r.Took.Round(1e6))
	}
	if errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	if err != nil {
		logger.Error("rebuild failed", slog.String("error", err.Error()))
	}
	return err
}
