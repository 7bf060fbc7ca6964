package config_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/devloop/switchboard/config"
)

func TestGatewaySettings(t *testing.T) {
	const key = "k3y-0123456789abcdef"
	pem := writeFile(t, "jwt.pem", "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n")
	tests := []struct {
		name      string
		givenArgs []string
		givenEnv  map[string]string
		wantErr   string // "" for none
	}{
		{name: "defaults"},
		{name: "api keys from env", givenEnv: map[string]string{"SWITCHBOARD_GATEWAY_API_KEYS": "mobile=" + key + ", partner=" + key + "x"}},
		{name: "api-key auth with keys", givenArgs: []string{"--gateway-auth", "api-key", "--gateway-api-keys", "ci=" + key}},
		{name: "jwt auth with a secret", givenArgs: []string{"--gateway-auth", "jwt", "--gateway-jwt-secret", strings.Repeat("s", 32)}},
		{name: "jwt auth with a public key", givenArgs: []string{"--gateway-auth", "jwt", "--gateway-jwt-public-key", pem}},
		{name: "CORS origins", givenArgs: []string{"--gateway-cors-origins", "https://app.example.com, http://localhost:3000"}},
		{name: "an unknown auth mode", givenArgs: []string{"--gateway-auth", "basic"}, wantErr: "must be one of auto, none, api-key, jwt"},
		{name: "api-key auth without keys", givenArgs: []string{"--gateway-auth", "api-key"}, wantErr: "invalid gateway-auth (from flag --gateway-auth): api-key needs gateway-api-keys"},
		{name: "jwt auth without a key", givenArgs: []string{"--gateway-auth", "jwt"}, wantErr: "jwt needs gateway-jwt-secret or gateway-jwt-public-key"},
		{name: "a key without a name", givenArgs: []string{"--gateway-api-keys", "=" + key}, wantErr: "entry 1: want name=key"},
		{name: "a short key", givenArgs: []string{"--gateway-api-keys", "ci=short"}, wantErr: `key "ci": want at least 16 characters`},
		{name: "a bad key name", givenArgs: []string{"--gateway-api-keys", "c i=" + key}, wantErr: `name "c i"`},
		{name: "a name twice", givenArgs: []string{"--gateway-api-keys", "ci=" + key + ",ci=" + key + "y"}, wantErr: `name "ci" given twice`},
		{name: "a short JWT secret", givenArgs: []string{"--gateway-jwt-secret", "short"}, wantErr: "at least 32 characters"},
		{name: "a JWT secret and a public key", givenArgs: []string{"--gateway-jwt-secret", strings.Repeat("s", 32), "--gateway-jwt-public-key", pem}, wantErr: "conflicts with gateway-jwt-secret"},
		{name: "an origin without a scheme", givenArgs: []string{"--gateway-cors-origins", "app.example.com"}, wantErr: `origin "app.example.com"`},
		{name: "a timeout over the max", givenArgs: []string{"--gateway-timeout", "1m"}, wantErr: "invalid gateway-timeout (from flag --gateway-timeout): 1m is more than gateway-max-timeout (default) 30s"},
		{name: "a body limit of 0", givenArgs: []string{"--gateway-max-body", "0"}, wantErr: "must be 1–67108864"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := config.Load("switchboard test", tt.givenArgs, fakeEnv(tt.givenEnv))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Load: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, config.ErrInvalid)):
				t.Fatalf("Load = %v, want an ErrInvalid with %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), key):
				t.Errorf("the error shows a key: %v", err)
			}
		})
	}
}

func TestGatewayLists(t *testing.T) {
	g := config.Gateway{APIKeys: " mobile=0123456789abcdef ,, partner = fedcba9876543210 ", CORSOrigins: "https://a.example, ,*"}
	if got, want := g.APIKeyMap(), map[string]string{"mobile": "0123456789abcdef", "partner": "fedcba9876543210"}; !maps.Equal(got, want) {
		t.Errorf("APIKeyMap = %v, want %v", got, want)
	}
	if got := g.Origins(); !slices.Equal(got, []string{"https://a.example", "*"}) {
		t.Errorf("Origins = %q", got)
	}
}

func TestGatewaySecretsAreMasked(t *testing.T) {
	const secret = "s3cr3t-Zq9-0123456789abcdefghijkl"
	c, _, err := config.Load("switchboard test", []string{"--gateway-api-keys", "ci=" + secret, "--gateway-jwt-secret", secret}, fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if out := c.String(); strings.Contains(out, secret) || strings.Count(out, "xxxxx") != 2 {
		t.Errorf("Describe shows a gateway secret, or masks fewer than two:\n%s", out)
	}
}
