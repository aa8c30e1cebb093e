package api

import (
	"maps"
	"net/http"
	"testing"
)

// matchReference is the router before it shared one params map across the
// routes it tries: a fresh map per route.
func matchReference(routes []route, method, path string) (*route, map[string]string, bool) {
	segs := splitPath(path)
	allowed := false
	for i := range routes {
		rt := &routes[i]
		params := map[string]string{}
		ok := matchSegs(rt.segs, segs, params)
		if !ok && len(segs) > 1 && segs[len(segs)-1] == "" {
			clear(params)
			ok = matchSegs(rt.segs, segs[:len(segs)-1], params)
		}
		if !ok {
			continue
		}
		if rt.method != method {
			allowed = true
			continue
		}
		return rt, params, false
	}
	return nil, nil, allowed
}

func splitPath(p string) []string {
	var segs []string
	start := 0
	if len(p) > 0 && p[0] == '/' {
		start = 1
	}
	for i := start; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			segs = append(segs, p[start:i])
			start = i + 1
		}
	}
	return segs
}

func TestMatchSameAsReference(t *testing.T) {
	routes := dataPlaneRoutes()
	paths := []string{
		"/", "", "/secrets", "/secrets/", "/secrets/a", "/secrets/a/", "/secrets/a/v1", "/secrets/a/v1/",
		"/secrets/a/versions", "/secrets/a/backup", "/secrets/restore", "/SECRETS/A/Versions",
		"/deletedsecrets", "/deletedsecrets/a", "/deletedsecrets/a/recover", "/keys", "/keys/k",
		"/keys/k/", "/keys/k/v", "/keys/k/sign", "/keys/k//sign", "/keys/k/v/sign", "/keys/k/v/encrypt",
		"/keys/k/rotationpolicy", "/keys/k/create", "/keys/restore", "/keys/k/v/x/y", "/deletedkeys/k/recover",
		"/eventsubscriptions", "/eventsubscriptions/x", "/nothing/here", "/secrets//", "//",
	}
	methods := []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, "HEAD"}
	for _, p := range paths {
		for _, m := range methods {
			rt, params, allowed := match(routes, m, p)
			wrt, wparams, wallowed := matchReference(routes, m, p)
			if rt != wrt || allowed != wallowed || !maps.Equal(params, wparams) {
				t.Errorf("%s %s: got (%v, %v, %v), want (%v, %v, %v)", m, p, name(rt), params, allowed, name(wrt), wparams, wallowed)
			}
		}
	}
}

func name(rt *route) string {
	if rt == nil {
		return "<nil>"
	}
	return rt.op
}

func BenchmarkMatchSecretGet(b *testing.B) {
	routes := dataPlaneRoutes()
	b.ReportAllocs()
	for b.Loop() {
		match(routes, http.MethodGet, "/secrets/bench/")
	}
}

func TestHeaderNamesCanonical(t *testing.T) {
	for _, k := range []string{hdrRequestID, hdrClientRequestID, hdrRegion, hdrServiceVersion, hdrNetworkInfo,
		hdrContentType, hdrContentLength, hdrRetryAfter, hdrWWWAuthenticate, hdrStrictTransport, hdrContentTypeOption} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("%q is not canonical: %q", k, c)
		}
	}
}
