package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/devloop/switchboard/config"
	"github.com/devloop/switchboard/services/projector"
)

// exitError carries the process exit status for main.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// usageError is an error in how switchboard was called: exit status 2.
func usageError(format string, args ...any) error {
	return exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// errInterrupted is returned when a second signal cuts shutdown short.
var errInterrupted = exitError{code: 130, err: errors.New("interrupted again during shutdown: exiting at once")}

const usage = `switchboard: Go microservices over NATS.

Usage:
  switchboard dev [flags]               run every service on an embedded NATS server
  switchboard run [flags] SERVICE...    run the named services against --nats-url
  switchboard projector rebuild [flags] [PROJECTION...]
                                        replay streams into fresh projector tables and switch over
  switchboard config [flags]            print the effective configuration and its sources
  switchboard nats-config --out DIR     write the production NATS configuration and nkeys
  switchboard version                   print the version
  switchboard COMMAND --help            flags of a command

Services: %s
`

// run is the whole program; main only maps its error to an exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprintf(stderr, usage, strings.Join(knownServices(), ", "))
		return usageError("no command given")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "-h", "--help", "help":
		fmt.Fprintf(stdout, usage, strings.Join(knownServices(), ", "))
		return nil
	case "version", "--version":
		fmt.Fprintf(stdout, "switchboard %s (%s, %s/%s)\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "nats-config":
		return natsConfigCommand(rest, stdout)
	case "dev", "run", "config", "projector":
	default:
		fmt.Fprintf(stderr, usage, strings.Join(knownServices(), ", "))
		return usageError("unknown command %q", cmd)
	}

	cfg, positional, err := config.Load("switchboard "+cmd, rest, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "%s\n\n", commandHelp(cmd))
		config.Usage(stdout, "switchboard "+cmd)
		return nil
	}
	if err != nil {
		return exitError{code: 2, err: err}
	}

	switch cmd {
	case "config":
		if len(positional) > 0 {
			return usageError("config takes no arguments, got %q", positional)
		}
		return cfg.Describe(stdout)
	case "dev":
		if len(positional) > 0 {
			return usageError("dev runs every service and takes no arguments, got %q (use run to choose services)", positional)
		}
		return serve(ctx, cfg, modeDev, devServices(cfg), getenv, stdout, stderr)
	case "projector":
		return projectorCommand(ctx, cfg, positional, stdout, stderr)
	default: // run
		if len(positional) == 0 {
			return usageError("run needs at least one service; known services: %s", strings.Join(knownServices(), ", "))
		}
		names, err := selectServices(positional)
		if err != nil {
			return exitError{code: 2, err: err}
		}
		return serve(ctx, cfg, modeRun, names, getenv, stdout, stderr)
	}
}

func commandHelp(cmd string) string {
	switch cmd {
	case "dev":
		return "Runs an embedded NATS server with JetStream, every service, the HTTP gateway and the ops HTTP server in one process."
	case "run":
		return "switchboard run [flags] SERVICE... (flags may also follow the services)\n\nRuns the named services (" + strings.Join(knownServices(), ", ") + ") against the NATS server at --nats-url."
	}
	if cmd == "projector" {
		return "switchboard projector rebuild [flags] [" + strings.Join(projector.Projections(), "|") + "]...\n\n" +
			"Replays the USERS and ORDERS streams (or the named projections') from --nats-url into fresh tables in --postgres-url,\n" +
			"then switches the projector over to them atomically. Running projectors keep serving meanwhile."
	}
	return "Prints the effective configuration, secrets masked, and where each value came from."
}

// buildVersion is the -ldflags version, or the module version when built
// with go install.
func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// signals returns a context ended by the first SIGINT or SIGTERM (or by
// ctx), and a channel that receives the signals that follow it.
func signals(ctx context.Context) (context.Context, <-chan os.Signal, func()) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	again := make(chan os.Signal, 1)
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			signal.Notify(again, os.Interrupt, syscall.SIGTERM)
			stop()
		case <-done:
		}
	}()
	return ctx, again, func() {
		close(done)
		stop()
		signal.Stop(again)
	}
}
