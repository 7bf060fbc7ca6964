// Package migrations holds the projector's schema migrations, embedded in
// the binary and applied with goose at start (see the projector's
// Migrate). A file is NNNNN_what.sql with -- +goose Up and Down sections;
// never edit one that was released: add the next.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
