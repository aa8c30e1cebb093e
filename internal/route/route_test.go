package route

import (
	"maps"
	"net/http"
	"testing"
)

// matchReference is the router before it shared one params map across the
// routes it tries: a fresh map per route.
func matchReference[H any, A ~string](routes Table[H, A], method, path string) (*Route[H, A], map[string]string, bool) {
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
		if rt.Method != "" && rt.Method != method {
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

func testTable() Table[int, string] {
	g, put, post, del := http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete
	return Compile([]Route[int, string]{
		{Method: g, Pattern: "/secrets", Op: "SecretList"},
		{Method: post, Pattern: "/secrets/restore", Op: "SecretRestore"},
		{Method: g, Pattern: "/secrets/{name}/versions", Op: "SecretListVersions"},
		{Method: put, Pattern: "/secrets/{name}", Op: "SecretSet"},
		{Method: g, Pattern: "/secrets/{name}/{version?}", Op: "SecretGet"},
		{Method: del, Pattern: "/secrets/{name}", Op: "SecretDelete"},
		{Method: post, Pattern: "/keys/{name}/{version?}/sign", Op: "KeySign"},
		{Method: g, Pattern: "/keys/{name}/{version?}", Op: "KeyGet"},
		{Method: post, Pattern: "/deletedkeys/{name}/recover", Op: "KeyRecover"},
		{Pattern: "/subscriptions/{sub}/resourcegroups/{rg}", Op: "ResourceGroup"},
	})
}

func TestMatchSameAsReference(t *testing.T) {
	routes := testTable()
	paths := []string{
		"/", "", "/secrets", "/secrets/", "/secrets/a", "/secrets/a/", "/secrets/a/v1", "/secrets/a/v1/",
		"/secrets/a/versions", "/secrets/a/backup", "/secrets/restore", "/SECRETS/A/Versions",
		"/keys", "/keys/k", "/keys/k/", "/keys/k/v", "/keys/k/sign", "/keys/k//sign", "/keys/k/v/sign",
		"/keys/k/v/x/y", "/deletedkeys/k/recover", "/nothing/here", "/secrets//", "//",
		"/subscriptions/s/resourceGroups/r", "/subscriptions//resourcegroups/r",
	}
	methods := []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, "HEAD"}
	for _, p := range paths {
		for _, m := range methods {
			rt, params, allowed := routes.Match(m, p)
			wrt, wparams, wallowed := matchReference(routes, m, p)
			if rt != wrt || allowed != wallowed || !maps.Equal(params, wparams) {
				t.Errorf("%s %s: got (%v, %v, %v), want (%v, %v, %v)", m, p, name(rt), params, allowed, name(wrt), wparams, wallowed)
			}
		}
	}
}

// TestEscapedSegments: an escaped "/" stays in its segment and is
// unescaped in the parameter; the rest parameter takes what is left.
func TestEscapedSegments(t *testing.T) {
	routes := testTable()
	rt, params, _ := routes.Match(http.MethodPut, "/secrets/a%2Fb")
	if rt == nil || rt.Op != "SecretSet" || params["name"] != "a/b" {
		t.Fatalf("PUT /secrets/a%%2Fb: %v %v", name(rt), params)
	}
	// A segment that is not valid percent-encoding routes nowhere: a
	// parameter is either the whole unescaped segment or absent.
	for _, p := range []string{"/secrets/%/%00", "/secrets/a%zz", "/secrets/a/%g1"} {
		if rt, params, _ := routes.Match(http.MethodGet, p); rt != nil {
			t.Fatalf("GET %s: %v %v", p, name(rt), params)
		}
	}
	rest := Compile([]Route[int, string]{{Pattern: "/providers/keyward.directory/{rest...}", Op: "Directory"}})
	if rt, params, _ := rest.Match(http.MethodGet, "/providers/Keyward.Directory/tenants/t/users"); rt == nil || params["rest"] != "tenants/t/users" {
		t.Fatalf("rest: %v %v", name(rt), params)
	}
	if rt, _, _ := rest.Match(http.MethodGet, "/providers/Keyward.Directory"); rt != nil {
		t.Fatal("rest matched nothing")
	}
}

func name[H any, A ~string](rt *Route[H, A]) string {
	if rt == nil {
		return "<nil>"
	}
	return rt.Op
}

func BenchmarkMatchSecretGet(b *testing.B) {
	routes := testTable()
	b.ReportAllocs()
	for b.Loop() {
		routes.Match(http.MethodGet, "/secrets/bench/")
	}
}
