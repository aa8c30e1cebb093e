package api

import (
	"net/http"
	"strings"
	"testing"
)

// TestRoutesCompile: every data-plane route matches its own pattern (with
// sample values) and nothing earlier in the table shadows it.
func TestRoutesCompile(t *testing.T) {
	routes := dataPlaneRoutes()
	for i := range routes {
		rt := &routes[i]
		path := strings.NewReplacer("{name}", "n", "{version?}", "v", "{issuer}", "i").Replace(rt.Pattern)
		got, _, _ := routes.Match(rt.Method, path)
		if got != rt {
			t.Errorf("%s %s matches %v", rt.Method, path, got)
		}
	}
}

func BenchmarkMatchSecretGet(b *testing.B) {
	routes := dataPlaneRoutes()
	b.ReportAllocs()
	for b.Loop() {
		routes.Match(http.MethodGet, "/secrets/bench/")
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
