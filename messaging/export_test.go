package messaging

// Held returns how many messages c holds now, queued or being handled
// (not yet settled), for tests of its bounds.
func Held(c *Consumer) int { return c.held.count() }
