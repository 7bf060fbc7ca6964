package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/services/gateway"
)

// startGateway starts the HTTP gateway on its own listener.
func startGateway(ctx context.Context, d deps) (service, error) {
	g := d.cfg.Gateway
	auth, err := gatewayAuth(g, d.dev)
	if err != nil {
		return nil, err
	}
	if auth == nil {
		d.logger.Warn("gateway: no authentication: every caller is let in", slog.String("gateway_auth", g.Auth))
	}
	return gateway.Start(ctx, d.nc, g.Listen, gateway.Options{
		Logger:      d.logger.With(slog.String("service", "gateway")),
		Version:     buildVersion(),
		Auth:        auth,
		RateLimit:   float64(g.RateLimit),
		RateBurst:   g.RateBurst,
		MaxBody:     int64(g.MaxBody),
		CORSOrigins: g.Origins(),
		Timeout:     g.Timeout,
		MaxTimeout:  g.MaxTimeout,
		Refresh:     g.Refresh,
		Telemetry:   d.telemetry,
	})
}

// gatewayAuth makes the authenticator the settings ask for; nil lets
// every caller in. "auto" uses what is configured; with nothing
// configured, it is off in dev, and in run a start-up error: a gateway
// in production is open only when someone says so (--gateway-auth none).
func gatewayAuth(g config.Gateway, dev bool) (*gateway.Auth, error) {
	mode := g.Auth
	if mode == "auto" {
		switch {
		case g.APIKeys != "":
			mode = "api-key"
		case g.JWTSecret != "" || g.JWTPublicKey != "":
			mode = "jwt"
		case dev:
			mode = "none"
		default:
			return nil, errors.New("gateway: no authentication configured: set --gateway-api-keys or --gateway-jwt-secret/--gateway-jwt-public-key, or --gateway-auth none to let every caller in")
		}
	}
	switch mode {
	case "api-key":
		return gateway.NewAPIKeyAuth(g.APIKeyMap())
	case "jwt":
		o := gateway.JWTOptions{Secret: []byte(g.JWTSecret), Issuer: g.JWTIssuer, Audience: g.JWTAudience}
		if g.JWTPublicKey != "" {
			pem, err := os.ReadFile(g.JWTPublicKey)
			if err != nil {
				return nil, fmt.Errorf("gateway: %w", err)
			}
			o.PublicKeyPEM = pem
		}
		return gateway.NewJWTAuth(o)
	}
	return nil, nil
}
