package users

import (
	"context"
	"errors"

	"github.com/devloop/switchboard/cache"
	"github.com/devloop/switchboard/services/users/contract"
	"github.com/devloop/switchboard/wire"
)

// WithCache returns a decorator that puts c in front of a Store's reads.
// The endpoints do not know the cache exists. Writes go to the store first;
// once the event is appended, the cache gets the new version (a tombstone
// for a delete). That is the one place the cache is kept current, and it
// cannot be undone by a slow reader, because fills are conditional on the
// version.
func WithCache(c *cache.Aside[contract.User]) func(Store) Store {
	return func(next Store) Store { return &cachedStore{next: next, c: c} }
}

type cachedStore struct {
	next Store
	c    *cache.Aside[contract.User]
}

func (s *cachedStore) Get(ctx context.Context, id string) (contract.User, error) {
	u, found, err := s.c.Get(ctx, id, func(ctx context.Context) (contract.User, int64, bool, error) {
		u, err := s.next.Get(ctx, id)
		if errors.Is(err, wire.ErrNotFound) {
			return contract.User{}, 0, false, nil
		}
		if err != nil {
			return contract.User{}, 0, false, err
		}
		return u, u.Version, true, nil
	})
	if err != nil {
		return contract.User{}, err
	}
	if !found {
		return contract.User{}, notFound(id)
	}
	return u, nil
}

func (s *cachedStore) Create(ctx context.Context, in NewUser, key string) (contract.User, error) {
	u, err := s.next.Create(ctx, in, key)
	if err == nil {
		s.c.Put(ctx, u.ID, u.Version, u)
	}
	return u, err
}

func (s *cachedStore) Update(ctx context.Context, id string, version int64, ch Changes) (contract.User, error) {
	u, err := s.next.Update(ctx, id, version, ch)
	if err == nil {
		s.c.Put(ctx, u.ID, u.Version, u)
	}
	return u, err
}

func (s *cachedStore) Delete(ctx context.Context, id string, version int64) (contract.User, error) {
	u, err := s.next.Delete(ctx, id, version)
	if err == nil {
		s.c.Absent(ctx, id, u.Version)
	}
	return u, err
}

func (s *cachedStore) List(ctx context.Context, after string, limit int) ([]contract.User, string, error) {
	return s.next.List(ctx, after, limit)
}
