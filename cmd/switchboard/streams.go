package main

import (
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/messaging"
)

// replication is how every stream and bucket is replicated.
func replication(cfg config.Config) messaging.Replication {
	return messaging.Replication{Replicas: cfg.Streams.Replicas, Tags: cfg.Streams.Tags()}
}

// checkDeployment warns about a deployment that cannot keep its
// guarantees through a server's loss: `run` against a single server, or a
// cluster whose streams have one replica. It warns rather than refuses,
// since a staging cluster may take that risk knowingly.
func checkDeployment(nc *nats.Conn, cfg config.Config, m mode, logger *slog.Logger) []string {
	var warnings []string
	cluster := nc.ConnectedClusterName()
	switch {
	case m == modeRun && cluster == "":
		warnings = append(warnings, "connected to a single NATS server, not a cluster: its loss stops every service, and a lost disk loses acknowledged writes; production runs a 3-node cluster (docs/operations.md)")
	case cluster != "" && cfg.Streams.Replicas < 3:
		warnings = append(warnings, fmt.Sprintf("streams and buckets have %d replica(s) on cluster %q: losing the server that holds one loses its acknowledged writes; set --stream-replicas 3 (docs/operations.md)", cfg.Streams.Replicas, cluster))
	}
	for _, w := range warnings {
		logger.Warn("deployment: " + w)
	}
	return warnings
}
