package wire

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Positions are stream sequences, by stream name: how far a caller has
// seen each stream. A write's reply names its own position (HeaderStream,
// HeaderSequence); a caller that sends its positions back (HeaderAfter)
// is answered as of at least those positions, by whichever replica
// serves it: read-your-writes for a session, across replicas and across
// the services a request passes through.
type Positions map[string]uint64

// ParsePositions reads a HeaderAfter value: "USERS=12,ORDERS=7".
func ParsePositions(v string) (Positions, error) {
	p := Positions{}
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		stream, seq, ok := strings.Cut(part, "=")
		n, err := strconv.ParseUint(seq, 10, 64)
		if !ok || stream == "" || err != nil {
			return nil, NewError(CodeBadRequest, fmt.Sprintf("%s header %q: want stream=sequence pairs separated by commas", HeaderAfter, v))
		}
		p.Advance(stream, n)
	}
	return p, nil
}

// Advance records that stream was seen up to seq.
func (p Positions) Advance(stream string, seq uint64) {
	if seq > p[stream] {
		p[stream] = seq
	}
}

// Merge advances p to every position of o.
func (p Positions) Merge(o Positions) {
	for s, n := range o {
		p.Advance(s, n)
	}
}

// String formats p for HeaderAfter, streams in name order.
func (p Positions) String() string {
	streams := make([]string, 0, len(p))
	for s := range p {
		streams = append(streams, s)
	}
	slices.Sort(streams)
	var b strings.Builder
	for i, s := range streams {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s + "=" + strconv.FormatUint(p[s], 10))
	}
	return b.String()
}

type positionsKey struct{}

// WithPositions returns a context carrying p: the positions a request
// must be answered as of, passed on to the calls it makes.
func WithPositions(ctx context.Context, p Positions) context.Context {
	return context.WithValue(ctx, positionsKey{}, p)
}

// ScopeValue is what a context made by [WithRequestID] with id, and by
// [WithPositions] with p when p is not nil, answers for key; ok is false
// for every other key. It lets a server's own context type carry a
// request's id and positions in one node rather than in one
// context.WithValue each (messaging's request scope does).
func ScopeValue(key any, id string, p Positions) (v any, ok bool) {
	switch key.(type) {
	case requestIDKey:
		return id, true
	case positionsKey:
		if p != nil {
			return p, true
		}
	}
	return nil, false
}

// PositionsFrom returns the positions ctx carries (nil when none).
func PositionsFrom(ctx context.Context) Positions {
	p, _ := ctx.Value(positionsKey{}).(Positions)
	return p
}

// After is the position of stream that ctx must be answered as of (0 when
// none).
func After(ctx context.Context, stream string) uint64 {
	return PositionsFrom(ctx)[stream]
}
