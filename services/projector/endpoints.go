package projector

import (
	"github.com/devloop/switchboard/messaging"
	"github.com/devloop/switchboard/services/projector/contract"
)

// routes lists every subject the projector serves, each wired to the
// handler that serves it.
func routes(s *Service) []messaging.Endpoint {
	return []messaging.Endpoint{
		messaging.Typed("users-search", handleSearchUsers(s.queries),
			messaging.WithSubject(contract.SubjectUsersSearch),
			messaging.WithDescription("Search users by name and/or email prefix (case-insensitive), in creation order, from PostgreSQL; min_sequence waits for a write."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("orders-search", handleSearchOrders(s.queries),
			messaging.WithSubject(contract.SubjectOrdersSearch),
			messaging.WithDescription("Search orders by user, status and creation time, sorted by creation time, keyset-paginated, from PostgreSQL; min_sequence waits for a write."),
			messaging.WithMaxPayload(4<<10)),
		messaging.Typed("status", handleStatus(s),
			messaging.WithSubject(contract.SubjectStatus),
			messaging.WithDescription("Each projection's role in this replica, applied sequence, lag and counters."),
			messaging.WithMaxPayload(1<<10)),
	}
}
