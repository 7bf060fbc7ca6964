package users

import "time"

// SetClock makes s read the time from now instead of time.Now, so that a
// test can age email reservations past ReservationGrace without waiting a
// minute. Call it before s serves its first request.
func SetClock(s *Service, now func() time.Time) { s.events.now = now }
