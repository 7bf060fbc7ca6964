package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error about a bad setting: an unknown flag,
// a value that does not parse or is out of range, a config file that cannot
// be read, or an unknown key in it. Callers exit with status 2 on it.
var ErrInvalid = errors.New("config: invalid setting")

// Source kinds, in increasing order of precedence.
const (
	KindDefault = "default"
	KindFile    = "file"
	KindEnv     = "env"
	KindFlag    = "flag"
)

// Config is the effective configuration of a Switchboard process.
type Config struct {
	// ConfigFile is the TOML file the settings were read from; "" for none.
	ConfigFile string

	NATS          NATS
	Redis         Redis
	Cache         Cache
	Log           Log
	Notifications Notifications
	Postgres      Postgres
	Projector     Projector
	Gateway       Gateway
	Streams       Streams
	Observability Observability

	// DataDir holds persistent state, such as the embedded server's
	// JetStream store.
	DataDir string
	// HTTPListen is the host:port of the HTTP server.
	HTTPListen string
	// RequestTimeout bounds a request when the caller's context has no
	// deadline.
	RequestTimeout time.Duration
	// ShutdownTimeout bounds draining and shutting down.
	ShutdownTimeout time.Duration
	// DevAllowRemote lets dev listen on other addresses than loopback.
	DevAllowRemote bool

	// Sources records, for each setting name, where its value came from.
	Sources map[string]Source
}

// NATS holds how to reach NATS, and where the embedded server listens.
type NATS struct {
	// URL is one NATS server URL or a comma-separated list of them.
	URL string
	// Listen is the client host:port of the embedded server (dev); port 0
	// picks a free port.
	Listen string

	CredsFile string // a .creds file (JWT and nkey seed)
	NKeyFile  string // an nkey seed file
	User      string
	Password  string // secret
	Token     string // secret

	CAFile   string // PEM roots to verify the server
	CertFile string // PEM client certificate; needs KeyFile
	KeyFile  string // PEM client key; needs CertFile
}

// Redis holds the optional Redis cache. An empty URL means an in-process
// cache.
type Redis struct {
	// URL is a redis:// or rediss:// URL; its password is secret.
	URL string
	// Timeout bounds each Redis command.
	Timeout time.Duration
	// PoolSize is the connection pool size; 0 means the client's default.
	PoolSize int
}

// Cache tunes the caches: each service's in-process cache, and the cache
// shared by replicas when Redis is configured.
type Cache struct {
	// TTL is how long a shared entry lives.
	TTL time.Duration
	// Budget bounds each call to the shared cache.
	Budget time.Duration
	// Entries bounds each in-process cache; 0 turns them off.
	Entries int
}

// Streams says how the streams and buckets the services declare are
// replicated on a NATS cluster.
type Streams struct {
	// Replicas of each stream and bucket (1–5); a stream an operator
	// gave more keeps them.
	Replicas int
	// PlacementTags, separated by commas, place them on servers with all
	// of these tags; "" for any server.
	PlacementTags string
}

// Tags returns PlacementTags as a list.
func (s Streams) Tags() []string {
	var tags []string
	for t := range strings.SplitSeq(s.PlacementTags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// Notifications configures the notifications service.
type Notifications struct {
	// WebhooksFile is a TOML file of webhooks loaded at start ("" for none).
	WebhooksFile string
	// PrivateAddresses says whether webhooks may target private and
	// loopback addresses: "allow", "deny", or "auto" (allowed in dev,
	// refused elsewhere).
	PrivateAddresses string
	// EncryptionKey is the base64 of the 32-byte key that encrypts
	// webhook secrets at rest; secret. See [Notifications.Key].
	EncryptionKey string
}

// Key returns the decoded EncryptionKey, nil when it is empty.
func (n Notifications) Key() []byte {
	if n.EncryptionKey == "" {
		return nil
	}
	key, _ := base64.StdEncoding.DecodeString(n.EncryptionKey) // checked by Load
	return key
}

// Postgres holds the PostgreSQL of the projector's query tables.
type Postgres struct {
	// URL is a postgres:// URL; its password is secret. Empty means no
	// projector.
	URL string
	// PoolSize bounds the query pool; 0 means the driver's default.
	PoolSize int
}

// Projector tunes the projector service.
type Projector struct {
	// BatchSize is the most events written in one transaction.
	BatchSize int
}

// Gateway configures the HTTP gateway (docs/gateway.md).
type Gateway struct {
	// Listen is the host:port of the gateway's HTTP server.
	Listen string
	// Auth is "auto", "none", "api-key" or "jwt".
	Auth string
	// APIKeys are name=key pairs separated by commas; secret. See
	// [Gateway.APIKeyMap].
	APIKeys string
	// JWTSecret verifies HMAC-signed JWTs; secret.
	JWTSecret string
	// JWTPublicKey is a PEM file verifying RSA, ECDSA or Ed25519 JWTs.
	JWTPublicKey string
	// JWTIssuer and JWTAudience, when set, must match iss and aud.
	JWTIssuer   string
	JWTAudience string
	// RateLimit is requests per second per caller (0: none); RateBurst
	// the bucket size (0: twice RateLimit).
	RateLimit int
	RateBurst int
	// MaxBody bounds a request body, in bytes.
	MaxBody int
	// CORSOrigins are origins separated by commas, or "*"; see
	// [Gateway.Origins].
	CORSOrigins string
	// Timeout is the deadline of a request that brings none; MaxTimeout
	// caps the one it brings.
	Timeout    time.Duration
	MaxTimeout time.Duration
	// Refresh is how often services are rediscovered.
	Refresh time.Duration
}

// APIKeyMap returns APIKeys as a map from name to key.
func (g Gateway) APIKeyMap() map[string]string {
	keys := map[string]string{}
	for _, pair := range splitList(g.APIKeys) {
		name, key, _ := strings.Cut(pair, "=")
		keys[strings.TrimSpace(name)] = strings.TrimSpace(key)
	}
	return keys
}

// Origins returns CORSOrigins as a list.
func (g Gateway) Origins() []string { return splitList(g.CORSOrigins) }

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Observability configures traces and profiling; metrics are always
// served, on the ops HTTP server's /metrics.
type Observability struct {
	// Tracing is "off" or "otlp": export spans with OTLP, configured by
	// the OTEL_* environment variables.
	Tracing string
	// PProf is "on" to serve net/http/pprof on the ops HTTP server.
	PProf string
}

// TracingOn reports whether traces are exported.
func (o Observability) TracingOn() bool { return o.Tracing == "otlp" }

// PProfOn reports whether the profiling endpoints are served.
func (o Observability) PProfOn() bool { return o.PProf == "on" }

// Log configures the logger.
type Log struct {
	Level  string // debug, info, warn or error
	Format string // text or json
}

// SlogLevel returns the slog level named by l.Level, or slog.LevelInfo when
// it names none.
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Source says where a setting's value came from.
type Source struct {
	Kind string // KindDefault, KindFile, KindEnv or KindFlag
	Name string // "--nats-url", "SWITCHBOARD_NATS_URL", "NATS_URL", "/etc/sb.toml"; "" for a default
}

// String returns e.g. "flag --nats-url", "env NATS_URL", "file /etc/sb.toml"
// or "default".
func (s Source) String() string {
	if s.Name == "" {
		return s.Kind
	}
	return s.Kind + " " + s.Name
}

// Default returns the built-in defaults. getenv is only used to find the
// default data directory (XDG_DATA_HOME, then HOME); nil means an empty
// environment.
func Default(getenv func(string) string) Config {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := Config{Sources: map[string]Source{}}
	for _, s := range settings() {
		def := s.def
		if s.defFrom != nil {
			def = s.defFrom(getenv)
		}
		// Defaults are valid by construction: TestSettingsTable checks them.
		_ = s.value.set(&c, def)
		c.Sources[s.name] = Source{Kind: KindDefault}
	}
	return c
}

func defaultDataDir(getenv func(string) string) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "switchboard")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "switchboard")
	}
	return filepath.Join(os.TempDir(), "switchboard")
}

// Load parses args (the arguments after the sub-command name, e.g.
// ["--nats-url","nats://x:4222","users"]), the environment through getenv,
// and the file named by --config/SWITCHBOARD_CONFIG. It returns the
// effective Config and the positional arguments left after the flags.
//
// command is only used in messages. Load prints nothing: -h or --help
// returns an error matching flag.ErrHelp (show [Usage]), and any bad value
// returns an error wrapping [ErrInvalid].
func Load(command string, args []string, getenv func(string) string) (Config, []string, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	set := settings()

	fromFlags, rest, err := parseFlags(command, set, args)
	if err != nil {
		return Config{}, nil, err
	}
	fromEnv, fromFallback := lookupEnv(set, getenv)

	c := Default(getenv)
	// The file is named by the config setting, which only env and flags
	// set: apply those first, to find it.
	for _, a := range slices.Concat(fromEnv, fromFlags) {
		if a.setting.name == nameConfig {
			if err := c.assign(a); err != nil {
				return Config{}, nil, err
			}
		}
	}
	var fromFile []assignment
	if c.ConfigFile != "" {
		fromFile, err = readFile(set, c.ConfigFile, c.Sources[nameConfig])
		if err != nil {
			return Config{}, nil, err
		}
	}

	// Variables set for other tools (NATS_URL, for the nats CLI) count
	// below the file: exporting one must not redirect a configured
	// process.
	layers := [][]assignment{fromFallback, fromFile, fromEnv, fromFlags}
	for _, layer := range layers {
		for _, a := range layer {
			if err := c.assign(a); err != nil {
				return Config{}, nil, err
			}
		}
	}
	c.dropOverriddenAuth(layers)
	if err := c.Validate(); err != nil {
		return Config{}, nil, err
	}
	return c, rest, nil
}

// assignment is one raw value for a setting, from one source.
type assignment struct {
	setting setting
	raw     string
	source  Source
}

// assign parses and checks a's value, so that every value given is checked,
// even one a higher-precedence source overrides.
func (c *Config) assign(a assignment) error {
	s := a.setting
	if err := s.value.set(c, a.raw); err != nil {
		return s.invalid(a.raw, a.source, err)
	}
	if err := s.check(c); err != nil {
		return s.invalid(a.raw, a.source, err)
	}
	if c.Sources == nil {
		c.Sources = map[string]Source{}
	}
	c.Sources[s.name] = a.source
	return nil
}

func parseFlags(command string, set []setting, args []string) ([]assignment, []string, error) {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	// Flags only record the raw value: it is parsed later, after the file
	// and the environment, with errors that name the setting and the flag.
	given := map[string]string{}
	for _, s := range set {
		record := func(v string) error {
			given[s.name] = v
			return nil
		}
		if s.value.toml == tomlBool {
			fs.BoolFunc(s.name, s.help, record) // --dev-allow-remote, or =false
			continue
		}
		fs.Func(s.name, s.help, record)
	}
	// Flags may come before, between or after positional arguments
	// (`run users --log-level debug`), as people type them; "--" ends
	// the flags.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, err
			}
			return nil, nil, &settingError{what: "arguments", reason: fmt.Sprintf("%v (see %s -h)", err, command)}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	var as []assignment
	for _, s := range set {
		if v, ok := given[s.name]; ok {
			as = append(as, assignment{setting: s, raw: v, source: Source{Kind: KindFlag, Name: "--" + s.name}})
		}
	}
	return as, positional, nil
}

// lookupEnv treats an empty variable as unset, as getenv cannot tell them
// apart. It returns the SWITCHBOARD_* variables and, apart, the fallback
// ones of settings that no SWITCHBOARD_* variable sets.
func lookupEnv(set []setting, getenv func(string) string) (env, fallback []assignment) {
	for _, s := range set {
		if v := getenv(s.env()); v != "" {
			env = append(env, assignment{setting: s, raw: v, source: Source{Kind: KindEnv, Name: s.env()}})
			continue
		}
		for _, name := range s.fallbackEnv {
			if v := getenv(name); v != "" {
				fallback = append(fallback, assignment{setting: s, raw: v, source: Source{Kind: KindEnv, Name: name}})
				break
			}
		}
	}
	return env, fallback
}

// authMethods are the NATS authentication methods, each its settings.
var authMethods = [][]string{{nameNATSUser, nameNATSPassword}, {nameNATSToken}, {nameNATSCreds}, {nameNATSNKey}}

// dropOverriddenAuth lets a source replace the NATS authentication method
// of a source below it: when the methods in use were set by different
// layers, only the highest layer's stays; the others go back to their
// (empty) defaults. Two methods from one layer are left for Validate to
// refuse.
func (c *Config) dropOverriddenAuth(layers [][]assignment) {
	layerOf := map[string]int{}
	for i, layer := range layers {
		for _, a := range layer {
			layerOf[a.setting.name] = i + 1
		}
	}
	top, methods := 0, map[int]int{} // the highest layer of each method
	for m, names := range authMethods {
		for _, n := range names {
			if l := layerOf[n]; l > methods[m] {
				methods[m] = l
			}
		}
		top = max(top, methods[m])
	}
	for m, l := range methods {
		if l == 0 || l == top {
			continue
		}
		for _, n := range authMethods[m] {
			for _, s := range settings() {
				if s.name == n {
					_ = s.value.set(c, "")
					c.Sources[n] = Source{Kind: KindDefault}
				}
			}
		}
	}
}

// Validate checks every setting of c, and the rules that span settings
// (cert with key, password with user, one NATS auth method, readable files).
// Load calls it; it is exported for a Config built by hand.
func (c Config) Validate() error {
	set := settings()
	for _, s := range set {
		if err := s.check(&c); err != nil {
			return s.invalid(s.value.get(&c), c.Sources[s.name], err)
		}
	}

	byName := map[string]setting{}
	for _, s := range set {
		byName[s.name] = s
	}
	isSet := func(name string) bool { return byName[name].value.get(&c) != "" }
	from := func(name string) string { return name + sourceSuffix(c.Sources[name]) }
	conflict := func(name, reason string) error {
		return &settingError{what: name, source: c.Sources[name], reason: reason}
	}

	if isSet(nameNATSCert) && !isSet(nameNATSKey) {
		return conflict(nameNATSCert, "needs "+nameNATSKey+" too: a client certificate needs its key")
	}
	if isSet(nameNATSKey) && !isSet(nameNATSCert) {
		return conflict(nameNATSKey, "needs "+nameNATSCert+" too: a client key needs its certificate")
	}
	if isSet(nameNATSPassword) && !isSet(nameNATSUser) {
		return conflict(nameNATSPassword, "needs "+nameNATSUser)
	}
	var auth []string // the first setting of each auth method in use
	for _, method := range authMethods {
		for _, name := range method {
			if isSet(name) {
				auth = append(auth, name)
				break
			}
		}
	}
	if len(auth) > 1 {
		return conflict(auth[1], fmt.Sprintf("conflicts with %s; use at most one of %s/%s, %s, %s, %s",
			from(auth[0]), nameNATSUser, nameNATSPassword, nameNATSToken, nameNATSCreds, nameNATSNKey))
	}

	switch c.Gateway.Auth {
	case "api-key":
		if !isSet(nameGatewayAPIKeys) {
			return conflict(nameGatewayAuth, "api-key needs "+nameGatewayAPIKeys)
		}
	case "jwt":
		if !isSet(nameGatewayJWTSecret) && !isSet(nameGatewayJWTPublicKey) {
			return conflict(nameGatewayAuth, "jwt needs "+nameGatewayJWTSecret+" or "+nameGatewayJWTPublicKey)
		}
	}
	if isSet(nameGatewayJWTSecret) && isSet(nameGatewayJWTPublicKey) {
		return conflict(nameGatewayJWTPublicKey, "conflicts with "+from(nameGatewayJWTSecret)+"; use one of them")
	}
	if c.Gateway.Timeout > c.Gateway.MaxTimeout {
		return conflict(nameGatewayTimeout, fmt.Sprintf("%s is more than %s %s", formatDuration(c.Gateway.Timeout), from(nameGatewayMaxTimeout), formatDuration(c.Gateway.MaxTimeout)))
	}

	// Files are checked on the effective value only: a file path that a
	// flag overrides need not exist on this machine.
	for _, s := range set {
		if !s.readable {
			continue
		}
		path := s.value.get(&c)
		if path == "" {
			continue
		}
		if err := checkReadable(path); err != nil {
			return s.invalid(path, c.Sources[s.name], err)
		}
	}
	return nil
}

func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("cannot read: %w", err)
	}
	if info.IsDir() {
		return errors.New("cannot read: is a directory")
	}
	return nil
}

// settingError is a bad value for one setting. It matches ErrInvalid and
// the underlying cause, if any.
type settingError struct {
	what     string // the setting's name, or "arguments"
	value    string // already masked
	hasValue bool
	source   Source
	reason   string
	cause    error
}

func (e *settingError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(e.what)
	if e.hasValue {
		fmt.Fprintf(&b, " %q", e.value)
	}
	b.WriteString(sourceSuffix(e.source))
	b.WriteString(": ")
	b.WriteString(e.reason)
	return b.String()
}

func (e *settingError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalid}
	}
	return []error{ErrInvalid, e.cause}
}

// sourceSuffix is " (from flag --x)", " (default)", or "" when unknown.
func sourceSuffix(s Source) string {
	switch s.Kind {
	case "":
		return ""
	case KindDefault:
		return " (default)"
	default:
		return " (from " + s.String() + ")"
	}
}
