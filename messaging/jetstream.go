package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EnsureStream declares a stream from code, so every replica can call it at
// start-up: it creates the stream when it is missing and otherwise updates
// it to cfg. Replicas and placement that cfg leaves zero keep the values the
// stream has on the server, so an operator's `nats stream edit --replicas 3`
// survives restarts. Changes the server cannot make (a different storage
// type, say) are errors naming the stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	existing, err := js.Stream(ctx, cfg.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err := js.CreateStream(ctx, cfg)
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			if err != nil {
				return nil, fmt.Errorf("declare stream %s: %w", cfg.Name, err)
			}
			return s, nil
		}
		// Another replica created it meanwhile: update it like an
		// existing one.
		existing, err = js.Stream(ctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("declare stream %s: %w", cfg.Name, err)
	}
	current := existing.CachedInfo().Config
	if cfg.Replicas == 0 {
		cfg.Replicas = current.Replicas
	}
	if cfg.Placement == nil {
		cfg.Placement = current.Placement
	}
	s, err := js.UpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("declare stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// EnsureKeyValue declares a key-value bucket from code: it creates the
// bucket when it is missing and leaves an existing one as it is (an
// operator may have changed its replicas or limits).
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("declare key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// ErrNoQuorum says that a replicated stream has no leader, or that too
// few of its replicas are reachable to store a write.
var ErrNoQuorum = errors.New("stream has no quorum")

// StreamReady reports whether stream can take writes now: its leader
// answers within ctx and, on a replicated stream, a majority of its
// replicas (the leader counted) are online and current. A leader that
// has lost its peers keeps answering stream info until it steps down, so
// reachability alone would call a stream ready that cannot store a write.
func StreamReady(ctx context.Context, stream jetstream.Stream) error {
	info, err := stream.Info(ctx)
	if err != nil {
		return err
	}
	return quorum(info)
}

func quorum(info *jetstream.StreamInfo) error {
	ci := info.Cluster
	if ci == nil || info.Config.Replicas <= 1 {
		return nil
	}
	if ci.Leader == "" {
		return fmt.Errorf("%w: no leader", ErrNoQuorum)
	}
	up := 1 // the leader
	for _, p := range ci.Replicas {
		if p.Current && !p.Offline {
			up++
		}
	}
	if need := info.Config.Replicas/2 + 1; up < need {
		return fmt.Errorf("%w: %d of %d replicas current, a write needs %d", ErrNoQuorum, up, info.Config.Replicas, need)
	}
	return nil
}
