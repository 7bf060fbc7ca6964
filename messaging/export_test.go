package messaging

// Held returns how many messages c holds now, queued or being handled
// (not yet settled), for tests of its bounds.
func Held(c *Consumer) int { return c.held.count() }

// EndpointHandler returns ep's handler, for tests that serve a Request
// without a NATS connection.
func EndpointHandler(ep Endpoint) Handler { return ep.handler }
