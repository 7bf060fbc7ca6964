package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/devloop/switchboard/wire"
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

// PublishOption adds a JetStream expectation to [Publish].
type PublishOption func(*publishOptions)

type publishOptions struct {
	msgID             string
	lastSubSeq        *uint64
	lastSubSeqSubject string
}

// WithMsgID sets Nats-Msg-Id: within the stream's duplicate window, a second
// message with the same id is not stored again, and the ack names the
// first one (PubAck.Duplicate, PubAck.Sequence).
func WithMsgID(id string) PublishOption {
	return func(o *publishOptions) { o.msgID = id }
}

// ExpectLastSubjectSequence makes the write conditional: it is stored only
// when the last message on the subject has stream sequence seq (0: the
// subject has no message yet). Otherwise Publish fails with a 409 *Error.
func ExpectLastSubjectSequence(seq uint64) PublishOption {
	return func(o *publishOptions) { o.lastSubSeq = &seq }
}

// ExpectLastSequenceFor is ExpectLastSubjectSequence for the subjects that
// filter matches (wildcards allowed), e.g. all of one order's events on
// orders.events.<id>.*.
func ExpectLastSequenceFor(filter string, seq uint64) PublishOption {
	return func(o *publishOptions) {
		o.lastSubSeq = &seq
		o.lastSubSeqSubject = filter
	}
}

// Publish stores msg in JetStream and returns the server's ack. A failed
// expectation is a 409 *Error (errors.Is(err, ErrConflict)).
func Publish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, opts ...PublishOption) (*jetstream.PubAck, error) {
	ack, err := js.PublishMsg(ctx, msg, publishOpts(opts)...)
	if err != nil {
		if IsWrongLastSequence(err) {
			return nil, wire.NewError(wire.CodeConflict, fmt.Sprintf("%s changed concurrently", msg.Subject)).WithCause(err)
		}
		return nil, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	return ack, nil
}

// IsWrongLastSequence reports whether err is JetStream refusing a write
// whose expected last sequence did not hold (error codes 10071, and 10164
// on replicated streams).
func IsWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}
