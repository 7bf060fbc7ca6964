package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// update rewrites the generated parts of docs/configuration.md:
//
//	go test ./config -run TestDocs -update
var update = flag.Bool("update", false, "rewrite the generated parts of docs/configuration.md")

const docsPath = "../docs/configuration.md"

// TestDocsUpToDate checks that the reference table and the example file in
// docs/configuration.md are what the settings table generates, so the docs
// cannot drift from the code.
func TestDocsUpToDate(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	got := string(doc)
	want := got
	for _, part := range []struct{ name, text string }{
		{name: "settings table", text: referenceTable()},
		{name: "example file", text: "```toml\n" + exampleFile() + "```\n"},
	} {
		want, err = replaceGenerated(want, part.name, part.text)
		if err != nil {
			t.Fatal(err)
		}
	}
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is out of date with the settings table; run: go test ./config -run TestDocs -update", docsPath)
}

// replaceGenerated replaces the text between the BEGIN and END markers of
// the part called name.
func replaceGenerated(doc, name, text string) (string, error) {
	begin := fmt.Sprintf("<!-- BEGIN GENERATED %s: go test ./config -run TestDocs -update -->\n", name)
	end := fmt.Sprintf("<!-- END GENERATED %s -->", name)
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("%s: markers %q and %q not found", docsPath, begin, end)
	}
	return doc[:i+len(begin)] + text + doc[j:], nil
}

func referenceTable() string {
	var b strings.Builder
	b.WriteString("| Setting | Meaning | Flag | Env var | File key | Default | Allowed values | Secret |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, s := range settings() {
		envs := make([]string, 0, len(s.envNames()))
		for _, e := range s.envNames() {
			envs = append(envs, "`"+e+"`")
		}
		key := "`" + s.name + "`"
		if s.noFile {
			key = "—"
		}
		def := "(empty)"
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		secret := ""
		switch {
		case s.secret:
			secret = "yes"
		case s.url:
			secret = "password in URL"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `--%s` | %s | %s | %s | %s | %s |\n",
			s.name, s.help, s.name, strings.Join(envs, ", "), key, def, s.allowed, secret)
	}
	return b.String()
}

func exampleFile() string {
	var b strings.Builder
	b.WriteString(`# switchboard.example.toml: every key Switchboard reads from its config file,
# with its default. Uncomment a line to change it. Keys are flat and named
# like the flags; an unknown key is an error. Durations are strings ("5s").
# Pass the file with --config or SWITCHBOARD_CONFIG. Flags and environment
# variables override it.
`)
	for _, s := range settings() {
		if s.noFile {
			continue
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "# %s%s.\n", strings.ToUpper(s.help[:1]), s.help[1:])
		fmt.Fprintf(&b, "# Allowed: %s.\n", s.allowed)
		if s.secret {
			b.WriteString("# Secret: keep this file private, or prefer the environment variable.\n")
		}
		v := s.def
		if s.example != "" {
			def := s.def
			if def == "" {
				def = "empty"
			}
			fmt.Fprintf(&b, "# Default: %s.\n", def)
			v = s.example
		}
		fmt.Fprintf(&b, "# %s = %s\n", s.name, tomlLiteral(s, v))
	}
	return b.String()
}

// TestExampleFileLoads uncomments every key of the example file and loads it.
func TestExampleFileLoads(t *testing.T) {
	text := regexp.MustCompile(`(?m)^# ([a-z-]+ = )`).ReplaceAllString(exampleFile(), "$1")
	path := filepath.Join(t.TempDir(), "switchboard.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := Load("switchboard test", []string{"--config", path}, func(string) string { return "" })
	if err != nil {
		t.Fatalf("Load(example file): %v\n%s", err, text)
	}
	for _, s := range settings() {
		if s.noFile {
			continue
		}
		if got := c.Sources[s.name]; got != (Source{Kind: KindFile, Name: path}) {
			t.Errorf("Sources[%q] = %v, want the example file", s.name, got)
		}
	}
}

// TestSettingsTable checks what Default relies on and what the docs need.
func TestSettingsTable(t *testing.T) {
	seen := map[string]string{}
	for _, s := range settings() {
		if s.help == "" || s.allowed == "" || s.arg == "" {
			t.Errorf("%s: help, allowed and arg must be set", s.name)
		}
		if strings.HasSuffix(s.help, ".") || strings.HasSuffix(s.allowed, ".") {
			t.Errorf("%s: help and allowed must not end with a period", s.name)
		}
		for _, name := range append([]string{s.name}, s.envNames()...) {
			if other, ok := seen[name]; ok {
				t.Errorf("%s: name %s is used by %s too", s.name, name, other)
			}
			seen[name] = s.name
		}
		if s.defFrom == nil {
			var c Config
			if err := s.value.set(&c, s.def); err != nil {
				t.Errorf("%s: default %q does not parse: %v", s.name, s.def, err)
			}
			if got := s.value.get(&c); got != s.def {
				t.Errorf("%s: default %q prints as %q", s.name, s.def, got)
			}
		}
	}
	c := Default(func(string) string { return "" })
	for _, s := range settings() {
		if err := s.check(&c); err != nil {
			t.Errorf("%s: default is invalid: %v", s.name, err)
		}
	}
}
