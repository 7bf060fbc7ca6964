package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/devloop/switchboard/redact"
)

// ConnectOptions describes a connection to an external NATS server or
// cluster. Zero values are production defaults.
type ConnectOptions struct {
	// URL is one server URL or a comma-separated list.
	URL string
	// Name identifies this process in the server's connection list.
	Name string
	// InboxPrefix is the prefix of this connection's reply subjects,
	// "" for nats.go's "_INBOX". Where every NATS user may subscribe only
	// under its own prefix (docs/security.md), it names the caller of
	// every request this connection sends (see [Request.Caller]).
	InboxPrefix string
	// Logger receives connection events; nil discards.
	Logger *slog.Logger

	CredsFile string // a .creds file (JWT + nkey seed)
	NKeyFile  string // an nkey seed file
	User      string
	Password  string
	Token     string
	CAFile    string // PEM roots to verify the server
	CertFile  string // client certificate (with KeyFile)
	KeyFile   string

	// PingInterval is how often the client pings the server; after
	// MaxPingsOut unanswered pings the connection counts as broken and is
	// re-established. Defaults 2s and 3: a hung server is noticed in about
	// six seconds, not nats.go's default of minutes.
	PingInterval time.Duration
	MaxPingsOut  int

	// Extra options are applied last.
	Extra []nats.Option
}

// Connect connects with production defaults: reconnect forever with jitter,
// a short ping interval, connection events logged, and the retry of a
// failed first connection, so a service started before NATS is up waits for
// it. Connect returns once connected, or with an error when ctx ends first.
func Connect(ctx context.Context, o ConnectOptions) (*nats.Conn, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.PingInterval == 0 {
		o.PingInterval = 2 * time.Second
	}
	if o.MaxPingsOut == 0 {
		o.MaxPingsOut = 3
	}
	connected := make(chan struct{}, 1)
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.PingInterval(o.PingInterval),
		nats.MaxPingsOutstanding(o.MaxPingsOut),
		nats.Timeout(5 * time.Second),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(func(nc *nats.Conn) {
			logger.Info("nats connected", slog.String("url", nc.ConnectedUrlRedacted()))
			select {
			case connected <- struct{}{}:
			default:
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", slog.String("error", err.Error()))
			} else {
				logger.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", slog.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			logger.Warn("nats reconnect failed", slog.String("error", err.Error()))
		}),
		nats.ClosedHandler(func(*nats.Conn) { logger.Info("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{slog.String("error", err.Error())}
			if sub != nil {
				attrs = append(attrs, slog.String("subject", sub.Subject))
			}
			logger.Warn("nats async error", attrs...)
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats nkey %s: %w", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	opts = append(opts, o.Extra...)

	// The URL may carry a password or a token: only its masked form is
	// ever shown.
	shown := redact.URL(o.URL)
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", shown, err)
	}
	if nc.IsConnected() {
		return nc, nil
	}
	logger.Warn("nats not reachable yet; retrying", slog.String("url", shown))
	select {
	case <-connected:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("nats connect %s: %w", shown, ctx.Err())
	}
}
