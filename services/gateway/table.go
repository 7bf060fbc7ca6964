package gateway

import (
	"cmp"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/devloop/switchboard/messaging"
)

// route is one HTTP route to one endpoint, merged over every instance and
// version of its service that serves the endpoint's subject.
type route struct {
	http     messaging.HTTPRoute
	declared bool // declared with messaging.WithHTTP, else the default route

	service     string
	endpoint    string
	subject     string
	description string
	// versions are the versions of the service serving the subject,
	// highest first; the endpoint's metadata is taken from the first.
	versions  []string
	instances int
	// maxPayload is the endpoint's max_payload metadata; 0 when unknown.
	maxPayload int

	// request and response are the endpoint's JSON Schemas, nil when it
	// publishes none.
	request  map[string]any
	response map[string]any
	// fields maps the request's top-level properties to their JSON types,
	// to convert path and query parameters.
	fields map[string]fieldType
}

// fieldType is the JSON type of a request field ("string", "integer",
// "number", "boolean", "array", "object"; "" when unknown) and, for an
// array, of its items.
type fieldType struct {
	typ, items string
}

// serviceSummary describes one discovered service, for /routes and the
// OpenAPI tags.
type serviceSummary struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Versions    []string `json:"versions"`
	Instances   int      `json:"instances"`
}

// table is an immutable snapshot of the discovered routes.
type table struct {
	routes   []*route // sorted by path, then method
	services []serviceSummary
}

// reserved are the gateway's own paths: no service route may take them.
func reserved(path string) bool {
	switch path {
	case "/openapi.json", "/docs", "/routes", "/healthz", "/readyz":
		return true
	}
	return strings.HasPrefix(path, "/docs/")
}

// buildTable makes the route table of the given service instances. It is
// deterministic: the same instances give the same table whatever their
// order. Instances of one service are merged: each subject is served by
// the highest version that has it (its metadata, schemas and route win),
// and listed with every version that serves it.
func buildTable(infos []micro.Info, logger *slog.Logger) *table {
	byService := map[string][]micro.Info{}
	for _, in := range infos {
		byService[in.Name] = append(byService[in.Name], in)
	}
	names := make([]string, 0, len(byService))
	for n := range byService {
		names = append(names, n)
	}
	slices.Sort(names)

	t := &table{}
	taken := map[string]*route{} // by method and path shape
	for _, name := range names {
		ins := byService[name]
		// Highest version first; ties by id, so the choice never depends
		// on the order replies arrived in.
		slices.SortFunc(ins, func(a, b micro.Info) int {
			if c := compareSemver(b.Version, a.Version); c != 0 {
				return c
			}
			return cmp.Compare(a.ID, b.ID)
		})
		sum := serviceSummary{Name: name, Description: ins[0].Description, Instances: len(ins)}
		for _, in := range ins {
			if !slices.Contains(sum.Versions, in.Version) {
				sum.Versions = append(sum.Versions, in.Version)
			}
		}
		t.services = append(t.services, sum)

		bySubject := map[string]*route{}
		var order []string
		for _, in := range ins {
			for _, ep := range in.Endpoints {
				if r, ok := bySubject[ep.Subject]; ok {
					r.instances++
					if !slices.Contains(r.versions, in.Version) {
						r.versions = append(r.versions, in.Version)
					}
					continue
				}
				r := newRoute(name, in.Version, ep, logger)
				if r == nil {
					continue
				}
				bySubject[ep.Subject] = r
				order = append(order, ep.Subject)
			}
		}
		slices.Sort(order)
		for _, subject := range order {
			r := bySubject[subject]
			if reserved(r.http.Path) {
				logger.Warn("gateway: route takes a path of the gateway's own; not served",
					slog.String("route", r.http.String()), slog.String("subject", r.subject))
				continue
			}
			key := shape(r.http)
			if other, ok := taken[key]; ok {
				logger.Warn("gateway: two endpoints declare the same route; the first is served",
					slog.String("route", r.http.String()), slog.String("served", other.subject), slog.String("ignored", r.subject))
				continue
			}
			taken[key] = r
			t.routes = append(t.routes, r)
		}
	}
	slices.SortFunc(t.routes, func(a, b *route) int {
		if c := cmp.Compare(a.http.Path, b.http.Path); c != 0 {
			return c
		}
		return cmp.Compare(methodOrder(a.http.Method), methodOrder(b.http.Method))
	})
	return t
}

// newRoute makes the route of one endpoint, or nil when it is hidden.
func newRoute(service, version string, ep micro.EndpointInfo, logger *slog.Logger) *route {
	r := &route{
		service:     service,
		endpoint:    ep.Name,
		subject:     ep.Subject,
		description: ep.Metadata["description"],
		versions:    []string{version},
		instances:   1,
	}
	switch spec := ep.Metadata[messaging.MetadataHTTP]; spec {
	case messaging.HTTPHidden:
		return nil
	case "":
	default:
		h, err := messaging.ParseHTTPRoute(spec)
		if err == nil {
			r.http, r.declared = h, true
			break
		}
		logger.Warn("gateway: bad http route in endpoint metadata; serving the default route",
			slog.String("subject", ep.Subject), slog.String("error", err.Error()))
	}
	if !r.declared {
		r.http, _ = messaging.ParseHTTPRoute("POST /v1/" + service + "/" + ep.Name)
		if r.http.Path == "" {
			// A name no path can hold (micro allows only letters,
			// digits, - and _, so this is a foreign service).
			return nil
		}
	}
	if n, err := strconv.Atoi(ep.Metadata["max_payload"]); err == nil && n > 0 {
		r.maxPayload = n
	}
	r.request = parseSchema(ep.Metadata["request_schema"])
	r.response = parseSchema(ep.Metadata["response_schema"])
	r.fields = fieldTypes(r.request)
	return r
}

func parseSchema(s string) map[string]any {
	if s == "" {
		return nil
	}
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		return nil
	}
	// An OpenAPI document holds these schemas inline: an $id would
	// change their base URI, and the dialect is the document's.
	delete(m, "$id")
	delete(m, "$schema")
	return m
}

func fieldTypes(schema map[string]any) map[string]fieldType {
	props, _ := schema["properties"].(map[string]any)
	out := make(map[string]fieldType, len(props))
	for name, p := range props {
		ps, _ := p.(map[string]any)
		ft := fieldType{typ: jsonType(ps)}
		if ft.typ == "array" {
			items, _ := ps["items"].(map[string]any)
			ft.items = jsonType(items)
		}
		out[name] = ft
	}
	return out
}

// jsonType is a schema's type; of a list of types (["integer","null"]),
// the first that is not null.
func jsonType(s map[string]any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if str, ok := x.(string); ok && str != "null" {
				return str
			}
		}
	}
	return ""
}

// shape identifies the requests a route matches: two routes of one shape
// would match the same ones.
func shape(h messaging.HTTPRoute) string {
	var b strings.Builder
	b.WriteString(h.Method)
	for _, s := range h.Segments {
		b.WriteByte('/')
		if strings.HasPrefix(s, "{") {
			b.WriteString("{}")
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

func methodOrder(m string) int {
	return slices.Index([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m)
}

// match finds the route of method and escaped path, and the values of
// its path parameters. With no route, allowed lists the methods of the
// routes that match the path (for a 405), if any. When several routes
// match, the most specific wins: a literal segment beats a parameter at
// the first position where they differ.
func (t *table) match(method, escapedPath string) (r *route, params map[string]string, allowed []string) {
	if !strings.HasPrefix(escapedPath, "/") {
		return nil, nil, nil
	}
	raw := strings.Split(escapedPath[1:], "/")
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, nil, nil
		}
		segs[i] = u
	}
	if escapedPath == "/" {
		segs = nil
	}
	for _, cand := range t.routes {
		if !matches(cand.http.Segments, segs) {
			continue
		}
		if cand.http.Method != method {
			if !slices.Contains(allowed, cand.http.Method) {
				allowed = append(allowed, cand.http.Method)
			}
			continue
		}
		if r == nil || moreSpecific(cand.http.Segments, r.http.Segments) {
			r = cand
		}
	}
	if r == nil {
		slices.SortFunc(allowed, func(a, b string) int { return cmp.Compare(methodOrder(a), methodOrder(b)) })
		return nil, nil, allowed
	}
	params = map[string]string{}
	for i, s := range r.http.Segments {
		if name, ok := paramName(s); ok {
			params[name] = segs[i]
		}
	}
	return r, params, nil
}

func matches(pattern, segs []string) bool {
	if len(pattern) != len(segs) {
		return false
	}
	for i, p := range pattern {
		if _, ok := paramName(p); ok {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if p != segs[i] {
			return false
		}
	}
	return true
}

func moreSpecific(a, b []string) bool {
	for i := range a {
		_, pa := paramName(a[i])
		_, pb := paramName(b[i])
		if pa != pb {
			return !pa
		}
	}
	return false
}

func paramName(seg string) (string, bool) {
	if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// compareSemver compares two semantic versions: -1, 0 or +1. A version
// that does not parse sorts below every one that does, then by text.
func compareSemver(a, b string) int {
	pa, oka := parseSemver(a)
	pb, okb := parseSemver(b)
	switch {
	case !oka && !okb:
		return cmp.Compare(a, b)
	case !oka:
		return -1
	case !okb:
		return 1
	}
	for i := range 3 {
		if c := cmp.Compare(pa.nums[i], pb.nums[i]); c != 0 {
			return c
		}
	}
	switch {
	case pa.pre == pb.pre:
		return 0
	case pa.pre == "":
		return 1 // a release is above its pre-releases
	case pb.pre == "":
		return -1
	}
	return comparePre(pa.pre, pb.pre)
}

type semver struct {
	nums [3]int
	pre  string
}

func parseSemver(v string) (semver, bool) {
	v, _, _ = strings.Cut(v, "+") // build metadata does not order
	core, pre, _ := strings.Cut(v, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var s semver
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return semver{}, false
		}
		s.nums[i] = n
	}
	s.pre = pre
	return s, true
}

// comparePre orders pre-release identifiers as semver 2.0.0 says:
// numeric ones numerically and below alphanumeric ones.
func comparePre(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		na, ea := strconv.Atoi(as[i])
		nb, eb := strconv.Atoi(bs[i])
		var c int
		switch {
		case ea == nil && eb == nil:
			c = cmp.Compare(na, nb)
		case ea == nil:
			c = -1
		case eb == nil:
			c = 1
		default:
			c = cmp.Compare(as[i], bs[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(as), len(bs))
}

// String is the route as /routes and logs show it.
func (r *route) String() string { return fmt.Sprintf("%s -> %s", r.http, r.subject) }
