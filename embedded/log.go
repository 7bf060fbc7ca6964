package embedded

import (
	"context"
	"fmt"
	"log/slog"
)

// fatal is a message nats-server gave to Fatalf, with the first error among
// its arguments (the listen or JetStream error, if any).
type fatal struct {
	msg string
	err error
}

// logAdapter is the server.Logger handed to nats-server. Its Fatalf never
// exits: nats-server's own loggers call os.Exit there, which would take the
// whole dev process (or test binary) down on a busy port. Instead the first
// fatals are queued for Start to return.
type logAdapter struct {
	logger *slog.Logger
	fatals chan fatal
}

func newLogAdapter(logger *slog.Logger) *logAdapter {
	return &logAdapter{
		logger: logger.With(slog.String("component", "nats-server")),
		// Start reads one; a few more only matter for the log.
		fatals: make(chan fatal, 4),
	}
}

func (l *logAdapter) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	l.logger.Log(ctx, level, fmt.Sprintf(format, args...))
}

func (l *logAdapter) Noticef(format string, v ...any) { l.log(slog.LevelInfo, format, v) }
func (l *logAdapter) Warnf(format string, v ...any)   { l.log(slog.LevelWarn, format, v) }
func (l *logAdapter) Errorf(format string, v ...any)  { l.log(slog.LevelError, format, v) }
func (l *logAdapter) Debugf(format string, v ...any)  { l.log(slog.LevelDebug, format, v) }
func (l *logAdapter) Tracef(format string, v ...any)  { l.log(slog.LevelDebug, format, v) }

func (l *logAdapter) Fatalf(format string, v ...any) {
	l.log(slog.LevelError, format, v)
	f := fatal{msg: fmt.Sprintf(format, v...)}
	for _, a := range v {
		if err, ok := a.(error); ok {
			f.err = err
			break
		}
	}
	select {
	case l.fatals <- f:
	default: // Start has what it needs; the line is logged above.
	}
}
