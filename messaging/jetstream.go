package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// declareBudget is how long a declaration (EnsureStream, EnsureKeyValue,
// a consumer's durable) keeps retrying JetStream's passing refusals
// before it fails with the last one, unless its ctx ends sooner.
const declareBudget = 30 * time.Second

// declareAttempt bounds each try of a declaration (jetstream's default API
// timeout), so that a request lost in an election is tried again even
// under a caller's longer deadline.
const declareAttempt = 5 * time.Second

// declaring runs declare until it succeeds, fails for good, ctx ends or
// declareBudget is spent. A cluster that has just started, or whose meta
// leader is moving, answers a declaration late or with "temporarily
// unavailable" for a few seconds, more on a loaded machine; failing the
// start-up on that would make every service's start a race with the
// cluster's elections. Declarations are idempotent, so trying again after
// a time-out that did reach the server is safe. Errors that will not pass
// (a config the server refuses, JetStream not enabled) return at
// once.
func declaring[T any](ctx context.Context, declare func(context.Context) (T, error)) (T, error) {
	deadline := time.Now().Add(declareBudget)
	wait := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, declareAttempt)
		v, err := declare(actx)
		cancel()
		if err == nil || !passing(ctx, err) || time.Now().Add(wait).After(deadline) {
			return v, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// declaringErr is declaring for a declaration that returns only an error.
func declaringErr(ctx context.Context, declare func(context.Context) error) error {
	_, err := declaring(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, declare(ctx) })
	return err
}

// passing reports whether err is a JetStream refusal that passes once the
// cluster has its leaders: a request that timed out while ctx is still
// live (the per-call API timeout), "JetStream system temporarily
// unavailable" (no meta leader) or "cluster can not handle request" (a
// leader stepping down).
func passing(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jsErrClusterNotAvailable, jsErrClusterNotLeader:
			return true
		}
	}
	return false
}

// JetStream API error codes (nats-server's errors.json) that nats.go does
// not name.
const (
	jsErrClusterNotAvailable jetstream.ErrorCode = 10008 // JSClusterNotAvailErr
	jsErrClusterNotLeader    jetstream.ErrorCode = 10009 // JSClusterNotLeaderErr
)

// Replication is how many copies of each stream and bucket the services
// create, and where the cluster places them. Every stream and bucket
// Switchboard declares (EnsureStream, EnsureKeyValue, the dead-letter
// stream) gets it; the zero value means one replica and no placement.
type Replication struct {
	// Replicas of each stream and bucket, 1 to 5; 0 means 1. A stream an
	// operator gave more replicas keeps them.
	Replicas int
	// Tags place the streams on servers with all of these tags (e.g. a
	// region); none means any server.
	Tags []string
}

// Stream returns cfg with r applied where cfg says nothing: its replicas
// when cfg.Replicas is 0, its tags when cfg has no placement.
func (r Replication) Stream(cfg jetstream.StreamConfig) jetstream.StreamConfig {
	if cfg.Replicas == 0 {
		cfg.Replicas = max(r.Replicas, 1)
	}
	if cfg.Placement == nil && len(r.Tags) > 0 {
		cfg.Placement = &jetstream.Placement{Tags: append([]string(nil), r.Tags...)}
	}
	return cfg
}

// KeyValue returns cfg with r applied where cfg says nothing.
func (r Replication) KeyValue(cfg jetstream.KeyValueConfig) jetstream.KeyValueConfig {
	if cfg.Replicas == 0 {
		cfg.Replicas = max(r.Replicas, 1)
	}
	if cfg.Placement == nil && len(r.Tags) > 0 {
		cfg.Placement = &jetstream.Placement{Tags: append([]string(nil), r.Tags...)}
	}
	return cfg
}

// EnsureStream declares a stream from code, so every replica can call it at
// start-up: it creates the stream when it is missing and otherwise updates
// it to cfg. An existing stream keeps its replicas when it has more than
// cfg asks for (an operator's `nats stream edit --replicas 5` survives
// restarts), and its placement when cfg names none. Changes the server
// cannot make (a different storage type, say) are errors naming the
// stream. While the cluster is electing leaders it retries for up to 30
// seconds (within ctx) before failing.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return declaring(ctx, func(ctx context.Context) (jetstream.Stream, error) { return ensureStream(ctx, js, cfg) })
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
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
	cfg.Replicas = max(cfg.Replicas, current.Replicas)
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
// bucket when it is missing, and otherwise leaves it as it is (an operator
// may have changed its limits) but for its replicas, which are raised to
// cfg.Replicas when the bucket has fewer. Like EnsureStream, it retries
// while the cluster is electing leaders.
func EnsureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return declaring(ctx, func(ctx context.Context) (jetstream.KeyValue, error) { return ensureKeyValue(ctx, js, cfg) })
}

func ensureKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		if err = raiseReplicas(ctx, js, "KV_"+cfg.Bucket, cfg.Replicas); err == nil {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("declare key-value bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// raiseReplicas gives the stream name at least replicas replicas.
func raiseReplicas(ctx context.Context, js jetstream.JetStream, name string, replicas int) error {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas >= replicas {
		return nil
	}
	cfg.Replicas = replicas
	_, err = js.UpdateStream(ctx, cfg)
	return err
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
