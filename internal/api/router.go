package api

import (
	"net/url"
	"strings"

	"github.com/keyward/keyward/internal/authz"
)

// route is one data-plane operation. Patterns are matched segment by
// segment, literals case-insensitively (AZURE-API.md §0.9); {x} captures a
// segment; {x?} captures a segment that may be empty or absent, which is
// how the SDKs address "the latest version" (§0.6).
type route struct {
	method     string
	pattern    string
	op         string
	collection string // "secrets", "keys", "certificates": for object IDs and authz scope
	action     authz.Action
	handle     func(*request) error
	segs       []string
}

// match finds the route for method and path. path is the escaped path
// (url.URL.EscapedPath), so that an escaped "/" inside a segment stays in
// its segment (PUT /secrets/a%2Fb names the secret "a/b", which is then
// refused as a bad name, not routed as a version); captured segments are
// unescaped. allowed reports whether some route matched the path with
// another method.
func match(routes []route, method, path string) (*route, map[string]string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	allowed := false
	// One map serves every route tried: matchSegs writes to it only when
	// the whole pattern matches, so a failed match leaves it empty.
	params := make(map[string]string, 2)
	for i := range routes {
		rt := &routes[i]
		ok := matchSegs(rt.segs, segs, params)
		if !ok && len(segs) > 1 && segs[len(segs)-1] == "" {
			ok = matchSegs(rt.segs, segs[:len(segs)-1], params)
		}
		if !ok {
			continue
		}
		if rt.method != method {
			allowed = true
			clear(params)
			continue
		}
		for k, v := range params {
			if strings.IndexByte(v, '%') >= 0 {
				if u, err := url.PathUnescape(v); err == nil {
					params[k] = u
				}
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

func compile(routes []route) []route {
	for i := range routes {
		routes[i].segs = strings.Split(strings.TrimPrefix(routes[i].pattern, "/"), "/")
	}
	return routes
}
