// Package redact hides the secrets inside values that are shown: URLs
// with credentials in logs, errors and replies. It is the one place that
// decides how; config's printing, the NATS connection's errors and the
// webhooks' views all use it.
package redact

import (
	"net/url"
	"strings"
)

// Mask is what stands in for a secret, as url.URL.Redacted shows a
// password.
const Mask = "xxxxx"

// URL returns raw, a URL or a comma-separated list of URLs, with each
// password replaced by Mask, as url.URL.Redacted does. For the NATS
// schemes (nats, tls, ws, wss) a user name without a password is a token,
// so it is masked too. An entry that does not parse is masked whole when
// it holds an '@' (it may hold a password that cannot be found), and
// returned unchanged otherwise.
func URL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			if strings.Contains(p, "@") {
				parts[i] = Mask
			}
			continue
		}
		if u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			parts[i] = u.Redacted()
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
			if u.User.Username() != "" {
				u.User = url.User(Mask)
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}

// WebURL returns raw, an http or https URL, with its user information and
// its query replaced by Mask: either may carry a token. A URL that does
// not parse comes back as Mask.
func WebURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mask
	}
	if u.User != nil {
		u.User = url.User(Mask)
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = Mask, false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
