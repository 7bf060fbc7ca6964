// Package lifecycle starts things in order and stops them in reverse: the
// one mechanism behind the switchboard command's start-up and every
// service's Start and Stop. Each part that starts registers how it stops;
// a failure half-way stops what was started, and a shutdown stops
// everything, last started first.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Stack holds the stop functions of what was started, to run in reverse
// order. The zero value is ready to use; it is safe for concurrent use.
type Stack struct {
	mu    sync.Mutex
	steps []step
	done  bool
	err   error
}

type step struct {
	name string
	stop func(context.Context) error
}

// Push registers how the part called name stops.
func (s *Stack) Push(name string, stop func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, step{name, stop})
}

// PushFunc registers a stop that cannot fail.
func (s *Stack) PushFunc(name string, stop func()) {
	s.Push(name, func(context.Context) error { stop(); return nil })
}

// Stop runs every registered stop, last pushed first, each with ctx, and
// returns their errors joined, each naming its part. Calling it again
// returns the first call's result.
func (s *Stack) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return s.err
	}
	s.done = true
	var errs []error
	for i := len(s.steps) - 1; i >= 0; i-- {
		if err := s.steps[i].stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.steps[i].name, err))
		}
	}
	s.err = errors.Join(errs...)
	return s.err
}
