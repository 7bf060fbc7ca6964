package notifications_test

import (
	"errors"
	"sync/atomic"

	"github.com/devloop/switchboard/wire"
)

type atomicBool struct{ v atomic.Bool }

func (b *atomicBool) get() bool { return b.v.Load() }
func (b *atomicBool) set()      { b.v.Store(true) }

// hasDetail reports whether err is a *wire.Error with a detail on
// field.
func hasDetail(err error, field string) bool {
	var e *wire.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, d := range e.Details {
		if d.Field == field {
			return true
		}
	}
	return false
}
