package contract

import "strings"

// ValidFilter reports whether filter is a valid NATS subject filter that
// matches some event subject (see EventSchemes): users.events.*,
// orders.events.*.placed and orders.events.> are; users.* and ftp are not.
func ValidFilter(filter string) bool {
	if !validSubjectFilter(filter) {
		return false
	}
	for _, scheme := range EventSchemes {
		if overlap(filter, scheme) {
			return true
		}
	}
	return false
}

// validSubjectFilter checks NATS's rules: non-empty tokens without
// whitespace, wildcards as whole tokens, ">" only last.
func validSubjectFilter(filter string) bool {
	if filter == "" || len(filter) > 256 || strings.ContainsAny(filter, " \t\r\n") {
		return false
	}
	tokens := strings.Split(filter, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return false
		case t == ">" && i != len(tokens)-1:
			return false
		case len(t) > 1 && strings.ContainsAny(t, "*>"):
			return false
		}
	}
	return true
}

// overlap reports whether some subject matches both filters.
func overlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		if at[i] == ">" || bt[i] == ">" {
			return true
		}
		if at[i] != bt[i] && at[i] != "*" && bt[i] != "*" {
			return false
		}
	}
	return len(at) == len(bt)
}
