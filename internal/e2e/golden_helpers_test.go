package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/kwtest"
)

// Golden wire tests (golden_test.go): a raw HTTPS request to a real
// server, and the response an SDK sees — status, the headers SDKs read,
// and the body — stored as JSON under testdata/golden/<surface>/<case>.json
// and compared structurally. Values that change from run to run (IDs,
// times, versions, key material, tokens, ports) become placeholders that
// keep their JSON type; every key, every type and every other value stays
// exact, so a renamed field, a new field, another status, error code or
// message fails the test. `go test ./internal/e2e -run Golden -update`
// rewrites the files.

var update = flag.Bool("update", false, "rewrite the golden wire files under testdata/golden")

// goldenHeaders are the response headers the official SDKs (and az, and
// the MSAL libraries) look at. A header absent from the response is absent
// from the golden file, so one that appears or disappears shows.
var goldenHeaders = []string{
	"Content-Type", "Www-Authenticate", "Retry-After", "Location", "Azure-Asyncoperation",
	"Cache-Control", "X-Ms-Keyvault-Service-Version", "X-Ms-Keyvault-Region", "X-Ms-Keyvault-Network-Info",
	"X-Ms-Request-Id", "X-Ms-Client-Request-Id", "Strict-Transport-Security", "X-Content-Type-Options",
}

// volatileKeys are JSON members whose value changes on every run: times,
// key material, signatures, tokens, opaque request IDs. Their scalar
// leaves become "{string}", "{number}" or "{bool}"; arrays and objects
// under them keep their shape.
var volatileKeys = map[string]bool{
	// Unix times (Key Vault attributes, deleted objects, token responses).
	"created": true, "updated": true, "deletedDate": true, "scheduledPurgeDate": true,
	"exp": true, "nbf": true, "expires_on": true, "not_before": true, "expires_in": true, "ext_expires_in": true,
	// Certificates.
	"cer": true, "x5t": true, "x5c": true, "csr": true,
	// Tokens and their identifiers.
	"access_token": true, "refresh_token": true, "id_token": true,
	// Entra error envelopes.
	"timestamp": true, "trace_id": true, "correlation_id": true,
	"request_id": true,
}

// keyMaterial are JWK members that hold key material when they are
// strings ("n" is also the share count of /sys/seal-status, kept exact).
var keyMaterial = map[string]bool{"n": true, "x": true, "y": true}

type goldenRequest struct {
	Method  string            `json:"method"`
	Host    string            `json:"host"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
}

type goldenExchange struct {
	Request goldenRequest     `json:"request"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    any               `json:"body"`
}

// golden records or checks the exchanges of one surface.
type golden struct {
	t    *testing.T
	e    *kwtest.Env
	dir  string
	seen map[string]bool
	// subst are exact values of this run (tenant, client and object IDs,
	// the port, …) and the placeholder each becomes, longest first.
	subst [][2]string
}

func newGolden(t *testing.T, e *kwtest.Env, surface string) *golden {
	g := &golden{t: t, e: e, dir: filepath.Join("testdata", "golden", surface), seen: map[string]bool{}}
	g.name(e.Info.TenantID, "{tenant}")
	g.name(e.Info.ClientID, "{client}")
	g.name(e.Info.ObjectID, "{object}")
	g.name(e.Info.SubscriptionID, "{subscription}")
	g.name(e.Info.UnprivilegedClientID, "{unprivileged-client}")
	g.name(e.Info.UnprivilegedObjectID, "{unprivileged-object}")
	g.name(":"+port(e), ":{port}")
	g.name("%3A"+port(e), "%3A{port}")
	// hsmPlatform names the Go crypto module and its FIPS mode, which the
	// environment decides (GODEBUG=fips140=on).
	g.name(keys.Software{}.Platform(), "{hsm-platform}")
	t.Cleanup(g.checkAllSeen)
	return g
}

// name makes every occurrence of value read as placeholder.
func (g *golden) name(value, placeholder string) {
	if value == "" {
		return
	}
	g.subst = append(g.subst, [2]string{value, placeholder})
	sort.SliceStable(g.subst, func(i, j int) bool { return len(g.subst[i][0]) > len(g.subst[j][0]) })
}

// req is one exchange of a golden test.
type req struct {
	method, url string
	token       string            // bearer token; "" sends none
	header      map[string]string // extra request headers
	json        any               // JSON request body
	form        url.Values        // form request body
	// volatile names more members whose values vary in this exchange's
	// response (a ciphertext, a signature, a backup blob), reqVolatile in
	// its request body.
	volatile, reqVolatile []string
	// unordered: the order of the response's "value" list is not part of
	// the contract (an ARM list).
	unordered bool
}

// do sends r, checks (or with -update writes) testdata/golden/<surface>/<name>.json,
// and returns the status and the decoded (not normalized) JSON body.
func (g *golden) do(name string, r req) (int, map[string]any) {
	g.t.Helper()
	if g.seen[name] {
		g.t.Fatalf("golden case %s used twice", name)
	}
	g.seen[name] = true
	var rd io.Reader
	var reqBody any
	hdr := map[string]string{}
	switch {
	case r.json != nil:
		raw, err := json.Marshal(r.json)
		if err != nil {
			g.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
		hdr["Content-Type"] = "application/json"
		json.Unmarshal(raw, &reqBody)
	case r.form != nil:
		rd = strings.NewReader(r.form.Encode())
		hdr["Content-Type"] = "application/x-www-form-urlencoded"
		f := map[string]any{}
		for k := range r.form {
			f[k] = r.form.Get(k)
		}
		reqBody = f
	}
	for k, v := range r.header {
		hdr[k] = v
	}
	hr, err := http.NewRequest(r.method, r.url, rd)
	if err != nil {
		g.t.Fatal(err)
	}
	for k, v := range hdr {
		hr.Header.Set(k, v)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
		hdr["Authorization"] = "Bearer {token}"
	}
	resp, err := g.e.HTTP.Do(hr)
	if err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		g.t.Fatal(err)
	}

	vol, reqVol := map[string]bool{}, map[string]bool{}
	for k := range volatileKeys {
		vol[k], reqVol[k] = true, true
	}
	for _, k := range r.volatile {
		vol[k] = true
	}
	for _, k := range r.reqVolatile {
		reqVol[k] = true
	}
	got := goldenExchange{
		Request: goldenRequest{Method: r.method, Host: g.str(hr.URL.Host), Path: g.str(hr.URL.RequestURI()),
			Body: g.norm(reqBody, reqVol, false)},
		Status:  resp.StatusCode,
		Headers: map[string]string{},
	}
	if len(hdr) > 0 {
		got.Request.Headers = map[string]string{}
		for k, v := range hdr {
			got.Request.Headers[k] = g.str(v)
		}
	}
	for _, h := range goldenHeaders {
		if vs, ok := resp.Header[h]; ok {
			got.Headers[h] = g.str(strings.Join(vs, ", "))
		}
	}
	var decoded map[string]any
	if len(raw) > 0 {
		var v any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if strings.Contains(resp.Header.Get("Content-Type"), "json") && dec.Decode(&v) == nil {
			decoded, _ = v.(map[string]any)
			n := g.norm(v, vol, false)
			if m, ok := n.(map[string]any); ok && r.unordered {
				if list, ok := m["value"].([]any); ok {
					sort.Slice(list, func(i, j int) bool { return compact(list[i]) < compact(list[j]) })
				}
			}
			got.Body = n
		} else {
			got.Body = g.str(string(raw))
		}
	}

	file := filepath.Join(g.dir, name+".json")
	out, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		g.t.Fatal(err)
	}
	out = append(out, '\n')
	if *update {
		if err := os.MkdirAll(g.dir, 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(file, out, 0o644); err != nil {
			g.t.Fatal(err)
		}
		return resp.StatusCode, decoded
	}
	want, err := os.ReadFile(file)
	if err != nil {
		g.t.Fatalf("%s: %v (run with -update to create it)", name, err)
	}
	var w, a any
	if err := json.Unmarshal(want, &w); err != nil {
		g.t.Fatalf("%s: %v", file, err)
	}
	json.Unmarshal(out, &a)
	if diffs := jsonDiff("", w, a); len(diffs) > 0 {
		g.t.Errorf("%s: the wire changed (%s; go test -run %s -update rewrites it):\n  %s\ngot:\n%s",
			name, file, g.t.Name(), strings.Join(diffs, "\n  "), out)
	}
	return resp.StatusCode, decoded
}

// norm returns v with volatile values replaced; under a volatile member
// (inVol) every scalar becomes a typed placeholder.
func (g *golden) norm(v any, vol map[string]bool, inVol bool) any {
	switch x := v.(type) {
	case nil:
		return nil
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			_, isString := val.(string)
			m[g.str(k)] = g.norm(val, vol, inVol || vol[k] || keyMaterial[k] && isString)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, val := range x {
			s[i] = g.norm(val, vol, inVol)
		}
		return s
	case string:
		if inVol {
			return "{string}"
		}
		return g.str(x)
	case json.Number:
		if inVol {
			return "{number}"
		}
		return x
	case float64:
		if inVol {
			return "{number}"
		}
		return x
	case bool:
		if inVol {
			return "{bool}"
		}
		return x
	}
	return v
}

var (
	jwtRE = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	// RFC 3339 and Entra's "2006-01-02 15:04:05Z".
	timeRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)
	uuidRE = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	// Object versions are 32 hex digits.
	versionRE = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
)

// str normalizes the volatile parts inside a string.
func (g *golden) str(s string) string {
	for _, r := range g.subst {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	s = jwtRE.ReplaceAllString(s, "{jwt}")
	s = timeRE.ReplaceAllString(s, "{time}")
	s = uuidRE.ReplaceAllString(s, "{uuid}")
	s = versionRE.ReplaceAllString(s, "{version}")
	return s
}

// checkAllSeen fails when a golden file has no exchange any more: a
// removed case must be removed on purpose.
func (g *golden) checkAllSeen() {
	if *update || g.t.Failed() {
		return
	}
	files, _ := filepath.Glob(filepath.Join(g.dir, "*.json"))
	for _, f := range files {
		if n := strings.TrimSuffix(filepath.Base(f), ".json"); !g.seen[n] {
			g.t.Errorf("golden file %s was not exercised", f)
		}
	}
}

// jsonDiff lists where a and b (decoded JSON) differ.
func jsonDiff(path string, a, b any) []string {
	if path == "" {
		path = "$"
	}
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want object, got %s", path, compact(b))}
		}
		var out []string
		keys := make([]string, 0, len(x)+len(y))
		for k := range x {
			keys = append(keys, k)
		}
		for k := range y {
			if _, ok := x[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			av, aok := x[k]
			bv, bok := y[k]
			switch {
			case !bok:
				out = append(out, fmt.Sprintf("%s.%s: missing (want %s)", path, k, compact(av)))
			case !aok:
				out = append(out, fmt.Sprintf("%s.%s: unexpected %s", path, k, compact(bv)))
			default:
				out = append(out, jsonDiff(path+"."+k, av, bv)...)
			}
		}
		return out
	case []any:
		y, ok := b.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want array, got %s", path, compact(b))}
		}
		if len(x) != len(y) {
			return []string{fmt.Sprintf("%s: want %d elements, got %d: %s", path, len(x), len(y), compact(b))}
		}
		var out []string
		for i := range x {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", path, i), x[i], y[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(a, b) {
		return []string{fmt.Sprintf("%s: want %s, got %s", path, compact(a), compact(b))}
	}
	return nil
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
