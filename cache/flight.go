package cache

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/singleflight"
)

// shared runs fn once for all concurrent callers of key and waits for its
// result within ctx: the one way Aside and Local share a load.
//
// fn runs detached from the caller that starts it, because others wait for
// it too; so its failure may be the starter's alone (its load stuck on a
// request lost in a reconnect until a timeout, say). A caller that only
// joined a load that failed, and still has time, tries once more with a
// load of its own rather than return an error it had no part in.
func shared(ctx context.Context, g *singleflight.Group, key string, fn func() (any, error)) (any, error) {
	for attempt := 0; ; attempt++ {
		var started atomic.Bool
		ch := g.DoChan(key, func() (any, error) {
			started.Store(true)
			return fn()
		})
		select {
		case r := <-ch:
			if r.Err == nil || started.Load() || attempt > 0 || ctx.Err() != nil {
				return r.Val, r.Err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
