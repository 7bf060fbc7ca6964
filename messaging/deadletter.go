package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/devloop/switchboard/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultDeadLetterStream is the stream that receives what consumers
// cannot handle.
const DefaultDeadLetterStream = "DEADLETTER"

// deadLetterPrefix starts every dead-letter subject. The layout,
// deadletter.<stream>.<consumer>, is spelled here and nowhere else: use
// DeadLetterSubject and DeadLetterQuery.
const deadLetterPrefix = "deadletter."

// DeadLetterSubject is the subject on which the consumer durable of stream
// dead-letters: deadletter.<stream>.<durable>.
func DeadLetterSubject(stream, durable string) string {
	return deadLetterPrefix + stream + "." + durable
}

// Headers of a dead-lettered message, beside the original message's own
// (its Nats-* headers, which steer the server, are dropped).
const (
	HeaderDeadLetterSubject    = "Switchboard-Dead-Letter-Subject"
	HeaderDeadLetterStream     = "Switchboard-Dead-Letter-Stream"
	HeaderDeadLetterConsumer   = "Switchboard-Dead-Letter-Consumer"
	HeaderDeadLetterSequence   = "Switchboard-Dead-Letter-Sequence"
	HeaderDeadLetterDeliveries = "Switchboard-Dead-Letter-Deliveries"
	HeaderDeadLetterReason     = "Switchboard-Dead-Letter-Reason"
	HeaderDeadLetterError      = "Switchboard-Dead-Letter-Error"
)

// Reasons a message is dead-lettered, in HeaderDeadLetterReason.
const (
	ReasonPermanent     = "permanent"
	ReasonMaxDeliveries = "max-deliveries"
	ReasonUndecodable   = "undecodable"
)

// ErrDeadLetterNotFound is returned for a dead letter that does not exist
// (or not under the query given).
var ErrDeadLetterNotFound = errors.New("dead letter not found")

// DeadLetterStreamConfig is the configuration a dead-letter stream is
// created with: file storage, subjects deadletter.>, kept until an operator
// deletes them. An existing stream is left as it is, so an operator's
// limits, replicas or placement survive restarts.
func DeadLetterStreamConfig(name string) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        name,
		Description: "Messages consumers could not handle, with the reason and the last error.",
		Subjects:    []string{deadLetterPrefix + ">"},
		Storage:     jetstream.FileStorage,
		AllowDirect: true,
		Duplicates:  10 * time.Minute,
	}
}

// EnsureDeadLetterStream creates the dead-letter stream name with r
// applied unless it exists, as a consumer does (ConsumerConfig.Replication)
// when it is the first to need it; an existing one is left as it is.
func EnsureDeadLetterStream(ctx context.Context, js jetstream.JetStream, name string, r Replication) error {
	if name == "" {
		name = DefaultDeadLetterStream
	}
	return createStreamIfMissing(ctx, js, r.Stream(DeadLetterStreamConfig(name)))
}

// deadLetterMsg is the dead letter of d, which failed with herr.
func deadLetterMsg(d *Delivery, durable, reason string, herr error) *nats.Msg {
	h := nats.Header{}
	for k, v := range d.Header {
		// Nats-* headers steer the server (expectations, de-duplication,
		// TTL, rollup, batches, counters, schedules): on the dead letter
		// they would make the publish fail, vanish or do something else.
		if strings.HasPrefix(k, "Nats-") {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDeadLetterSubject, d.Subject)
	h.Set(HeaderDeadLetterStream, d.Stream)
	h.Set(HeaderDeadLetterConsumer, durable)
	h.Set(HeaderDeadLetterSequence, strconv.FormatUint(d.StreamSeq, 10))
	h.Set(HeaderDeadLetterDeliveries, strconv.FormatUint(d.Delivered, 10))
	h.Set(HeaderDeadLetterReason, reason)
	h.Set(HeaderDeadLetterError, headerSafe(herr.Error()))
	return &nats.Msg{Subject: DeadLetterSubject(d.Stream, durable), Header: h, Data: d.Payload}
}

// DeadLetter is a message that a consumer could not handle, as the
// dead-letter stream holds it.
type DeadLetter struct {
	// Seq is its sequence in the dead-letter stream: its id.
	Seq uint64
	// Stream, Consumer, Subject and StreamSeq say where it came from.
	Stream    string
	Consumer  string
	Subject   string
	StreamSeq uint64
	// Deliveries is how often it was delivered before it was given up.
	Deliveries int
	// Reason is one of the Reason constants; Error the last failure.
	Reason string
	Error  string
	// Time is when it was dead-lettered.
	Time time.Time
	// Header and Data are the original message's (less its Nats-* headers).
	Header nats.Header
	Data   []byte
}

func toDeadLetter(m *jetstream.RawStreamMsg) DeadLetter {
	n, _ := strconv.Atoi(m.Header.Get(HeaderDeadLetterDeliveries))
	seq, _ := strconv.ParseUint(m.Header.Get(HeaderDeadLetterSequence), 10, 64)
	return DeadLetter{
		Seq:        m.Sequence,
		Stream:     m.Header.Get(HeaderDeadLetterStream),
		Consumer:   m.Header.Get(HeaderDeadLetterConsumer),
		Subject:    m.Header.Get(HeaderDeadLetterSubject),
		StreamSeq:  seq,
		Deliveries: n,
		Reason:     m.Header.Get(HeaderDeadLetterReason),
		Error:      m.Header.Get(HeaderDeadLetterError),
		Time:       m.Time,
		Header:     m.Header,
		Data:       m.Data,
	}
}

// DeadLetterQuery selects dead letters: those of one consumer of a stream,
// or of every consumer of it when Consumer is "".
type DeadLetterQuery struct {
	Stream   string
	Consumer string
}

func (q DeadLetterQuery) filter() string {
	if q.Consumer == "" {
		return deadLetterPrefix + q.Stream + ".*"
	}
	return DeadLetterSubject(q.Stream, q.Consumer)
}

// DeadLetters reads, deletes and replays the messages in a dead-letter
// stream. The consumer runtime writes them; DeadLetters is the one place
// that reads them back.
type DeadLetters struct {
	js     jetstream.JetStream
	stream string
}

// NewDeadLetters returns the dead letters of stream ("" for
// DefaultDeadLetterStream).
func NewDeadLetters(js jetstream.JetStream, stream string) *DeadLetters {
	if stream == "" {
		stream = DefaultDeadLetterStream
	}
	return &DeadLetters{js: js, stream: stream}
}

func (d *DeadLetters) open(ctx context.Context) (jetstream.Stream, error) {
	s, err := d.js.Stream(ctx, d.stream)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream %s: %w", d.stream, err)
	}
	return s, nil
}

// List returns up to limit dead letters matching q with sequences after
// after, oldest first, and the after of the next page (0 on the last).
func (d *DeadLetters) List(ctx context.Context, q DeadLetterQuery, after uint64, limit int) ([]DeadLetter, uint64, error) {
	return d.list(ctx, q, after, 0, limit)
}

// list is List bounded by upTo (0: no bound).
func (d *DeadLetters) list(ctx context.Context, q DeadLetterQuery, after, upTo uint64, limit int) ([]DeadLetter, uint64, error) {
	s, err := d.open(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return []DeadLetter{}, 0, nil // nothing was ever dead-lettered
	}
	if err != nil {
		return nil, 0, err
	}
	out := []DeadLetter{}
	seq := after + 1
	for {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(q.filter()))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && upTo > 0 && m.Sequence > upTo {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read dead letters after %d: %w", seq-1, err)
		}
		if len(out) == limit {
			return out, out[len(out)-1].Seq, nil // there is more
		}
		out = append(out, toDeadLetter(m))
		seq = m.Sequence + 1
	}
}

// Get returns dead letter seq if it matches q.
func (d *DeadLetters) Get(ctx context.Context, q DeadLetterQuery, seq uint64) (DeadLetter, error) {
	s, err := d.open(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
	}
	if err != nil {
		return DeadLetter{}, err
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !wire.MatchSubject(q.filter(), m.Subject) {
		return DeadLetter{}, fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	return toDeadLetter(m), nil
}

// Delete removes dead letter seq; deleting one that is gone is no error.
func (d *DeadLetters) Delete(ctx context.Context, seq uint64) error {
	s, err := d.open(ctx)
	if err != nil {
		return err
	}
	if err := s.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("delete dead letter %d: %w", seq, err)
	}
	return nil
}

// Resubmit hands a dead letter back for another try (republishing its
// task, say); nil means it was accepted, and the dead letter is deleted.
type Resubmit func(ctx context.Context, dl DeadLetter) error

// Replay resubmits dead letter seq (matching q) and deletes it once
// resubmitted. A resubmitted message that fails again is dead-lettered
// again, under a new sequence.
func (d *DeadLetters) Replay(ctx context.Context, q DeadLetterQuery, seq uint64, resubmit Resubmit) error {
	dl, err := d.Get(ctx, q, seq)
	if err != nil {
		return err
	}
	return d.replay(ctx, dl, resubmit)
}

func (d *DeadLetters) replay(ctx context.Context, dl DeadLetter, resubmit Resubmit) error {
	if err := resubmit(ctx, dl); err != nil {
		return fmt.Errorf("replay dead letter %d: %w", dl.Seq, err)
	}
	// Resubmitted all the same when this fails; a second replay would
	// resubmit it again, which resubmitters de-duplicate.
	return d.Delete(ctx, dl.Seq)
}

// ReplayAll replays every dead letter matching q that exists when it is
// called, oldest first, and returns how many it replayed. Dead letters that
// the replayed messages cause are not replayed again: the walk stops at the
// stream's last sequence as of the call.
func (d *DeadLetters) ReplayAll(ctx context.Context, q DeadLetterQuery, resubmit Resubmit) (int, error) {
	s, err := d.open(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead-letter stream %s: %w", d.stream, err)
	}
	upTo := info.State.LastSeq
	n := 0
	var after uint64
	for {
		page, next, err := d.list(ctx, q, after, upTo, 100)
		if err != nil {
			return n, err
		}
		for _, dl := range page {
			if err := d.replay(ctx, dl, resubmit); err != nil {
				return n, err
			}
			n++
		}
		if next == 0 {
			return n, nil
		}
		after = next
	}
}

// createStreamIfMissing creates the stream cfg describes unless it exists;
// an existing one is left exactly as it is (an operator's settings stay,
// and a consumer needs no right to change it).
func createStreamIfMissing(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	return declaringErr(ctx, func(ctx context.Context) error { return createStreamOnce(ctx, js, cfg) })
}

func createStreamOnce(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	_, err := js.Stream(ctx, cfg.Name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("declare stream %s: %w", cfg.Name, err)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("declare stream %s: %w", cfg.Name, err)
	}
	return nil
}
