package natsauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Keys are the nkey seeds of the identities, by user. A seed is a secret:
// Keys never prints one.
type Keys map[string][]byte

// KeyFile is the name of user's seed file in a key directory.
func KeyFile(user string) string { return user + ".nk" }

// GenerateKeys makes a fresh user nkey for each of users.
func GenerateKeys(users []string) (Keys, error) {
	k := Keys{}
	for _, u := range users {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("natsauth: nkey for %s: %w", u, err)
		}
		seed, err := kp.Seed()
		if err != nil {
			return nil, fmt.Errorf("natsauth: nkey for %s: %w", u, err)
		}
		k[u] = seed
	}
	return k, nil
}

// LoadKeys reads the seed of each of users from dir (KeyFile), creating
// the directory (0o700) and, for a user without one, a new seed file
// (0o600). A file that holds no user seed is an error naming the file,
// never its content.
func LoadKeys(dir string, users []string) (Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("natsauth: key directory: %w", err)
	}
	k := Keys{}
	for _, u := range users {
		path := filepath.Join(dir, KeyFile(u))
		seed, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			fresh, gerr := GenerateKeys([]string{u})
			if gerr != nil {
				return nil, gerr
			}
			seed = fresh[u]
			if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
				return nil, fmt.Errorf("natsauth: write %s: %w", path, err)
			}
		} else if err != nil {
			return nil, fmt.Errorf("natsauth: read %s: %w", path, err)
		}
		seed = []byte(strings.TrimSpace(string(seed)))
		if _, err := userKey(seed); err != nil {
			return nil, fmt.Errorf("natsauth: %s does not hold a user nkey seed", path)
		}
		k[u] = seed
	}
	return k, nil
}

func userKey(seed []byte) (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed(seed)
	if err != nil {
		return nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, errors.New("not a user key")
	}
	return kp, nil
}

// Public returns user's public key, the only part of it a server holds.
func (k Keys) Public(user string) (string, error) {
	seed, ok := k[user]
	if !ok {
		return "", fmt.Errorf("natsauth: no key for %s", user)
	}
	kp, err := userKey(seed)
	if err != nil {
		return "", fmt.Errorf("natsauth: key of %s: %w", user, err)
	}
	return kp.PublicKey()
}

// Write stores every seed in dir as KeyFile(user), mode 0o600.
func (k Keys) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for u, seed := range k {
		if err := os.WriteFile(filepath.Join(dir, KeyFile(u)), append(append([]byte(nil), seed...), '\n'), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ConnectOptions are the nats.go options that connect as g: its nkey and
// its inbox prefix.
func (k Keys) ConnectOptions(g Grant) ([]nats.Option, error) {
	seed, ok := k[g.User]
	if !ok {
		return nil, fmt.Errorf("natsauth: no key for %s", g.User)
	}
	kp, err := userKey(seed)
	if err != nil {
		return nil, fmt.Errorf("natsauth: key of %s: %w", g.User, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	opts := []nats.Option{nats.Nkey(pub, kp.Sign)}
	if g.inbox() != ClientInbox {
		opts = append(opts, nats.CustomInboxPrefix(g.inbox()))
	}
	return opts, nil
}

// The shapes of nats-server's configuration, written as JSON, which its
// configuration syntax accepts.
type (
	confAccount struct {
		JetStream string     `json:"jetstream"`
		Users     []confUser `json:"users"`
	}
	confUser struct {
		NKey        string    `json:"nkey"`
		Permissions confPerms `json:"permissions"`
	}
	confPerms struct {
		Publish        confSubjects `json:"publish"`
		Subscribe      confSubjects `json:"subscribe"`
		AllowResponses bool         `json:"allow_responses,omitempty"`
	}
	confSubjects struct {
		Allow []string `json:"allow"`
		Deny  []string `json:"deny,omitempty"`
	}
)

// AccountsValue is the value of the accounts block of a nats-server
// configuration for m with keys: one account, one nkey user per grant
// with the permissions Permissions derives. It is JSON, as both
// nats-server's configuration and Helm values take it.
func (m Model) AccountsValue(k Keys) (map[string]any, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	acc := confAccount{JetStream: "enabled"}
	for _, g := range m.Grants {
		pub, err := k.Public(g.User)
		if err != nil {
			return nil, err
		}
		p := m.Permissions(g.User)
		acc.Users = append(acc.Users, confUser{NKey: pub, Permissions: confPerms{
			Publish:        confSubjects{Allow: p.Publish, Deny: p.PublishDeny},
			Subscribe:      confSubjects{Allow: p.Subscribe, Deny: p.SubscribeDeny},
			AllowResponses: p.Responses,
		}})
	}
	return map[string]any{m.account(): acc}, nil
}

func (m Model) account() string {
	if m.Account == "" {
		return DefaultAccount
	}
	return m.Account
}

// Accounts renders the accounts block of a nats-server configuration for
// m with keys, preceded by a comment naming the user of each nkey.
func (m Model) Accounts(k Keys) (string, error) {
	v, err := m.AccountsValue(k)
	if err != nil {
		return "", err
	}
	data, err := marshal(v, "  ")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Account %s: one nkey user per identity (docs/security.md).\n", m.account())
	for _, g := range m.Grants {
		pub, _ := k.Public(g.User)
		fmt.Fprintf(&b, "#   %-14s %s  %s (inbox %s)\n", g.User, pub, g.Description, g.inbox())
	}
	b.WriteString("accounts: ")
	b.Write(data)
	b.WriteByte('\n')
	return b.String(), nil
}

// Server describes the rest of a production server's configuration.
type Server struct {
	// Listen is the client address (default "0.0.0.0:4222").
	Listen string
	// StoreDir is JetStream's directory (default "/data").
	StoreDir string
	// TLSCert and TLSKey, when set, make TLS required for every client.
	TLSCert, TLSKey string
	// TLSCA, when set, is the CA that client certificates must chain to:
	// clients then need a certificate as well as their nkey.
	TLSCA string
}

// ServerConfig renders a whole nats-server configuration: listener,
// JetStream, TLS and the accounts of m with keys.
func (m Model) ServerConfig(k Keys, s Server) (string, error) {
	accounts, err := m.Accounts(k)
	if err != nil {
		return "", err
	}
	if s.Listen == "" {
		s.Listen = "0.0.0.0:4222"
	}
	if s.StoreDir == "" {
		s.StoreDir = "/data"
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return "", errors.New("natsauth: a TLS certificate needs its key, and the key its certificate")
	}
	var b strings.Builder
	b.WriteString("# NATS server configuration for Switchboard, written by `switchboard nats-config`.\n")
	b.WriteString("# Nothing here is secret: the seeds stay in the *.nk files beside it.\n\n")
	fmt.Fprintf(&b, "listen: %s\n", strconv.Quote(s.Listen))
	fmt.Fprintf(&b, "jetstream: {store_dir: %s}\n", strconv.Quote(s.StoreDir))
	if s.TLSCert != "" {
		tls := map[string]any{"cert_file": s.TLSCert, "key_file": s.TLSKey, "timeout": 2}
		if s.TLSCA != "" {
			tls["ca_file"] = s.TLSCA
			tls["verify"] = true
		}
		data, err := marshal(tls, "")
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "# TLS is required: a plaintext client is refused.\ntls: %s\n", data)
	}
	b.WriteString("\n")
	b.WriteString(accounts)
	return b.String(), nil
}

// marshal is JSON without HTML escapes: nats-server's syntax knows no
// \u escapes, and subjects hold '>'.
func marshal(v any, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// HelmValues wraps an accounts value (AccountsValue) as values of the
// official NATS Helm chart, which merges config.merge into the server's
// configuration.
func HelmValues(accounts map[string]any) ([]byte, error) {
	data, err := marshal(map[string]any{"config": map[string]any{"merge": map[string]any{"accounts": accounts}}}, "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}
