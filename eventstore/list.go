package eventstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/devloop/switchboard/messaging"
)

// Query asks for one page of a listing.
type Query struct {
	// Listing is the listing to read ("" for the listing of all).
	Listing string
	// After is the id of the last entity of the previous page ("" for the
	// first page).
	After string
	// Limit is the most entities to return (at least 1).
	Limit int
	// MaxBytes, when > 0, bounds the page's entities by their JSON size,
	// so that a page always fits in a reply.
	MaxBytes int
}

// Page is one page of a listing. Next is the After of the next page, ""
// on the last page.
type Page[T any] struct {
	Records []Record[T]
	Next    string
}

// List reads a page of a listing in creation order. Entities created
// before List was called are in it (it asks the stream leader how far the
// listing goes), and each entity's state is read as Get reads it; deleted
// entities are left out. It reads at most DefaultPageScan index entries
// per requested entity: a page of a listing that is mostly deleted may be
// short, with a Next to go on from.
func (s *Store[T]) List(ctx context.Context, q Query) (Page[T], error) {
	if q.Limit < 1 {
		return Page[T]{}, fmt.Errorf("list: limit %d: %w", q.Limit, messaging.ErrInvalidOption)
	}
	last, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.indexFilter(q.Listing))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Page[T]{Records: []Record[T]{}}, nil
	}
	if err != nil {
		return Page[T]{}, unavailable(err)
	}
	var from uint64
	if q.After != "" {
		m, err := messaging.LastMsg(ctx, s.js, s.cfg.Stream.Name, s.cfg.indexSubject(q.Listing, q.After))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return Page[T]{}, fmt.Errorf("after %q: %w", q.After, ErrBadCursor)
		}
		if err != nil {
			return Page[T]{}, unavailable(err)
		}
		from = m.Sequence
	}
	page := Page[T]{Records: []Record[T]{}}
	size := 2 // the brackets of a JSON array
	scanned, budget := 0, q.Limit*DefaultPageScan
	cursor := "" // the last entry looked at
	for from < last.Sequence {
		ids, seqs, err := s.indexAfter(ctx, q.Listing, from, last.Sequence, min(q.Limit+1, 256))
		if err != nil {
			return Page[T]{}, err
		}
		for i, id := range ids {
			rec, err := s.Get(ctx, id)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return Page[T]{}, err
			}
			if err == nil {
				if len(page.Records) == q.Limit {
					page.Next = cursor // there is more
					return page, nil
				}
				if q.MaxBytes > 0 {
					data, _ := json.Marshal(rec.State)
					if size+len(data)+1 > q.MaxBytes && len(page.Records) > 0 {
						page.Next = cursor
						return page, nil
					}
					size += len(data) + 1
				}
				page.Records = append(page.Records, rec)
			}
			from, cursor = seqs[i], id
		}
		scanned += len(ids)
		if scanned >= budget && from < last.Sequence {
			// Mostly deleted entities: a short page, and where to go on.
			page.Next = cursor
			return page, nil
		}
	}
	return page, nil
}

// indexAfter reads up to n index entries of listing after sequence from,
// up to sequence upTo, itself an entry, which the leader holds. A direct
// get may be answered by a replica that is behind: an answer that has
// fewer than n entries and stops short of upTo is asked again, and then
// of the leader.
func (s *Store[T]) indexAfter(ctx context.Context, listing string, from, upTo uint64, n int) ([]string, []uint64, error) {
	filter := s.cfg.indexFilter(listing)
	prefix := strings.TrimSuffix(filter, "*")
	for range 3 {
		msgs, err := jetstreamext.GetBatch(ctx, s.js, s.cfg.Stream.Name, n, jetstreamext.GetBatchSeq(from+1), jetstreamext.GetBatchSubject(filter))
		if err != nil {
			return nil, nil, unavailable(err)
		}
		var ids []string
		var seqs []uint64
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				return nil, nil, unavailable(err)
			}
			if m.Sequence > upTo {
				break
			}
			ids = append(ids, strings.TrimPrefix(m.Subject, prefix))
			seqs = append(seqs, m.Sequence)
		}
		if len(ids) == n || len(ids) > 0 && seqs[len(seqs)-1] == upTo {
			return ids, seqs, nil
		}
	}
	m, err := messaging.NextMsg(ctx, s.js, s.cfg.Stream.Name, filter, from+1)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	return []string{strings.TrimPrefix(m.Subject, prefix)}, []uint64{m.Sequence}, nil
}
