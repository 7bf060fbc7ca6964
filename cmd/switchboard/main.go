// Command switchboard runs Switchboard's services: `switchboard dev` runs
// everything in one process on an embedded NATS server, `switchboard run
// users …` runs chosen services against an external NATS. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// version is set at build time: go build -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	ctx := context.Background()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "switchboard: %v\n", err)
		var ex exitError
		if errors.As(err, &ex) {
			os.Exit(ex.code)
		}
		os.Exit(1)
	}
}
