package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeBody feeds request bodies to decodeJSON for each body type a
// handler decodes. Nothing panics; what is accepted re-encodes and decodes
// again to an equal value (the round trip of encoding/json's own fuzz test);
// what is refused is a 400 BadParameter.
//
//	go test -run '^$' -fuzz FuzzDecodeBody ./internal/api
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		``, ` `, `null`, `{}`, `[]`, `"x"`, `1`, `{`, `{"value":"s3cr3t"}`,
		`{"value":"v","contentType":"text/plain","attributes":{"enabled":true,"nbf":1700000000,"exp":1800000000},"tags":{"a":"b"}}`,
		`{"value":null,"tags":null,"attributes":null}`,
		`{"value":1}`, `{"attributes":{"nbf":1.5}}`, `{"attributes":{"exp":"1"}}`, `{"tags":{"a":1}}`,
		`{"contentType":"x","attributes":{"enabled":false,"recoveryLevel":"Purgeable","recoverableDays":7,"created":1,"updated":2}}`,
		`{"value":"QUJD"}`, `{"value":""}`, `{"key":"AQID","reset":false}`, `{"reset":true}`, `{"reset":"yes"}`,
		`{"VALUE":"case","Value":"last"}`, `{"value":"\ud800"}`, "{\"value\":\"\xff\"}", `{"value":"a"} trailing`,
		`{"attributes":{"enabled":true,"exportable":true,"hsmPlatform":"2"}}`, `{"value":"x","value":"y"}`,
	} {
		f.Add([]byte(s))
	}
	types := []func() any{
		func() any { return new(setSecretBody) },
		func() any { return new(updateSecretBody) },
		func() any { return new(backupWire) },
		func() any { return new(unsealBody) },
		func() any { return new(initBody) },
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, mk := range types {
			v := mk()
			if err := decodeJSON(raw, v); err != nil {
				status, b, known := toWire(err)
				if !known || status != http.StatusBadRequest || b.Error.Code != "BadParameter" || b.Error.Message == "" {
					t.Fatalf("%T: refused with %d %+v", v, status, b)
				}
				if len(raw) > 8 && strings.Contains(b.Error.Message, string(raw)) {
					t.Fatalf("%T: the error message echoes the body", v)
				}
				continue
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T: accepted %q but cannot re-encode: %v", v, raw, err)
			}
			w := mk()
			if err := decodeJSON(again, w); err != nil {
				t.Fatalf("%T: re-encoded %s refused: %v", v, again, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%T: round trip changed the value:\n%q\n%s\n%#v\n%#v", v, raw, again, v, w)
			}
		}
	})
}

// FuzzMatchRoute: any method and path routes without panicking, and a
// match is consistent: the route's method is the one asked for, and the
// parameters are exactly non-empty single path segments named in its
// pattern, with {name} always present.
//
//	go test -run '^$' -fuzz FuzzMatchRoute ./internal/api
func FuzzMatchRoute(f *testing.F) {
	routes := dataPlaneRoutes()
	for _, s := range []struct{ m, p string }{
		{"GET", "/secrets"}, {"GET", "/secrets/"}, {"GET", "/secrets/a"}, {"GET", "/secrets/a/"},
		{"GET", "/secrets/a/0123456789abcdef0123456789abcdef"}, {"PATCH", "/secrets/a/"}, {"PUT", "/SECRETS/a"},
		{"POST", "/secrets/restore"}, {"POST", "/secrets/a/backup"}, {"GET", "/secrets/a/versions"},
		{"DELETE", "/deletedsecrets/a"}, {"POST", "/deletedsecrets/a/recover"}, {"GET", "/deletedsecrets"},
		{"GET", "//"}, {"GET", ""}, {"GET", "/"}, {"GET", "secrets"}, {"GET", "/secrets//"}, {"GET", "/secrets///"},
		{"GET", "/secrets/a/b/c/d"}, {"DELETE", "/secrets/a/"}, {"POST", "/keys/k/encrypt"}, {"GET", "/keys/k/"},
		{"POST", "/keys/k/v/sign"}, {"PUT", "/keys/k/rotationpolicy"}, {"get", "/secrets"}, {"GET", "/%2e%2e/secrets"},
	} {
		f.Add(s.m, s.p)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		rt, params, allowed := routes.Match(method, path)
		if rt == nil {
			if params != nil {
				t.Fatalf("no route but params %v", params)
			}
			return
		}
		if allowed {
			t.Fatal("a match also reports another method")
		}
		if rt.Method != method {
			t.Fatalf("%s %q matched %s %s", method, path, rt.Method, rt.Pattern)
		}
		names := map[string]bool{}
		for _, seg := range strings.Split(rt.Pattern, "/") {
			if strings.HasPrefix(seg, "{") {
				names[strings.Trim(seg, "{}?")] = true
			}
		}
		for k, v := range params {
			if !names[k] {
				t.Fatalf("%s %q -> %s: parameter %q not in the pattern (%v)", method, path, rt.Pattern, k, params)
			}
			// Routing is on the escaped path: a parameter holds a "/" only
			// when the path escaped it, and is the unescaped segment.
			if v == "" || strings.Contains(v, "/") && !strings.Contains(strings.ToLower(path), "%2f") {
				t.Fatalf("%s %q -> %s: parameter %s=%q", method, path, rt.Pattern, k, v)
			}
			if up, _ := url.PathUnescape(path); !strings.Contains(path, v) && !strings.Contains(up, v) {
				t.Fatalf("%s %q -> %s: parameter %s=%q is not from the path", method, path, rt.Pattern, k, v)
			}
		}
		if names["name"] && params["name"] == "" {
			t.Fatalf("%s %q -> %s without a name", method, path, rt.Pattern)
		}
		// Matching is a pure function of its input.
		rt2, params2, _ := routes.Match(method, path)
		if rt2 != rt || !reflect.DeepEqual(params, params2) {
			t.Fatalf("%s %q: two matches differ", method, path)
		}
	})
}
