package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/natsauth"
	"github.com/devloop/switchboard/services/gateway"
	"github.com/devloop/switchboard/services/notifications"
	"github.com/devloop/switchboard/services/orders"
	"github.com/devloop/switchboard/services/projector"
	"github.com/devloop/switchboard/services/users"
)

// accessModel is Switchboard's authorization model: one NATS identity per
// service, each with what its grant says it does, the gateway calling
// every endpoint, and the client and operator roles (docs/security.md).
// `switchboard dev` runs its embedded server with it and `switchboard
// nats-config` writes it for production.
func accessModel() natsauth.Model {
	services := []natsauth.Grant{users.Access(), orders.Access(), notifications.Access(), projector.Access()}
	services = append(services, gateway.Access(natsauth.Endpoints(services...)))
	return natsauth.NewModel(services...)
}

// grantOf is the grant of the service name runs as.
func grantOf(name string) natsauth.Grant {
	g, _ := accessModel().Grant(name)
	return g
}

// checkDevListen refuses a dev that listens beyond loopback unless
// dev-allow-remote says so; and then, since anyone on the network can
// reach it, a gateway without authentication too. (NATS always requires
// its nkeys; private webhook targets are refused, see devAllowsPrivate.)
func checkDevListen(cfg config.Config) error {
	exposed := exposedListens(cfg)
	if len(exposed) == 0 {
		return nil
	}
	if !cfg.DevAllowRemote {
		return usageError("dev listens on loopback only, but %s %s reachable from other machines: use 127.0.0.1, or set --dev-allow-remote (then the gateway needs --gateway-api-keys or a JWT key)",
			strings.Join(exposed, " and "), map[bool]string{true: "is", false: "are"}[len(exposed) == 1])
	}
	g := cfg.Gateway
	if g.Auth == "none" || g.Auth == "auto" && g.APIKeys == "" && g.JWTSecret == "" && g.JWTPublicKey == "" {
		return usageError("dev-allow-remote needs gateway authentication: set --gateway-api-keys or --gateway-jwt-secret/--gateway-jwt-public-key")
	}
	return nil
}

// exposedListens names the listen settings of cfg that are not loopback.
func exposedListens(cfg config.Config) []string {
	var out []string
	for _, l := range []struct{ name, addr string }{
		{"--nats-listen " + cfg.NATS.Listen, cfg.NATS.Listen},
		{"--http-listen " + cfg.HTTPListen, cfg.HTTPListen},
		{"--gateway-listen " + cfg.Gateway.Listen, cfg.Gateway.Listen},
	} {
		if !loopback(l.addr) {
			out = append(out, l.name)
		}
	}
	return out
}

// loopback reports whether host:port listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// adoptGlobalStore moves the JetStream store that an earlier dev, which
// ran without accounts, kept for the global account into account's, so
// that its streams are still there once dev runs with accounts.
func adoptGlobalStore(dataDir, account string, logger *slog.Logger) error {
	old := filepath.Join(dataDir, "jetstream", "$G")
	dst := filepath.Join(dataDir, "jetstream", account)
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.Rename(old, dst); err != nil {
		return fmt.Errorf("move the store of an earlier dev to account %s: %w", account, err)
	}
	logger.Info("moved the JetStream store of an earlier dev into account "+account, slog.String("dir", dst))
	return nil
}
