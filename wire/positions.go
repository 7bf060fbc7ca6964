package wire

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	if !eachPosition(v, p.Advance) {
		return nil, badPositions(v)
	}
	return p, nil
}

// eachPosition calls f with each "stream=sequence" pair of the HeaderAfter
// value v, skipping empty ones, and reports whether v is well formed (f
// sees the pairs before the first malformed one). It allocates nothing.
func eachPosition(v string, f func(stream string, seq uint64)) bool {
	for rest, more := v, true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ",")
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		stream, num, found := strings.Cut(part, "=")
		n, err := strconv.ParseUint(num, 10, 64)
		if !found || stream == "" || err != nil {
			return false
		}
		f(stream, n)
	}
	return true
}

func badPositions(v string) error {
	return NewError(CodeBadRequest, fmt.Sprintf("%s header %q: want stream=sequence pairs separated by commas", HeaderAfter, v))
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

// AfterHeader is a checked HeaderAfter value, for a server's own context
// type to carry (see [ScopeValue]). [After] reads one stream's position
// from its text without building a map; [PositionsFrom] builds the map on
// first use. The zero value carries no positions.
type AfterHeader struct {
	raw  string
	once sync.Once
	p    Positions
}

// Set checks v and makes h carry it; a malformed v is an error that
// matches ErrBadRequest, and leaves h as it was. Set h once, before the
// context that carries it is used.
func (h *AfterHeader) Set(v string) error {
	if !eachPosition(v, func(string, uint64) {}) {
		return badPositions(v)
	}
	h.raw = v
	return nil
}

// positions is h's map, made on first use.
func (h *AfterHeader) positions() Positions {
	h.once.Do(func() { h.p, _ = ParsePositions(h.raw) })
	return h.p
}

// after is h's position of stream, read from its text.
func (h *AfterHeader) after(stream string) uint64 {
	var pos uint64
	eachPosition(h.raw, func(s string, seq uint64) {
		if s == stream && seq > pos {
			pos = seq
		}
	})
	return pos
}

// ScopeValue is what a context made by [WithRequestID] with id, and by
// [WithPositions] with after's positions when after carries some, answers
// for key; ok is false for every other key. It lets a server's own
// context type carry a request's id and positions in one node rather than
// in one context.WithValue each (messaging's request scope does).
func ScopeValue(key any, id string, after *AfterHeader) (v any, ok bool) {
	switch key.(type) {
	case requestIDKey:
		return id, true
	case positionsKey:
		if after != nil && after.raw != "" {
			return after, true
		}
	}
	return nil, false
}

// PositionsFrom returns the positions ctx carries (nil when none).
func PositionsFrom(ctx context.Context) Positions {
	switch v := ctx.Value(positionsKey{}).(type) {
	case Positions:
		return v
	case *AfterHeader:
		return v.positions()
	}
	return nil
}

// After is the position of stream that ctx must be answered as of (0 when
// none).
func After(ctx context.Context, stream string) uint64 {
	switch v := ctx.Value(positionsKey{}).(type) {
	case Positions:
		return v[stream]
	case *AfterHeader:
		return v.after(stream)
	}
	return 0
}
