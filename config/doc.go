// Package config loads Switchboard's settings from flags, environment
// variables and a TOML file, in that order of precedence, over built-in
// defaults:
//
//	flag > SWITCHBOARD_* env > file > NATS_URL > default
//
// NATS_URL is the nats CLI's variable: exported for the CLI, it must not
// redirect a process whose file names its NATS, so it counts below the
// file. A source that sets a NATS authentication method replaces the
// method a lower source set, instead of conflicting with it.
//
// Every setting has one name used everywhere: the flag --nats-url, the
// environment variable SWITCHBOARD_NATS_URL and the file key nats-url.
// The settings are declared once, in a table (settings.go); flags,
// environment variables, the file, [Usage], [Config.Describe] and the
// reference in docs/configuration.md are all driven by that table, so adding
// a setting is a change in one place.
//
// [Load] never reads the process environment itself: the caller passes a
// getenv function (os.Getenv in main, a map lookup in tests). It prints
// nothing; a bad value is reported as an error wrapping [ErrInvalid] that
// names the setting, where the value came from and what is allowed.
//
// Secrets (passwords, tokens, and passwords inside URLs) are masked by
// [Config.Describe], [Config.String] and [Config.LogValue], so printing or
// logging a Config never shows them.
package config
