package config

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// readFile reads the TOML file at path, named by src, and returns its values
// in table order. Keys are flat and named like the flags. Unknown keys, and
// values of the wrong TOML type, are errors: a typo must not be silently
// ignored.
func readFile(set []setting, path string, src Source) ([]assignment, error) {
	fileErr := func(reason string, cause error) error {
		return &settingError{what: nameConfig, value: path, hasValue: true, source: src, reason: reason, cause: cause}
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fileErr("cannot read: "+err.Error(), err)
	}
	var raw map[string]toml.Primitive
	md, err := toml.Decode(string(text), &raw)
	if err != nil {
		return nil, fileErr(strings.TrimPrefix(err.Error(), "toml: "), err)
	}

	byKey := map[string]setting{}
	var keys []string
	for _, s := range set {
		if !s.noFile {
			byKey[s.name] = s
			keys = append(keys, s.name)
		}
	}
	slices.Sort(keys)
	// md.Keys is in file order, so the first unknown key is reported; it
	// lists nested keys too, whose first part is already unknown.
	for _, k := range md.Keys() {
		if _, ok := byKey[k[0]]; !ok {
			reason := fmt.Sprintf("unknown key %q", k[0])
			if _, ok := byKey[strings.ReplaceAll(k[0], "_", "-")]; ok {
				reason += fmt.Sprintf(" (did you mean %q?)", strings.ReplaceAll(k[0], "_", "-"))
			}
			return nil, fileErr(reason+"; valid keys: "+strings.Join(keys, ", "), nil)
		}
	}

	fileSrc := Source{Kind: KindFile, Name: path}
	var as []assignment
	for _, s := range set {
		prim, ok := raw[s.name]
		if !ok || s.noFile {
			continue
		}
		var v string
		switch s.value.toml {
		case tomlInteger:
			var n int64
			err = md.PrimitiveDecode(prim, &n)
			v = strconv.FormatInt(n, 10)
		case tomlBool:
			var b bool
			err = md.PrimitiveDecode(prim, &b)
			v = strconv.FormatBool(b)
		default:
			err = md.PrimitiveDecode(prim, &v)
		}
		if err != nil {
			reason := fmt.Sprintf("want a TOML %s, got %s", s.value.toml, strings.ToLower(md.Type(s.name)))
			if def := s.def; def != "" && s.defFrom == nil {
				reason += fmt.Sprintf(", e.g. %s = %s", s.name, tomlLiteral(s, def))
			}
			// The decoder's type errors are plain, but start with the line.
			var line int
			if _, scanErr := fmt.Sscanf(err.Error(), "toml: line %d", &line); scanErr == nil {
				reason = fmt.Sprintf("line %d: %s", line, reason)
			}
			return nil, &settingError{what: s.name, source: fileSrc, reason: reason}
		}
		as = append(as, assignment{setting: s, raw: v, source: fileSrc})
	}
	return as, nil
}

// tomlLiteral writes v, a value of s in the form flags take, as TOML.
func tomlLiteral(s setting, v string) string {
	if s.value.toml == tomlInteger || s.value.toml == tomlBool {
		return v
	}
	return strconv.Quote(v)
}
