// Package route is the one router every surface's routes table goes
// through: the data plane (internal/api), ARM (internal/mgmt) and the token
// service (internal/identity) each declare a table of Routes — method,
// pattern, operation name, authorization action, handler — and match
// requests against it with Table.Match. The request pipeline in internal/api
// names the audit event after the matched route's Op and authorizes its
// Action.
//
// Patterns are matched segment by segment on the escaped path (so an
// escaped "/" stays inside its segment), literals case-insensitively
// (AZURE-API.md §0.9); {x} captures a non-empty segment, {x?} a segment that
// may be empty or absent (how the SDKs address "the latest version",
// §0.6), and a final {x...} the rest of the path. Captured segments are
// unescaped. Order matters: a literal segment must come before a parameter
// that could match it. Matching allocates only the params map.
package route

import (
	"net/url"
	"strings"
)

// Route is one operation of a surface. H is the surface's handler type, A
// its authorization action type (authz.Action on the data plane; route
// itself imports no domain package, so the token service can use it too).
type Route[H any, A ~string] struct {
	Method  string // "" matches every method
	Pattern string
	Op      string // the operation's name in the audit event
	// Object is the collection the route acts on ("secrets", "keys", ...):
	// object IDs and the authorization scope are built from it.
	Object string
	Action A // what authorization checks; "" for routes the surface authorizes itself
	Handle H
	segs   []string
}

// Table is a surface's compiled routes.
type Table[H any, A ~string] []Route[H, A]

// Compile prepares routes for matching.
func Compile[H any, A ~string](routes []Route[H, A]) Table[H, A] {
	for i := range routes {
		routes[i].segs = strings.Split(strings.TrimPrefix(routes[i].Pattern, "/"), "/")
	}
	return routes
}

// Match finds the route for method and the escaped path. allowed reports
// whether some route matched the path with another method (a 405 for
// surfaces that answer one).
func (t Table[H, A]) Match(method, path string) (*Route[H, A], map[string]string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	allowed := false
	// One map serves every route tried: matchSegs writes to it only when
	// the whole pattern matches, so a failed match leaves it empty.
	params := make(map[string]string, 2)
	for i := range t {
		rt := &t[i]
		ok := matchSegs(rt.segs, segs, params)
		if !ok && len(segs) > 1 && segs[len(segs)-1] == "" {
			ok = matchSegs(rt.segs, segs[:len(segs)-1], params)
		}
		if !ok {
			continue
		}
		if rt.Method != "" && rt.Method != method {
			allowed = true
			clear(params)
			continue
		}
		if strings.IndexByte(path, '%') >= 0 {
			for k, v := range params {
				u, err := url.PathUnescape(v)
				if err != nil {
					// net/http refuses such a request line; a caller
					// that routes other bytes gets no route, never a
					// parameter holding a half-decoded segment.
					return nil, nil, false
				}
				params[k] = u
			}
		}
		return rt, params, false
	}
	return nil, nil, allowed
}

func matchSegs(pat, segs []string, params map[string]string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	p := pat[0]
	if strings.HasPrefix(p, "{") {
		if name, ok := strings.CutSuffix(p[1:], "...}"); ok && len(pat) == 1 {
			if len(segs) == 0 {
				return false
			}
			params[name] = strings.Join(segs, "/")
			return true
		}
		name := strings.Trim(p, "{}?")
		optional := strings.HasSuffix(p, "?}")
		if optional && matchSegs(pat[1:], segs, params) { // absent
			return true
		}
		if len(segs) == 0 {
			return false
		}
		if segs[0] == "" && !optional {
			return false
		}
		if matchSegs(pat[1:], segs[1:], params) {
			if segs[0] != "" {
				params[name] = segs[0]
			}
			return true
		}
		return false
	}
	if len(segs) == 0 || !strings.EqualFold(p, segs[0]) {
		return false
	}
	return matchSegs(pat[1:], segs[1:], params)
}
