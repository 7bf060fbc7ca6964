package config

import (
	"fmt"
	"io"
	"strings"
)

// Usage writes the help text for command (e.g. "switchboard dev"): every
// flag with its environment variables, default and help line.
func Usage(w io.Writer, command string) {
	set := settings()
	type row struct{ flag, help, more string }
	var (
		rows  []row
		flagW int
	)
	for _, s := range set {
		r := row{
			flag: "--" + s.name + " " + s.arg,
			help: s.help,
			more: "env " + strings.Join(s.envNames(), ", "),
		}
		if s.def != "" {
			r.more += "; default " + s.def
		}
		if s.secret {
			r.more += "; secret"
		}
		if s.noFile {
			r.more += "; not a file key"
		}
		flagW = max(flagW, len(r.flag))
		rows = append(rows, r)
	}

	fmt.Fprintf(w, "Usage: %s [flags] [arguments]\n\n", command)
	fmt.Fprintf(w, "Each setting is a flag, an environment variable, or a key of the TOML file\n")
	fmt.Fprintf(w, "named by --config (the flag name without dashes). Precedence: flag >\n")
	fmt.Fprintf(w, "SWITCHBOARD_* env > file > NATS_URL > default. Prefer env or the file for\n")
	fmt.Fprintf(w, "secrets: flags show in ps.\n\n")
	fmt.Fprintf(w, "Flags:\n")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", flagW, r.flag, r.help)
		fmt.Fprintf(w, "  %-*s  %s\n", flagW, "", r.more)
	}
}
