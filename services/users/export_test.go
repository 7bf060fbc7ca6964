package users

import "time"

// SetClock makes s read the time of its writes from now instead of
// time.Now (a replica whose clock is off, say). Call it before s serves.
func SetClock(s *Service, now func() time.Time) { s.store.now = now }
