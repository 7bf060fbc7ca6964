package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/devloop/switchboard/redact"
)

// Describe writes every setting, one per line, as
//
//	name = value   (source)
//
// aligned, with secrets masked: a secret setting shows as xxxxx when set,
// and a password inside a URL shows as xxxxx. `switchboard config` prints
// exactly this.
func (c Config) Describe(w io.Writer) error {
	_, err := io.WriteString(w, c.String())
	return err
}

// String returns what Describe writes, so that printing a Config with %v
// never shows a secret.
func (c Config) String() string {
	type line struct{ name, value, source string }
	var (
		lines         []line
		nameW, valueW int
	)
	for _, s := range settings() {
		l := line{name: s.name, value: s.display(s.value.get(&c))}
		if src, ok := c.Sources[s.name]; ok {
			l.source = "(" + src.String() + ")"
		}
		nameW = max(nameW, len(l.name))
		valueW = max(valueW, len(l.value))
		lines = append(lines, l)
	}
	var b strings.Builder
	for _, l := range lines {
		text := fmt.Sprintf("%-*s = %-*s   %s", nameW, l.name, valueW, l.value, l.source)
		b.WriteString(strings.TrimRight(text, " "))
		b.WriteByte('\n')
	}
	return b.String()
}

// GoString is String, so that %#v does not show secrets either.
func (c Config) GoString() string {
	return c.String()
}

// LogValue makes a Config log as a group of its settings, secrets masked.
func (c Config) LogValue() slog.Value {
	set := settings()
	attrs := make([]slog.Attr, 0, len(set))
	for _, s := range set {
		attrs = append(attrs, slog.String(s.name, s.display(s.value.get(&c))))
	}
	return slog.GroupValue(attrs...)
}

// MaskURL returns raw, a URL or a comma-separated list of URLs, with each
// password (and a NATS URL's token) replaced by xxxxx: redact.URL, which
// every part of Switchboard that shows a URL uses.
func MaskURL(raw string) string { return redact.URL(raw) }
