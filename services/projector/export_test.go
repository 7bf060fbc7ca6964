package projector

import "github.com/devloop/switchboard/messaging"

// WithBeforeCommit sets a hook that runs in the batch transaction just
// before it commits: the crash tests kill the process there.
func WithBeforeCommit(o *Options, f func(batch []*messaging.Delivery)) { o.beforeCommit = f }

// LockOrders is the advisory lock key of the orders projection's leader.
const LockOrders = lockOrders
