package main

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"golang.org/x/term"

	"github.com/devloop/switchboard/config"
)

// newLogger returns a JSON logger, or tint's coloured text when w is a
// terminal (plain text otherwise, so files and pipes get no escape codes).
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	level := cfg.SlogLevel()
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	return slog.New(tint.NewHandler(w, &tint.Options{
		Level:      level,
		TimeFormat: time.TimeOnly,
		NoColor:    !isTerminal(w),
	}))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
