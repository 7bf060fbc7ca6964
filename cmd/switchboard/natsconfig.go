package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/devloop/switchboard/natsauth"
)

const natsConfigUsage = `Usage: switchboard nats-config --out DIR [flags]

Writes the production NATS server configuration of Switchboard's
authorization model (docs/security.md) into DIR:

  nats-server.conf    listener, JetStream, TLS and the SWITCHBOARD account
                      with one nkey user per identity (nothing secret)
  helm-values.json    the same accounts as values for the NATS Helm chart:
                      helm ... -f deploy/nats/values.yaml -f DIR/helm-values.json
  IDENTITY.nk         the nkey seed of each identity (mode 0600; secret):
                      a service connects with --nats-nkey DIR/IDENTITY.nk

Seeds already in DIR are kept: to rotate one, delete its file and run again,
then roll out the new configuration and seed (docs/security.md).

Flags:
`

// natsConfigCommand runs `switchboard nats-config`.
func natsConfigCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("switchboard nats-config", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("out", "", "directory to write the configuration and the seeds into (required)")
	var srv natsauth.Server
	fs.StringVar(&srv.Listen, "listen", "0.0.0.0:4222", "client address of the server")
	fs.StringVar(&srv.StoreDir, "store-dir", "/data", "JetStream directory of the server")
	fs.StringVar(&srv.TLSCert, "tls-cert", "", "PEM certificate of the server, as the server reads it; makes TLS required")
	fs.StringVar(&srv.TLSKey, "tls-key", "", "PEM key of the server certificate")
	fs.StringVar(&srv.TLSCA, "tls-ca", "", "PEM CA that client certificates must chain to (clients then need one)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, natsConfigUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return usageError("nats-config: %v (see switchboard nats-config --help)", err)
	}
	if fs.NArg() > 0 {
		return usageError("nats-config takes no arguments, got %q", fs.Args())
	}
	if *out == "" {
		return usageError("nats-config needs --out DIR, the directory for the configuration and the seeds")
	}
	model := accessModel()
	keys, err := natsauth.LoadKeys(*out, model.Users())
	if err != nil {
		return err
	}
	conf, err := model.ServerConfig(keys, srv)
	if err != nil {
		return usageError("nats-config: %v", err)
	}
	accounts, err := model.AccountsValue(keys)
	if err != nil {
		return err
	}
	values, err := natsauth.HelmValues(accounts)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"nats-server.conf": []byte(conf), "helm-values.json": values} {
		if err := os.WriteFile(filepath.Join(*out, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(*out, "nats-server.conf"), filepath.Join(*out, "helm-values.json"))
	for _, g := range model.Grants {
		pub, _ := keys.Public(g.User)
		fmt.Fprintf(stdout, "  %-14s %s  %s\n", g.User, pub, filepath.Join(*out, natsauth.KeyFile(g.User)))
	}
	return nil
}
