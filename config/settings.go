package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Names of settings that code refers to outside the table.
const (
	nameConfig       = "config"
	nameNATSURL      = "nats-url"
	nameNATSCreds    = "nats-creds"
	nameNATSNKey     = "nats-nkey"
	nameNATSUser     = "nats-user"
	nameNATSPassword = "nats-password"
	nameNATSToken    = "nats-token"
	nameNATSCert     = "nats-cert"
	nameNATSKey      = "nats-key"

	nameWebhookKey          = "webhook-encryption-key"
	nameDevAllowRemote      = "dev-allow-remote"
	nameGatewayListen       = "gateway-listen"
	nameGatewayAuth         = "gateway-auth"
	nameGatewayAPIKeys      = "gateway-api-keys"
	nameGatewayJWTSecret    = "gateway-jwt-secret"
	nameGatewayJWTPublicKey = "gateway-jwt-public-key"
	nameGatewayTimeout      = "gateway-timeout"
	nameGatewayMaxTimeout   = "gateway-max-timeout"
)

const (
	envPrefix = "SWITCHBOARD_"
	masked    = "xxxxx" // what url.URL.Redacted shows for a password
)

// settings is the one declaration of every setting. Flags, environment
// variables, file keys, defaults, validation, Usage, Describe and the
// reference in docs/configuration.md are all derived from it. It is a
// function, not a variable, so the package holds no state.
func settings() []setting {
	return []setting{
		{
			name: nameConfig, arg: "path", noFile: true,
			help:    "TOML config file to read; empty for none",
			allowed: "path of a readable TOML file, or empty",
			value:   str(func(c *Config) *string { return &c.ConfigFile }, nil),
		},
		{
			name: nameNATSURL, arg: "urls", url: true, fallbackEnv: []string{"NATS_URL"},
			def:     "nats://127.0.0.1:4222",
			help:    "NATS server URL, or a comma-separated list of them",
			allowed: "URLs with scheme nats, tls, ws or wss and a host",
			value:   str(func(c *Config) *string { return &c.NATS.URL }, checkNATSURLs),
		},
		{
			name: "nats-listen", arg: "host:port",
			def:     "127.0.0.1:4222",
			help:    "client address of the embedded NATS server (dev); port 0 picks a free one",
			allowed: "host:port, port 0–65535; empty host means all interfaces",
			value:   str(func(c *Config) *string { return &c.NATS.Listen }, checkHostPort),
		},
		{
			name: nameNATSCreds, arg: "path", readable: true,
			help:    "NATS credentials (.creds) file",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.NATS.CredsFile }, nil),
		},
		{
			name: nameNATSNKey, arg: "path", readable: true,
			help:    "NATS nkey seed file",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.NATS.NKeyFile }, nil),
		},
		{
			name: nameNATSUser, arg: "name",
			help:    "NATS user name",
			allowed: "any string",
			value:   str(func(c *Config) *string { return &c.NATS.User }, nil),
		},
		{
			name: nameNATSPassword, arg: "string", secret: true,
			help:    "NATS password; needs nats-user",
			allowed: "any string",
			value:   str(func(c *Config) *string { return &c.NATS.Password }, nil),
		},
		{
			name: nameNATSToken, arg: "string", secret: true,
			help:    "NATS authentication token",
			allowed: "any string",
			value:   str(func(c *Config) *string { return &c.NATS.Token }, nil),
		},
		{
			name: "nats-ca", arg: "path", readable: true,
			help:    "PEM file of CAs to verify the NATS server",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.NATS.CAFile }, nil),
		},
		{
			name: nameNATSCert, arg: "path", readable: true,
			help:    "PEM client certificate for NATS; needs nats-key",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.NATS.CertFile }, nil),
		},
		{
			name: nameNATSKey, arg: "path", readable: true,
			help:    "PEM client key for NATS; needs nats-cert",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.NATS.KeyFile }, nil),
		},
		{
			name: "data-dir", arg: "path",
			def:     "$XDG_DATA_HOME/switchboard",
			defFrom: defaultDataDir,
			example: "/var/lib/switchboard",
			help:    "directory for persistent data, such as the embedded server's JetStream store",
			allowed: "non-empty path",
			value:   str(func(c *Config) *string { return &c.DataDir }, checkNotEmpty),
		},
		{
			name: "http-listen", arg: "host:port",
			def:     "127.0.0.1:8080",
			help:    "address of the HTTP server",
			allowed: "host:port, port 0–65535; empty host means all interfaces",
			value:   str(func(c *Config) *string { return &c.HTTPListen }, checkHostPort),
		},
		{
			name: "log-level", arg: "level",
			def:     "info",
			help:    "minimum level of log records",
			allowed: "debug, info, warn, error",
			value:   str(func(c *Config) *string { return &c.Log.Level }, oneOf("debug", "info", "warn", "error")),
		},
		{
			name: "log-format", arg: "format",
			def:     "text",
			help:    "log output format",
			allowed: "text, json",
			value:   str(func(c *Config) *string { return &c.Log.Format }, oneOf("text", "json")),
		},
		{
			name: "tracing", arg: "exporter",
			def:     "off",
			help:    "export traces: otlp sends them with OTLP, configured by the standard OTEL_EXPORTER_OTLP_* variables (see docs/observability.md)",
			allowed: "off, otlp",
			value:   str(func(c *Config) *string { return &c.Observability.Tracing }, oneOf("off", "otlp")),
		},
		{
			name: "pprof", arg: "mode",
			def:     "off",
			help:    "serve net/http/pprof under /debug/pprof/ on the ops HTTP server",
			allowed: "off, on",
			value:   str(func(c *Config) *string { return &c.Observability.PProf }, oneOf("off", "on")),
		},
		{
			name: "request-timeout", arg: "duration",
			def:     "5s",
			help:    "timeout of a request whose context has no deadline",
			allowed: "duration > 0 and ≤ 10m",
			value:   duration(func(c *Config) *time.Duration { return &c.RequestTimeout }, 10*time.Minute),
		},
		{
			name: "shutdown-timeout", arg: "duration",
			def:     "15s",
			help:    "time allowed to drain and shut down",
			allowed: "duration > 0 and ≤ 10m",
			value:   duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, 10*time.Minute),
		},
		{
			name: "redis-url", arg: "url", url: true,
			example: "redis://127.0.0.1:6379/0",
			help:    "Redis URL of the cache shared by replicas; empty for none",
			allowed: "empty, or a URL with scheme redis or rediss and a host",
			value:   str(func(c *Config) *string { return &c.Redis.URL }, checkRedisURL),
		},
		{
			name: "redis-timeout", arg: "duration",
			def:     "50ms",
			help:    "timeout of each Redis command",
			allowed: "duration > 0 and ≤ 10s",
			value:   duration(func(c *Config) *time.Duration { return &c.Redis.Timeout }, 10*time.Second),
		},
		{
			name: "redis-pool-size", arg: "int",
			def:     "0",
			help:    "Redis connection pool size; 0 for the client's default",
			allowed: "integer 0–10000",
			value:   integer(func(c *Config) *int { return &c.Redis.PoolSize }, 0, 10000),
		},
		{
			name: "cache-ttl", arg: "duration",
			def:     "5m",
			help:    "lifetime of an entry in the shared (Redis) cache",
			allowed: "duration > 0",
			value:   duration(func(c *Config) *time.Duration { return &c.Cache.TTL }, 0),
		},
		{
			name: "cache-budget", arg: "duration",
			def:     "50ms",
			help:    "time a read may spend on the shared cache before it goes to the stream",
			allowed: "duration > 0 and ≤ 10s",
			value:   duration(func(c *Config) *time.Duration { return &c.Cache.Budget }, 10*time.Second),
		},
		{
			name: "cache-entries", arg: "int",
			def:     "50000",
			help:    "entries of each service's in-process cache; 0 turns it off",
			allowed: "integer 0–100000000",
			value:   integer(func(c *Config) *int { return &c.Cache.Entries }, 0, 100_000_000),
		},
		{
			name: "stream-replicas", arg: "int",
			def:     "1",
			help:    "replicas of every stream and bucket the services declare; 3 on a 3-node cluster (a stream an operator gave more keeps them)",
			allowed: "integer 1–5",
			value:   integer(func(c *Config) *int { return &c.Streams.Replicas }, 1, 5),
		},
		{
			name: "stream-placement-tags", arg: "list",
			example: "region:eu-west",
			help:    "server tags, separated by commas, that every stream and bucket is placed on; empty for any server",
			allowed: "empty, or tags separated by commas",
			value:   str(func(c *Config) *string { return &c.Streams.PlacementTags }, nil),
		},
		{
			name: "postgres-url", arg: "url", url: true,
			example: "postgres://switchboard:secret@127.0.0.1:5432/switchboard",
			help:    "PostgreSQL URL of the projector's query tables; empty: no projector (dev runs it only when set)",
			allowed: "empty, or a URL with scheme postgres or postgresql and a host",
			value:   str(func(c *Config) *string { return &c.Postgres.URL }, checkPostgresURL),
		},
		{
			name: "postgres-pool-size", arg: "int",
			def:     "0",
			help:    "PostgreSQL connections for the projector's queries; 0 for the driver's default",
			allowed: "integer 0–1000",
			value:   integer(func(c *Config) *int { return &c.Postgres.PoolSize }, 0, 1000),
		},
		{
			name: "projector-batch-size", arg: "int",
			def:     "200",
			help:    "most events the projector writes in one transaction",
			allowed: "integer 1–10000",
			value:   integer(func(c *Config) *int { return &c.Projector.BatchSize }, 1, 10000),
		},
		{
			name: "webhooks-file", arg: "path", readable: true,
			help:    "TOML file of webhooks the notifications service loads at start",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.Notifications.WebhooksFile }, nil),
		},
		{
			name: "webhook-private-addresses", arg: "policy",
			def:     "auto",
			help:    "whether webhooks may target private and loopback addresses; auto allows them in dev only",
			allowed: "auto, allow, deny",
			value:   str(func(c *Config) *string { return &c.Notifications.PrivateAddresses }, oneOf("auto", "allow", "deny")),
		},
		{
			name: nameWebhookKey, arg: "base64", secret: true,
			help:    "key that encrypts webhook secrets at rest (AES-256-GCM): 32 random bytes, base64; empty in dev keeps a generated one in the data dir",
			allowed: "empty, or the standard base64 of exactly 32 bytes",
			value:   str(func(c *Config) *string { return &c.Notifications.EncryptionKey }, checkEncryptionKey),
		},
		{
			name: nameDevAllowRemote, arg: "bool",
			def:     "false",
			help:    "let dev listen on addresses other than loopback (NATS, ops HTTP, gateway); it then requires gateway auth and refuses private webhook targets",
			allowed: "true, false",
			value:   boolean(func(c *Config) *bool { return &c.DevAllowRemote }),
		},
		{
			name: nameGatewayListen, arg: "host:port",
			def:     "127.0.0.1:8081",
			help:    "address of the HTTP gateway (switchboard run gateway, dev); port 0 picks a free one",
			allowed: "host:port, port 0–65535; empty host means all interfaces",
			value:   str(func(c *Config) *string { return &c.Gateway.Listen }, checkHostPort),
		},
		{
			name: nameGatewayAuth, arg: "mode",
			def:     "auto",
			help:    "how the gateway authenticates callers; auto uses the API keys or JWT key configured, else none in dev and a start-up error in run",
			allowed: "auto, none, api-key, jwt",
			value:   str(func(c *Config) *string { return &c.Gateway.Auth }, oneOf("auto", "none", "api-key", "jwt")),
		},
		{
			name: nameGatewayAPIKeys, arg: "list", secret: true,
			help:    "API keys the gateway accepts, as name=key pairs separated by commas; the name identifies the caller",
			allowed: "empty, or name=key,…: names of letters, digits, - and _, keys of at least 16 characters",
			value:   str(func(c *Config) *string { return &c.Gateway.APIKeys }, checkAPIKeys),
		},
		{
			name: nameGatewayJWTSecret, arg: "string", secret: true,
			help:    "HMAC secret verifying the gateway's bearer JWTs (HS256/384/512)",
			allowed: "empty, or at least 32 characters",
			value:   str(func(c *Config) *string { return &c.Gateway.JWTSecret }, checkJWTSecret),
		},
		{
			name: nameGatewayJWTPublicKey, arg: "path", readable: true,
			help:    "PEM public key (RSA, ECDSA or Ed25519) verifying the gateway's bearer JWTs",
			allowed: "readable file, or empty",
			value:   str(func(c *Config) *string { return &c.Gateway.JWTPublicKey }, nil),
		},
		{
			name: "gateway-jwt-issuer", arg: "string",
			help:    "iss claim the gateway's JWTs must carry; empty for any",
			allowed: "any string",
			value:   str(func(c *Config) *string { return &c.Gateway.JWTIssuer }, nil),
		},
		{
			name: "gateway-jwt-audience", arg: "string",
			help:    "aud claim the gateway's JWTs must carry; empty for any",
			allowed: "any string",
			value:   str(func(c *Config) *string { return &c.Gateway.JWTAudience }, nil),
		},
		{
			name: "gateway-rate-limit", arg: "int",
			def:     "0",
			help:    "requests per second each gateway caller may make (by API key or JWT subject, else by client address); 0 for no limit",
			allowed: "integer 0–1000000",
			value:   integer(func(c *Config) *int { return &c.Gateway.RateLimit }, 0, 1_000_000),
		},
		{
			name: "gateway-rate-burst", arg: "int",
			def:     "0",
			help:    "requests a gateway caller may make at once above the rate; 0 for twice the rate",
			allowed: "integer 0–1000000",
			value:   integer(func(c *Config) *int { return &c.Gateway.RateBurst }, 0, 1_000_000),
		},
		{
			name: "gateway-max-body", arg: "bytes",
			def:     "1048576",
			help:    "largest request body the gateway takes; an endpoint's own lower limit applies too",
			allowed: "integer 1–67108864",
			value:   integer(func(c *Config) *int { return &c.Gateway.MaxBody }, 1, 64<<20),
		},
		{
			name: "gateway-cors-origins", arg: "list",
			example: "https://app.example.com",
			help:    "origins browsers may call the gateway from, separated by commas, or *; empty for no CORS",
			allowed: "empty, *, or scheme://host[:port],…",
			value:   str(func(c *Config) *string { return &c.Gateway.CORSOrigins }, checkOrigins),
		},
		{
			name: nameGatewayTimeout, arg: "duration",
			def:     "5s",
			help:    "deadline of a gateway request that brings none (Switchboard-Timeout or Switchboard-Deadline)",
			allowed: "duration > 0 and ≤ 10m",
			value:   duration(func(c *Config) *time.Duration { return &c.Gateway.Timeout }, 10*time.Minute),
		},
		{
			name: nameGatewayMaxTimeout, arg: "duration",
			def:     "30s",
			help:    "latest deadline a gateway request may ask for",
			allowed: "duration > 0 and ≤ 10m, at least gateway-timeout",
			value:   duration(func(c *Config) *time.Duration { return &c.Gateway.MaxTimeout }, 10*time.Minute),
		},
		{
			name: "gateway-refresh", arg: "duration",
			def:     "2s",
			help:    "how often the gateway rediscovers services and their routes",
			allowed: "duration > 0 and ≤ 1m",
			value:   duration(func(c *Config) *time.Duration { return &c.Gateway.Refresh }, time.Minute),
		},
	}
}

// setting describes one setting. Its name is the flag (--name), the file key
// and, upper-cased with dashes turned to underscores and SWITCHBOARD_ in
// front, the environment variable.
type setting struct {
	name    string
	arg     string // placeholder for the value in Usage, e.g. "host:port"
	help    string // one line, no final period
	allowed string // the allowed values, for the reference docs
	def     string // default as given on the command line; as documented when defFrom is set
	defFrom func(getenv func(string) string) string
	example string // value for the example file, when the default is not a good one
	// fallbackEnv are further environment variables, set for other tools
	// (the nats CLI's NATS_URL): they count below the file.
	fallbackEnv []string
	secret      bool // mask the whole value when printing
	url         bool // mask passwords inside the URL(s) when printing
	noFile      bool // cannot be set in the config file
	readable    bool // a file path that must be readable when set
	value       value
}

func (s setting) env() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

func (s setting) envNames() []string {
	return append([]string{s.env()}, s.fallbackEnv...)
}

// display masks v as printing does.
func (s setting) display(v string) string {
	switch {
	case s.secret && v != "":
		return masked
	case s.url:
		return MaskURL(v)
	default:
		return v
	}
}

func (s setting) check(c *Config) error {
	if s.value.check == nil {
		return nil
	}
	return s.value.check(c)
}

// invalid reports a bad raw value for s given by src, masked like display.
func (s setting) invalid(raw string, src Source, err error) error {
	e := &settingError{what: s.name, source: src, reason: err.Error(), cause: err}
	switch {
	case s.secret:
		// Even a masked secret says nothing useful; leave it out.
	case s.url && !parsesAsURLs(raw) && strings.Contains(raw, "@"):
		// MaskURL cannot find the password in a URL that does not parse.
		e.value, e.hasValue = masked, true
	default:
		e.value, e.hasValue = s.display(raw), true
	}
	return e
}

// value binds a setting to its field in Config.
type value struct {
	set   func(c *Config, raw string) error // parse raw into the field
	get   func(c *Config) string            // the field in the form set takes
	check func(c *Config) error             // validate the field; nil if anything goes
	toml  string                            // TOML type the file must use
}

const (
	tomlString  = "string"
	tomlInteger = "integer"
	tomlBool    = "boolean"
)

func str(field func(*Config) *string, check func(string) error) value {
	v := value{
		set:  func(c *Config, raw string) error { *field(c) = raw; return nil },
		get:  func(c *Config) string { return *field(c) },
		toml: tomlString,
	}
	if check != nil {
		v.check = func(c *Config) error { return check(*field(c)) }
	}
	return v
}

// duration is a time.Duration that must be > 0 and, unless limit is 0,
// at most limit.
func duration(field func(*Config) *time.Duration, limit time.Duration) value {
	return value{
		set: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return errors.New(`want a duration such as "500ms", "5s" or "2m"`)
			}
			*field(c) = d
			return nil
		},
		get: func(c *Config) string { return formatDuration(*field(c)) },
		check: func(c *Config) error {
			d := *field(c)
			if d <= 0 {
				return errors.New("must be greater than 0")
			}
			if limit > 0 && d > limit {
				return fmt.Errorf("must be at most %s", formatDuration(limit))
			}
			return nil
		},
		toml: tomlString,
	}
}

func boolean(field func(*Config) *bool) value {
	return value{
		set: func(c *Config, raw string) error {
			b, err := strconv.ParseBool(raw)
			if err != nil {
				return errors.New("want true or false")
			}
			*field(c) = b
			return nil
		},
		get:  func(c *Config) string { return strconv.FormatBool(*field(c)) },
		toml: tomlBool,
	}
}

func integer(field func(*Config) *int, lo, hi int) value {
	return value{
		set: func(c *Config, raw string) error {
			n, err := strconv.Atoi(raw)
			if err != nil {
				return fmt.Errorf("want an integer %d–%d", lo, hi)
			}
			*field(c) = n
			return nil
		},
		get: func(c *Config) string { return strconv.Itoa(*field(c)) },
		check: func(c *Config) error {
			if n := *field(c); n < lo || n > hi {
				return fmt.Errorf("must be %d–%d", lo, hi)
			}
			return nil
		},
		toml: tomlInteger,
	}
}

// formatDuration drops the zero units time.Duration.String shows ("10m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func checkNotEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func checkHostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:8080 or :8080")
	}
	return checkPort(port, 0)
}

func checkPort(port string, lo int) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < lo || n > 65535 {
		return fmt.Errorf("port must be %d–65535", lo)
	}
	return nil
}

func checkNATSURLs(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	urls := strings.Split(v, ",")
	for i, raw := range urls {
		err := checkURL(strings.TrimSpace(raw), "nats", "tls", "ws", "wss")
		if err != nil && len(urls) > 1 {
			err = fmt.Errorf("URL %d of %d: %w", i+1, len(urls), err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func checkPostgresURL(v string) error {
	if v == "" {
		return nil
	}
	return checkURL(v, "postgres", "postgresql")
}

func checkRedisURL(v string) error {
	if v == "" {
		return nil
	}
	return checkURL(v, "redis", "rediss")
}

// checkURL never quotes the URL: it may hold a password.
func checkURL(raw string, schemes ...string) error {
	if raw == "" {
		return errors.New("empty URL in list")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL
		}
		return fmt.Errorf("not a URL: %v", err)
	}
	ok := false
	for _, s := range schemes {
		ok = ok || u.Scheme == s
	}
	if !ok {
		return fmt.Errorf("scheme must be %s, e.g. %s://127.0.0.1", strings.Join(schemes, ", "), schemes[0])
	}
	if u.Hostname() == "" {
		return errors.New("URL must have a host")
	}
	if p := u.Port(); p != "" {
		return checkPort(p, 1)
	}
	return nil
}

func parsesAsURLs(v string) bool {
	for _, raw := range strings.Split(v, ",") {
		if _, err := url.Parse(strings.TrimSpace(raw)); err != nil {
			return false
		}
	}
	return true
}

// checkAPIKeys checks name=key pairs without ever quoting a key.
func checkAPIKeys(v string) error {
	seen := map[string]bool{}
	for i, pair := range splitList(v) {
		name, key, ok := strings.Cut(pair, "=")
		name, key = strings.TrimSpace(name), strings.TrimSpace(key)
		switch {
		case !ok || name == "":
			return fmt.Errorf("entry %d: want name=key", i+1)
		case strings.TrimFunc(name, isKeyNameRune) != "" || len(name) > 64:
			return fmt.Errorf("entry %d: name %q: want 1 to 64 letters, digits, - or _", i+1, name)
		case len(key) < 16:
			return fmt.Errorf("key %q: want at least 16 characters", name)
		case seen[name]:
			return fmt.Errorf("name %q given twice", name)
		}
		seen[name] = true
	}
	return nil
}

func isKeyNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// checkEncryptionKey never quotes the key.
func checkEncryptionKey(v string) error {
	if v == "" {
		return nil
	}
	key, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return errors.New("not standard base64 (make one with: head -c 32 /dev/urandom | base64)")
	}
	if len(key) != 32 {
		return fmt.Errorf("decodes to %d bytes, want 32 (make one with: head -c 32 /dev/urandom | base64)", len(key))
	}
	return nil
}

func checkJWTSecret(v string) error {
	if v != "" && len(v) < 32 {
		return errors.New("must be at least 32 characters (HS256 keys are 256 bits)")
	}
	return nil
}

func checkOrigins(v string) error {
	for _, o := range splitList(v) {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("origin %q: want * or scheme://host[:port], e.g. https://app.example.com", o)
		}
	}
	return nil
}
