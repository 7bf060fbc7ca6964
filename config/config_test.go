package config_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/devloop/switchboard/config"
)

// fakeEnv returns a getenv reading from m.
func fakeEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to name in a fresh temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// load calls config.Load with givenFile, if not empty, written to a
// temporary file named by --config in front of args. It returns the file's
// path too.
func load(t *testing.T, givenArgs []string, givenEnv map[string]string, givenFile string) (config.Config, []string, string, error) {
	t.Helper()
	var path string
	if givenFile != "" {
		path = writeFile(t, "switchboard.toml", givenFile)
		givenArgs = append([]string{"--config", path}, givenArgs...)
	}
	c, rest, err := config.Load("switchboard test", givenArgs, fakeEnv(givenEnv))
	return c, rest, path, err
}

func TestLoadPrecedence(t *testing.T) {
	const fileURL = `nats-url = "nats://file:4222"`
	tests := []struct {
		name       string
		givenArgs  []string
		givenEnv   map[string]string
		givenFile  string
		setting    string
		got        func(config.Config) any
		want       any
		wantSource config.Source // a file source's Name is filled in with the file's path
	}{
		{
			name:    "nats-url default",
			setting: "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://127.0.0.1:4222", wantSource: config.Source{Kind: config.KindDefault},
		},
		{
			name:      "nats-url file over default",
			givenFile: fileURL,
			setting:   "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://file:4222", wantSource: config.Source{Kind: config.KindFile},
		},
		{
			// NATS_URL is exported for the nats CLI: it must not
			// redirect a process whose file names its NATS.
			name:      "file over NATS_URL",
			givenEnv:  map[string]string{"NATS_URL": "nats://std:4222"},
			givenFile: fileURL,
			setting:   "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://file:4222", wantSource: config.Source{Kind: config.KindFile},
		},
		{
			name:     "NATS_URL over default",
			givenEnv: map[string]string{"NATS_URL": "nats://std:4222"},
			setting:  "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://std:4222", wantSource: config.Source{Kind: config.KindEnv, Name: "NATS_URL"},
		},
		{
			name:      "SWITCHBOARD_NATS_URL over file",
			givenEnv:  map[string]string{"NATS_URL": "nats://std:4222", "SWITCHBOARD_NATS_URL": "nats://ours:4222"},
			givenFile: fileURL,
			setting:   "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://ours:4222", wantSource: config.Source{Kind: config.KindEnv, Name: "SWITCHBOARD_NATS_URL"},
		},
		{
			name:      "SWITCHBOARD_NATS_URL over NATS_URL",
			givenEnv:  map[string]string{"NATS_URL": "nats://std:4222", "SWITCHBOARD_NATS_URL": "nats://ours:4222"},
			givenFile: fileURL,
			setting:   "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://ours:4222", wantSource: config.Source{Kind: config.KindEnv, Name: "SWITCHBOARD_NATS_URL"},
		},
		{
			name:      "flag over both env vars and file",
			givenArgs: []string{"--nats-url", "nats://flag:4222"},
			givenEnv:  map[string]string{"NATS_URL": "nats://std:4222", "SWITCHBOARD_NATS_URL": "nats://ours:4222"},
			givenFile: fileURL,
			setting:   "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://flag:4222", wantSource: config.Source{Kind: config.KindFlag, Name: "--nats-url"},
		},
		{
			name:      "single-dash flag with =",
			givenArgs: []string{"-nats-url=nats://a:1,nats://b:2"},
			setting:   "nats-url", got: func(c config.Config) any { return c.NATS.URL },
			want: "nats://a:1,nats://b:2", wantSource: config.Source{Kind: config.KindFlag, Name: "--nats-url"},
		},
		{
			name:      "last of a repeated flag wins",
			givenArgs: []string{"--log-level", "debug", "--log-level=error"},
			setting:   "log-level", got: func(c config.Config) any { return c.Log.Level },
			want: "error", wantSource: config.Source{Kind: config.KindFlag, Name: "--log-level"},
		},
		{
			name:      "http-listen env over file",
			givenEnv:  map[string]string{"SWITCHBOARD_HTTP_LISTEN": ":9000"},
			givenFile: `http-listen = "0.0.0.0:8000"`,
			setting:   "http-listen", got: func(c config.Config) any { return c.HTTPListen },
			want: ":9000", wantSource: config.Source{Kind: config.KindEnv, Name: "SWITCHBOARD_HTTP_LISTEN"},
		},
		{
			name:      "http-listen flag over env",
			givenArgs: []string{"--http-listen", "[::1]:0"},
			givenEnv:  map[string]string{"SWITCHBOARD_HTTP_LISTEN": ":9000"},
			setting:   "http-listen", got: func(c config.Config) any { return c.HTTPListen },
			want: "[::1]:0", wantSource: config.Source{Kind: config.KindFlag, Name: "--http-listen"},
		},
		{
			name:      "request-timeout from file",
			givenFile: `request-timeout = "750ms"`,
			setting:   "request-timeout", got: func(c config.Config) any { return c.RequestTimeout },
			want: 750 * time.Millisecond, wantSource: config.Source{Kind: config.KindFile},
		},
		{
			name:      "request-timeout env over file",
			givenEnv:  map[string]string{"SWITCHBOARD_REQUEST_TIMEOUT": "2s"},
			givenFile: `request-timeout = "750ms"`,
			setting:   "request-timeout", got: func(c config.Config) any { return c.RequestTimeout },
			want: 2 * time.Second, wantSource: config.Source{Kind: config.KindEnv, Name: "SWITCHBOARD_REQUEST_TIMEOUT"},
		},
		{
			name:      "redis-pool-size integer from file",
			givenFile: `redis-pool-size = 20`,
			setting:   "redis-pool-size", got: func(c config.Config) any { return c.Redis.PoolSize },
			want: 20, wantSource: config.Source{Kind: config.KindFile},
		},
		{
			name:      "redis-pool-size flag over env",
			givenArgs: []string{"--redis-pool-size", "30"},
			givenEnv:  map[string]string{"SWITCHBOARD_REDIS_POOL_SIZE": "10"},
			setting:   "redis-pool-size", got: func(c config.Config) any { return c.Redis.PoolSize },
			want: 30, wantSource: config.Source{Kind: config.KindFlag, Name: "--redis-pool-size"},
		},
		{
			name:      "cache-ttl from file",
			givenFile: `cache-ttl = "1h"`,
			setting:   "cache-ttl", got: func(c config.Config) any { return c.Cache.TTL },
			want: time.Hour, wantSource: config.Source{Kind: config.KindFile},
		},
		{
			name:     "empty env var counts as unset",
			givenEnv: map[string]string{"SWITCHBOARD_LOG_FORMAT": ""},
			setting:  "log-format", got: func(c config.Config) any { return c.Log.Format },
			want: "text", wantSource: config.Source{Kind: config.KindDefault},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, path, err := load(t, tt.givenArgs, tt.givenEnv, tt.givenFile)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := tt.got(c); got != tt.want {
				t.Errorf("%s = %v, want %v", tt.setting, got, tt.want)
			}
			wantSource := tt.wantSource
			if wantSource.Kind == config.KindFile {
				wantSource.Name = path
			}
			if got := c.Sources[tt.setting]; got != wantSource {
				t.Errorf("Sources[%q] = %v, want %v", tt.setting, got, wantSource)
			}
		})
	}
}

// TestAuthMethodReplacedByHigherSource: a method given by env or a flag
// replaces the file's, instead of conflicting with it.
func TestAuthMethodReplacedByHigherSource(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "u.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, _, err := load(t, nil, map[string]string{"SWITCHBOARD_NATS_TOKEN": "s3cret-token"}, fmt.Sprintf("nats-creds = %q\nnats-user = \"u\"\nnats-password = \"p\"\n", creds))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.NATS.Token != "s3cret-token" || c.NATS.CredsFile != "" || c.NATS.User != "" || c.NATS.Password != "" {
		t.Errorf("NATS auth = token %q, creds %q, user %q, password %q; want only the token", c.NATS.Token, c.NATS.CredsFile, c.NATS.User, c.NATS.Password)
	}
	if got := c.Sources["nats-creds"]; got.Kind != config.KindDefault {
		t.Errorf("Sources[nats-creds] = %v, want default", got)
	}
}

func TestLoadConfigFileFromEnvAndFlag(t *testing.T) {
	fromEnv := writeFile(t, "env.toml", `log-level = "warn"`)
	fromFlag := writeFile(t, "flag.toml", `log-level = "error"`)
	tests := []struct {
		name      string
		givenArgs []string
		givenEnv  map[string]string
		wantLevel string
		wantFile  config.Source
	}{
		{
			name:      "SWITCHBOARD_CONFIG names the file",
			givenEnv:  map[string]string{"SWITCHBOARD_CONFIG": fromEnv},
			wantLevel: "warn",
			wantFile:  config.Source{Kind: config.KindEnv, Name: "SWITCHBOARD_CONFIG"},
		},
		{
			name:      "--config wins, and the env file is not read",
			givenArgs: []string{"--config", fromFlag},
			givenEnv:  map[string]string{"SWITCHBOARD_CONFIG": filepath.Join(t.TempDir(), "missing.toml")},
			wantLevel: "error",
			wantFile:  config.Source{Kind: config.KindFlag, Name: "--config"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := config.Load("switchboard test", tt.givenArgs, fakeEnv(tt.givenEnv))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Log.Level != tt.wantLevel {
				t.Errorf("Log.Level = %q, want %q", c.Log.Level, tt.wantLevel)
			}
			if got := c.Sources["config"]; got != tt.wantFile {
				t.Errorf(`Sources["config"] = %v, want %v`, got, tt.wantFile)
			}
		})
	}
}

func TestLoadRecordsEverySource(t *testing.T) {
	c, _, path, err := load(t,
		[]string{"--log-format", "json"},
		map[string]string{"SWITCHBOARD_LOG_LEVEL": "debug"},
		`cache-ttl = "1m"`)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := map[string]config.Source{
		"config":     {Kind: config.KindFlag, Name: "--config"},
		"cache-ttl":  {Kind: config.KindFile, Name: path},
		"log-level":  {Kind: config.KindEnv, Name: "SWITCHBOARD_LOG_LEVEL"},
		"log-format": {Kind: config.KindFlag, Name: "--log-format"},
	}
	var buf bytes.Buffer
	if err := c.Describe(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(c.Sources) != len(lines) {
		t.Errorf("len(Sources) = %d, want one per setting (%d)", len(c.Sources), len(lines))
	}
	for name, src := range c.Sources {
		wantSrc, ok := want[name]
		if !ok {
			wantSrc = config.Source{Kind: config.KindDefault}
		}
		if src != wantSrc {
			t.Errorf("Sources[%q] = %v, want %v", name, src, wantSrc)
		}
	}
}

func TestLoadInvalid(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	creds := writeFile(t, "user.creds", "creds")
	nkey := writeFile(t, "user.nk", "seed")
	cert := writeFile(t, "cert.pem", "cert")
	tests := []struct {
		name      string
		givenArgs []string
		givenEnv  map[string]string
		givenFile string // TOML written to a file named by --config
		wantIn    []string
		wantIs    error // besides config.ErrInvalid
	}{
		{
			name:      "unknown flag",
			givenArgs: []string{"--nats-ulr", "nats://x"},
			wantIn:    []string{"invalid arguments: flag provided but not defined: -nats-ulr"},
		},
		{
			name:      "flag without value",
			givenArgs: []string{"--nats-url"},
			wantIn:    []string{"-nats-url"},
		},
		{
			name:      "malformed duration from flag",
			givenArgs: []string{"--request-timeout", "5"},
			wantIn:    []string{`invalid request-timeout "5" (from flag --request-timeout)`, "duration"},
		},
		{
			name:     "malformed duration from env",
			givenEnv: map[string]string{"SWITCHBOARD_SHUTDOWN_TIMEOUT": "soon"},
			wantIn:   []string{`invalid shutdown-timeout "soon" (from env SWITCHBOARD_SHUTDOWN_TIMEOUT)`},
		},
		{
			name:      "zero duration",
			givenArgs: []string{"--cache-ttl", "0s"},
			wantIn:    []string{"cache-ttl", "greater than 0"},
		},
		{
			name:      "negative duration",
			givenArgs: []string{"--redis-timeout=-1s"},
			wantIn:    []string{"redis-timeout", "greater than 0"},
		},
		{
			name:      "duration too long",
			givenFile: `shutdown-timeout = "11m"`,
			wantIn:    []string{"shutdown-timeout", "at most 10m"},
		},
		{
			name:      "port out of range from flag",
			givenArgs: []string{"--http-listen", "127.0.0.1:70000"},
			wantIn:    []string{`invalid http-listen "127.0.0.1:70000" (from flag --http-listen): port must be 0–65535`},
		},
		{
			name:     "port out of range from env",
			givenEnv: map[string]string{"SWITCHBOARD_NATS_LISTEN": ":65536"},
			wantIn:   []string{`invalid nats-listen ":65536" (from env SWITCHBOARD_NATS_LISTEN): port must be 0–65535`},
		},
		{
			name:      "port out of range from file",
			givenFile: "http-listen = \"127.0.0.1:-1\"\n",
			wantIn:    []string{`invalid http-listen "127.0.0.1:-1" (from file `, "port must be 0–65535"},
		},
		{
			name:      "listen address without port",
			givenArgs: []string{"--http-listen", "localhost"},
			wantIn:    []string{"http-listen", "host:port"},
		},
		{
			name:      "port out of range is an error even when overridden",
			givenArgs: []string{"--http-listen", ":8080"},
			givenFile: `http-listen = ":99999"`,
			wantIn:    []string{"http-listen", "(from file "},
		},
		{
			name:      "bad log level",
			givenArgs: []string{"--log-level", "verbose"},
			wantIn:    []string{`invalid log-level "verbose"`, "debug, info, warn, error"},
		},
		{
			name:     "bad log format",
			givenEnv: map[string]string{"SWITCHBOARD_LOG_FORMAT": "xml"},
			wantIn:   []string{`invalid log-format "xml"`, "text, json"},
		},
		{
			name:      "redis-pool-size not a number",
			givenArgs: []string{"--redis-pool-size", "many"},
			wantIn:    []string{"redis-pool-size", "integer"},
		},
		{
			name:      "redis-pool-size too large",
			givenFile: `redis-pool-size = 10001`,
			wantIn:    []string{"redis-pool-size", "0–10000"},
		},
		{
			name:      "empty data-dir",
			givenArgs: []string{"--data-dir="},
			wantIn:    []string{"data-dir", "must not be empty"},
		},
		{
			name:      "bad nats-url scheme",
			givenArgs: []string{"--nats-url", "http://127.0.0.1:4222"},
			wantIn:    []string{"nats-url", "nats, tls, ws, wss"},
		},
		{
			name:     "bad scheme in second nats-url of a list, from NATS_URL",
			givenEnv: map[string]string{"NATS_URL": "nats://a:4222,127.0.0.1:4222"},
			wantIn:   []string{"nats-url", "(from env NATS_URL): URL 2 of 2: not a URL"},
		},
		{
			name:      "nats-url without host",
			givenArgs: []string{"--nats-url", "nats://:4222"},
			wantIn:    []string{"nats-url", "host"},
		},
		{
			name:      "empty nats-url",
			givenArgs: []string{"--nats-url", ""},
			wantIn:    []string{"nats-url", "must not be empty"},
		},
		{
			name:      "bad redis-url scheme",
			givenFile: `redis-url = "http://cache:6379"`,
			wantIn:    []string{"redis-url", "redis, rediss"},
		},
		{
			name:      "missing config file",
			givenArgs: []string{"--config", missing},
			wantIn:    []string{"invalid config", missing, "(from flag --config)"},
			wantIs:    fs.ErrNotExist,
		},
		{
			name:     "unreadable config file (a directory)",
			givenEnv: map[string]string{"SWITCHBOARD_CONFIG": dir},
			wantIn:   []string{"invalid config", "(from env SWITCHBOARD_CONFIG)", "cannot read"},
		},
		{
			name:      "malformed TOML",
			givenFile: "log-level = \"debug\"\nlog-format = \n",
			wantIn:    []string{"invalid config", "line 2"},
		},
		{
			name:      "unknown key in file",
			givenFile: "log-level = \"debug\"\nnats_url = \"nats://x:4222\"\n",
			wantIn:    []string{`unknown key "nats_url" (did you mean "nats-url"?)`, "switchboard.toml", "valid keys: cache-budget, cache-entries, cache-ttl, data-dir,"},
		},
		{
			name:      "nested table in file",
			givenFile: "[nats]\nurl = \"nats://x:4222\"\n",
			wantIn:    []string{`unknown key "nats"`},
		},
		{
			name:      "config is not a file key",
			givenFile: `config = "other.toml"`,
			wantIn:    []string{`unknown key "config"`},
		},
		{
			name:      "number for a string in file",
			givenFile: "log-level = \"info\"\nnats-url = 4222\n",
			wantIn:    []string{"invalid nats-url (from file ", "line 2", "want a TOML string, got integer"},
		},
		{
			name:      "number for a duration in file",
			givenFile: `request-timeout = 5`,
			wantIn:    []string{"request-timeout", `e.g. request-timeout = "5s"`},
		},
		{
			name:      "string for an integer in file",
			givenFile: `redis-pool-size = "10"`,
			wantIn:    []string{"redis-pool-size", "want a TOML integer, got string"},
		},
		{
			name:      "cert without key",
			givenArgs: []string{"--nats-cert", cert},
			wantIn:    []string{"invalid nats-cert (from flag --nats-cert): needs nats-key"},
		},
		{
			name:     "key without cert",
			givenEnv: map[string]string{"SWITCHBOARD_NATS_KEY": cert},
			wantIn:   []string{"invalid nats-key (from env SWITCHBOARD_NATS_KEY): needs nats-cert"},
		},
		{
			name:     "password without user",
			givenEnv: map[string]string{"SWITCHBOARD_NATS_PASSWORD": "pw"},
			wantIn:   []string{"invalid nats-password (from env SWITCHBOARD_NATS_PASSWORD): needs nats-user"},
		},
		{
			name:      "user and token",
			givenArgs: []string{"--nats-user", "ada", "--nats-token", "tok"},
			wantIn:    []string{"invalid nats-token (from flag --nats-token): conflicts with nats-user (from flag --nats-user)", "at most one"},
		},
		{
			name:      "creds and nkey",
			givenArgs: []string{"--nats-nkey", nkey, "--nats-creds", creds},
			wantIn:    []string{"invalid nats-nkey (from flag --nats-nkey): conflicts with nats-creds (from flag --nats-creds)"},
		},
		{
			name:      "unreadable creds file",
			givenArgs: []string{"--nats-creds", missing},
			wantIn:    []string{"invalid nats-creds", missing, "cannot read"},
			wantIs:    fs.ErrNotExist,
		},
		{
			name:     "creds path is a directory",
			givenEnv: map[string]string{"SWITCHBOARD_NATS_CREDS": dir},
			wantIn:   []string{"invalid nats-creds", "is a directory"},
		},
		{
			name:      "unreadable CA file from file",
			givenFile: fmt.Sprintf("nats-ca = %q\n", missing),
			wantIn:    []string{"invalid nats-ca", "(from file "},
			wantIs:    fs.ErrNotExist,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := load(t, tt.givenArgs, tt.givenEnv, tt.givenFile)
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Load error = %v, want config.ErrInvalid", err)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Load error = %v, want it to match %v", err, tt.wantIs)
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Load error = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		t.Run(arg, func(t *testing.T) {
			_, _, err := config.Load("switchboard test", []string{"--log-level", "debug", arg}, fakeEnv(nil))
			if !errors.Is(err, flag.ErrHelp) {
				t.Errorf("Load(%s) error = %v, want flag.ErrHelp", arg, err)
			}
			if errors.Is(err, config.ErrInvalid) {
				t.Errorf("Load(%s) error matches ErrInvalid; help is not a bad value", arg)
			}
		})
	}
}

func TestLoadReturnsPositionalArgs(t *testing.T) {
	tests := []struct {
		name      string
		givenArgs []string
		wantRest  []string
	}{
		{name: "none", givenArgs: nil, wantRest: []string{}},
		{name: "only positional", givenArgs: []string{"users", "get"}, wantRest: []string{"users", "get"}},
		{name: "after flags", givenArgs: []string{"--log-level", "warn", "users", "orders"}, wantRest: []string{"users", "orders"}},
		{name: "an unknown flag after them is still an error", givenArgs: []string{"users", "--id", "7"}, wantRest: nil},
		{name: "after --", givenArgs: []string{"--", "--log-level"}, wantRest: []string{"--log-level"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rest, err := config.Load("switchboard test", tt.givenArgs, fakeEnv(nil))
			if tt.wantRest == nil {
				if !errors.Is(err, config.ErrInvalid) {
					t.Fatalf("Load = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !slices.Equal(rest, tt.wantRest) {
				t.Errorf("rest = %q, want %q", rest, tt.wantRest)
			}
		})
	}
}

func TestSecretsAreMasked(t *testing.T) {
	const secret = "s3cr3t-Zq9"
	nkey := writeFile(t, "user.nk", "seed")
	tests := []struct {
		name      string
		givenArgs []string
		givenEnv  map[string]string
	}{
		{
			name:      "password",
			givenArgs: []string{"--nats-user", "ada", "--nats-password", secret},
		},
		{
			name:     "token",
			givenEnv: map[string]string{"SWITCHBOARD_NATS_TOKEN": secret},
		},
		{
			name:      "password in nats-url list",
			givenArgs: []string{"--nats-url", "nats://a:4222, nats://ada:" + secret + "@b:4222"},
		},
		{
			name:     "token as user of nats-url",
			givenEnv: map[string]string{"NATS_URL": "tls://" + secret + "@b:4222"},
		},
		{
			name:      "password in redis-url",
			givenArgs: []string{"--redis-url", "rediss://default:" + secret + "@cache:6380/1", "--nats-nkey", nkey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := config.Load("switchboard test", tt.givenArgs, fakeEnv(tt.givenEnv))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			var described, jsonLog, textLog bytes.Buffer
			if err := c.Describe(&described); err != nil {
				t.Fatal(err)
			}
			slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("loaded", "config", c)
			slog.New(slog.NewTextHandler(&textLog, nil)).Info("loaded", slog.Any("config", c))
			outputs := map[string]string{
				"Describe":     described.String(),
				"String":       c.String(),
				"%v":           fmt.Sprintf("%v", c),
				"%+v":          fmt.Sprintf("%+v", c),
				"%#v":          fmt.Sprintf("%#v", c),
				"slog JSON":    jsonLog.String(),
				"slog text":    textLog.String(),
				"Validate err": fmt.Sprint(c.Validate()),
			}
			for what, out := range outputs {
				if strings.Contains(out, secret) {
					t.Errorf("%s shows the secret:\n%s", what, out)
				}
				if what != "Validate err" && !strings.Contains(out, "xxxxx") {
					t.Errorf("%s does not show the mask xxxxx:\n%s", what, out)
				}
			}
		})
	}
}

func TestErrorsDoNotShowSecrets(t *testing.T) {
	const secret = "s3cr3t-Zq9"
	tests := []struct {
		name      string
		givenArgs []string
	}{
		{name: "bad redis scheme", givenArgs: []string{"--redis-url", "http://u:" + secret + "@cache:6379"}},
		{name: "bad nats port", givenArgs: []string{"--nats-url", "nats://u:" + secret + "@b:99999"}},
		{name: "unparsable nats-url", givenArgs: []string{"--nats-url", "nats://u:" + secret + "%zz@b:4222"}},
		{name: "password without user", givenArgs: []string{"--nats-password", secret}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := config.Load("switchboard test", tt.givenArgs, fakeEnv(nil))
			if !errors.Is(err, config.ErrInvalid) {
				t.Fatalf("Load error = %v, want config.ErrInvalid", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct {
		name  string
		given string
		want  string
	}{
		{name: "no user", given: "nats://h:4222", want: "nats://h:4222"},
		{name: "password", given: "nats://ada:pw@h:4222", want: "nats://ada:xxxxx@h:4222"},
		{name: "NATS token as user", given: "nats://tok@h:4222", want: "nats://xxxxx@h:4222"},
		{name: "redis user is not a secret", given: "redis://ada@h:6379", want: "redis://ada@h:6379"},
		{name: "redis password only", given: "redis://:pw@h:6379/0", want: "redis://:xxxxx@h:6379/0"},
		{name: "list", given: "nats://a:1, wss://ada:pw@b:443", want: "nats://a:1,wss://ada:xxxxx@b:443"},
		{name: "empty", given: "", want: ""},
		{name: "unparsable with an @ is masked whole", given: "nats://a:%zz@h", want: "xxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := config.MaskURL(tt.given); got != tt.want {
				t.Errorf("MaskURL(%q) = %q, want %q", tt.given, got, tt.want)
			}
		})
	}
}

func TestDefaultDataDir(t *testing.T) {
	tests := []struct {
		name     string
		givenEnv map[string]string
		want     string
	}{
		{
			name:     "XDG_DATA_HOME",
			givenEnv: map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/home/ada"},
			want:     filepath.Join("/xdg", "switchboard"),
		},
		{
			name:     "HOME without XDG_DATA_HOME",
			givenEnv: map[string]string{"HOME": "/home/ada"},
			want:     filepath.Join("/home/ada", ".local", "share", "switchboard"),
		},
		{
			name:     "neither",
			givenEnv: nil,
			want:     filepath.Join(os.TempDir(), "switchboard"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := config.Default(fakeEnv(tt.givenEnv)).DataDir; got != tt.want {
				t.Errorf("Default().DataDir = %q, want %q", got, tt.want)
			}
			c, _, err := config.Load("switchboard test", nil, fakeEnv(tt.givenEnv))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.DataDir != tt.want {
				t.Errorf("Load().DataDir = %q, want %q", c.DataDir, tt.want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	c := config.Default(nil)
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	want := config.Config{
		NATS:            config.NATS{URL: "nats://127.0.0.1:4222", Listen: "127.0.0.1:4222"},
		Redis:           config.Redis{Timeout: 50 * time.Millisecond},
		Cache:           config.Cache{TTL: 5 * time.Minute, Budget: 50 * time.Millisecond, Entries: 50000},
		Log:             config.Log{Level: "info", Format: "text"},
		DataDir:         filepath.Join(os.TempDir(), "switchboard"),
		HTTPListen:      "127.0.0.1:8080",
		RequestTimeout:  5 * time.Second,
		ShutdownTimeout: 15 * time.Second,
	}
	got := c
	got.Sources = nil
	if got.NATS != want.NATS || got.Redis != want.Redis || got.Cache != want.Cache || got.Log != want.Log ||
		got.ConfigFile != want.ConfigFile || got.DataDir != want.DataDir || got.HTTPListen != want.HTTPListen ||
		got.RequestTimeout != want.RequestTimeout || got.ShutdownTimeout != want.ShutdownTimeout {
		t.Errorf("Default() =\n%s\nwant\n%s", got, want)
	}
}

func TestValidateHandBuilt(t *testing.T) {
	tests := []struct {
		name    string
		given   func(*config.Config)
		wantErr error
		wantIn  string
	}{
		{name: "defaults", given: func(*config.Config) {}},
		{
			name:    "zero request timeout",
			given:   func(c *config.Config) { c.RequestTimeout = 0 },
			wantErr: config.ErrInvalid,
			wantIn:  `invalid request-timeout "0s": must be greater than 0`,
		},
		{
			name:    "bad log level",
			given:   func(c *config.Config) { c.Log.Level = "trace" },
			wantErr: config.ErrInvalid,
			wantIn:  `invalid log-level "trace": must be one of debug, info, warn, error`,
		},
		{
			name:    "key without cert",
			given:   func(c *config.Config) { c.NATS.KeyFile = "key.pem" },
			wantErr: config.ErrInvalid,
			wantIn:  "invalid nats-key: needs nats-cert",
		},
		{
			name:    "zero value",
			given:   func(c *config.Config) { *c = config.Config{} },
			wantErr: config.ErrInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default(nil)
			c.Sources = nil
			tt.given(&c)
			err := c.Validate()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
			if tt.wantIn != "" && !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantIn)
			}
		})
	}
}

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		given string
		want  slog.Level
	}{
		{given: "debug", want: slog.LevelDebug},
		{given: "info", want: slog.LevelInfo},
		{given: "warn", want: slog.LevelWarn},
		{given: "error", want: slog.LevelError},
		{given: "", want: slog.LevelInfo},
	}
	for _, tt := range tests {
		if got := (config.Log{Level: tt.given}).SlogLevel(); got != tt.want {
			t.Errorf("Log{Level: %q}.SlogLevel() = %v, want %v", tt.given, got, tt.want)
		}
	}
}

func TestSourceString(t *testing.T) {
	tests := []struct {
		given config.Source
		want  string
	}{
		{given: config.Source{Kind: config.KindDefault}, want: "default"},
		{given: config.Source{Kind: config.KindFlag, Name: "--nats-url"}, want: "flag --nats-url"},
		{given: config.Source{Kind: config.KindEnv, Name: "NATS_URL"}, want: "env NATS_URL"},
		{given: config.Source{Kind: config.KindFile, Name: "/etc/sb.toml"}, want: "file /etc/sb.toml"},
	}
	for _, tt := range tests {
		if got := tt.given.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.given, got, tt.want)
		}
	}
}

func TestUsageListsEverySetting(t *testing.T) {
	var usage bytes.Buffer
	config.Usage(&usage, "switchboard dev")
	var described bytes.Buffer
	if err := config.Default(nil).Describe(&described); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(usage.String(), "Usage: switchboard dev ") {
		t.Errorf("usage does not start with the command:\n%s", usage.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(described.String()), "\n") {
		name := strings.Fields(line)[0]
		env := "SWITCHBOARD_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		for _, want := range []string{"--" + name + " ", env} {
			if !strings.Contains(usage.String(), want) {
				t.Errorf("usage does not mention %q", want)
			}
		}
	}
}

func TestLoadFlagsAnywhere(t *testing.T) {
	tests := []struct {
		name           string
		givenArgs      []string
		wantPositional []string
		wantLevel      string
	}{
		{name: "flags first", givenArgs: []string{"--log-level", "debug", "users", "orders"}, wantPositional: []string{"users", "orders"}, wantLevel: "debug"},
		{name: "flags last", givenArgs: []string{"users", "orders", "--log-level", "warn"}, wantPositional: []string{"users", "orders"}, wantLevel: "warn"},
		{name: "flags between", givenArgs: []string{"users", "-log-level=error", "orders"}, wantPositional: []string{"users", "orders"}, wantLevel: "error"},
		{name: "double dash ends flags", givenArgs: []string{"users", "--", "--log-level", "debug"}, wantPositional: []string{"users", "--log-level", "debug"}, wantLevel: "info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, pos, err := config.Load("switchboard run", tt.givenArgs, func(string) string { return "" })
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(pos) != fmt.Sprint(tt.wantPositional) || cfg.Log.Level != tt.wantLevel {
				t.Fatalf("positional=%q level=%q, want %q %q", pos, cfg.Log.Level, tt.wantPositional, tt.wantLevel)
			}
		})
	}
}
