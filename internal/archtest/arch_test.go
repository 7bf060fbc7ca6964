// Package archtest checks the layering docs/architecture.md describes,
// from the packages' real imports (go list), so a change that breaks it
// fails here rather than in review.
package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/devloop/switchboard"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
	Standard   bool
}

// list runs go list over the module's packages (not tests: test-only
// imports may cross layers, as a test of orders starts a users service).
func list(t *testing.T) map[string]pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command on PATH")
	}
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps,Standard", module+"/...")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(&out)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the module path changed?", len(pkgs))
	}
	return pkgs
}

func rel(path string) string { return strings.TrimPrefix(strings.TrimPrefix(path, module), "/") }

// std reports whether path is in the standard library (no dot in its
// first element).
func std(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// serviceOf is the service a package belongs to ("users" for
// services/users/contract), or "".
func serviceOf(path string) string {
	r := rel(path)
	if !strings.HasPrefix(r, "services/") {
		return ""
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(r, "services/"), "/")
	return name
}

func isContract(path string) bool {
	return serviceOf(path) != "" && strings.HasSuffix(path, "/contract")
}

// The toolkit layers never import a service.
func TestToolkitImportsNoService(t *testing.T) {
	for path, p := range list(t) {
		r := rel(path)
		if strings.HasPrefix(r, "services/") || strings.HasPrefix(r, "cmd/") || strings.HasPrefix(r, "internal/examples/") {
			continue
		}
		for _, imp := range p.Imports {
			if serviceOf(imp) != "" {
				t.Errorf("%s imports %s: the toolkit must not depend on services", r, rel(imp))
			}
		}
	}
}

// A service imports no other service, only other services' contracts.
func TestServicesImportOnlyContractsOfOthers(t *testing.T) {
	for path, p := range list(t) {
		own := serviceOf(path)
		if own == "" {
			continue
		}
		for _, imp := range p.Imports {
			other := serviceOf(imp)
			if other != "" && other != own && !isContract(imp) {
				t.Errorf("%s imports %s: services talk over NATS, and import only each other's contract", rel(path), rel(imp))
			}
		}
	}
}

// wire and redact are leaves: the standard library only, so that a
// contract that imports them pulls in nothing else.
func TestWireIsALeaf(t *testing.T) {
	pkgs := list(t)
	for _, leaf := range []string{"wire", "redact"} {
		p, ok := pkgs[module+"/"+leaf]
		if !ok {
			t.Fatalf("no %s package", leaf)
		}
		for _, d := range p.Deps {
			if !std(d) {
				t.Errorf("%s depends on %s; it must need only the standard library", leaf, d)
			}
		}
	}
}

// A contract package brings a caller subjects, types and the wire model:
// no nats.go, no JetStream, nothing but wire, other contracts, redact
// (how a view hides a secret) and the ULID parser that checks ids.
func TestContractsPullInNoTransport(t *testing.T) {
	n := 0
	for path, p := range list(t) {
		if !isContract(path) && !strings.HasSuffix(path, "/examples/notes/contract") {
			continue
		}
		n++
		for _, d := range p.Deps {
			if std(d) || d == module+"/wire" || d == module+"/redact" || isContract(d) || d == "github.com/oklog/ulid/v2" {
				continue
			}
			t.Errorf("%s depends on %s; a contract may depend only on wire, other contracts, redact and ulid", rel(path), d)
		}
	}
	if n < 4 {
		t.Errorf("found %d contract packages, want users, orders, notifications, projector and more", n)
	}
}
