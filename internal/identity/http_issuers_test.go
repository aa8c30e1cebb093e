package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/internal/netguard"
)

// issuerServer is an OIDC issuer on a local TLS server (127.0.0.1) whose
// discovery document names jwksURI (default: its own /keys).
type issuerServer struct {
	srv     *httptest.Server
	key     *ecdsa.PrivateKey
	roots   *x509.CertPool
	jwksURI atomic.Value // string
	hits    sync.Map     // path -> *atomic.Int64
}

func newIssuerServer(t *testing.T) *issuerServer {
	t.Helper()
	is := &issuerServer{}
	is.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	is.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := is.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		port := is.srv.Listener.Addr().String()
		port = port[strings.LastIndex(port, ":")+1:]
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.jwksURI.Load().(string)})
		case "/keys":
			b := base64.RawURLEncoding.EncodeToString
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": "k1",
				"x": b(is.key.X.FillBytes(make([]byte, 32))), "y": b(is.key.Y.FillBytes(make([]byte, 32)))}}})
		case "/redirect-same": // to an allowed host
			http.Redirect(w, r, "/keys", http.StatusFound)
		case "/redirect-other": // the same server under a name the list does not hold
			http.Redirect(w, r, "https://localhost:"+port+"/keys", http.StatusFound)
		case "/redirect-http":
			http.Redirect(w, r, "http://127.0.0.1:"+port+"/keys", http.StatusFound)
		case "/redirect-metadata":
			http.Redirect(w, r, "https://169.254.169.254/latest/meta-data/", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(is.srv.Close)
	is.jwksURI.Store(is.srv.URL + "/keys")
	is.roots = x509.NewCertPool()
	is.roots.AddCert(is.srv.Certificate())
	return is
}

func (is *issuerServer) count(path string) int64 {
	if n, ok := is.hits.Load(path); ok {
		return n.(*atomic.Int64).Load()
	}
	return 0
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) log(msg string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprint(append([]any{msg}, args...)...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestIssuerFetchGuard: issuer discovery and the key set it names go
// through [federation] allowed_hosts, every redirect hop included.
func TestIssuerFetchGuard(t *testing.T) {
	is := newIssuerServer(t)
	ctx := context.Background()
	allowLoopbackIP, err := netguard.New([]string{"127.0.0.1"}, false)
	if err != nil {
		t.Fatal(err)
	}
	allowLoopbackIP.Named("[federation] allowed_hosts")

	// The default policy (any public host) refuses the loopback issuer
	// before any request reaches it, and says so in the log.
	var logs logLines
	f := httpFetcher(IssuerFetch{Roots: is.roots, Log: logs.log})
	if _, err := fetchIssuerKeys(ctx, f, is.srv.URL); !errors.Is(err, netguard.ErrRefused) {
		t.Fatalf("loopback issuer without an allow entry: %v", err)
	}
	if n := is.count("/.well-known/openid-configuration"); n != 0 {
		t.Fatalf("refused issuer was asked %d times", n)
	}
	if got := logs.String(); !strings.Contains(got, "federated credential issuer refused") || !strings.Contains(got, "[federation] allowed_hosts") {
		t.Fatalf("refusal not logged: %q", got)
	}

	// An allow entry for the address lets it through.
	f = httpFetcher(IssuerFetch{Guard: allowLoopbackIP, Roots: is.roots})
	set, err := fetchIssuerKeys(ctx, f, is.srv.URL)
	if err != nil {
		t.Fatalf("allowed issuer: %v", err)
	}
	if _, ok := set.Find("k1"); !ok {
		t.Fatal("allowed issuer's key not found")
	}
	// So does the dev server's loopback rule.
	devGuard, _ := netguard.New(nil, true)
	if _, err := fetchIssuerKeys(ctx, httpFetcher(IssuerFetch{Guard: devGuard, Roots: is.roots}), is.srv.URL); err != nil {
		t.Fatalf("loopback in dev mode: %v", err)
	}

	// A redirect to an allowed host is followed.
	is.jwksURI.Store(is.srv.URL + "/redirect-same")
	if _, err := fetchIssuerKeys(ctx, f, is.srv.URL); err != nil {
		t.Fatalf("redirect to an allowed host: %v", err)
	}

	keysBefore := is.count("/keys")
	for name, jwks := range map[string]string{
		"redirect to a host not in the list": is.srv.URL + "/redirect-other",
		"redirect to the metadata address":   is.srv.URL + "/redirect-metadata",
		"jwks_uri on a host not in the list": strings.Replace(is.srv.URL, "127.0.0.1", "localhost", 1) + "/keys",
		"jwks_uri on the metadata address":   "https://169.254.169.254/keys",
	} {
		is.jwksURI.Store(jwks)
		if _, err := fetchIssuerKeys(ctx, f, is.srv.URL); !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	// Never followed to plain http either.
	is.jwksURI.Store(is.srv.URL + "/redirect-http")
	if _, err := fetchIssuerKeys(ctx, f, is.srv.URL); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("redirect to http: %v", err)
	}
	if n := is.count("/keys"); n != keysBefore {
		t.Fatalf("a refused destination was reached (%d requests for /keys)", n-keysBefore)
	}
	// Other schemes and user info are never fetched.
	for _, u := range []string{"http://127.0.0.1/keys", "file:///etc/passwd", "https://user:pw@127.0.0.1/keys"} {
		if _, err := f(ctx, u); err == nil {
			t.Errorf("%s fetched", u)
		}
	}
}

// TestFederatedIssuerRefusedAtTokenEndpoint: a client assertion whose
// issuer the policy refuses gets the token endpoint's answer for keys that
// could not be obtained, and the resolved address stays in the log.
func TestFederatedIssuerRefusedAtTokenEndpoint(t *testing.T) {
	e := newIDEnv(t)
	is := newIssuerServer(t)
	ctx := context.Background()
	var logs logLines
	e.a.SetIssuerFetch(IssuerFetch{Roots: is.roots, Log: logs.log}) // any public host: 127.0.0.1 is not
	sp, _ := e.dir.CreateServicePrincipal(ctx, e.tenant, "ci", e.clk.Now())
	sub := "system:serviceaccount:default:app"
	if err := e.dir.SetFederatedCredential(ctx, e.tenant, sp.AppID, FederatedCredential{Name: "k8s", Issuer: is.srv.URL,
		Subject: sub, Audiences: []string{"api://AzureADTokenExchange"}}); err != nil {
		t.Fatal(err)
	}
	now := e.clk.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": is.srv.URL, "sub": sub, "aud": "api://AzureADTokenExchange",
		"nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	tok.Header["kid"] = "k1"
	assertion, _ := tok.SignedString(is.key)
	st, out := e.token(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "scope": {"https://vault.test/.default"},
		"client_assertion_type": {assertionTypeJWT}, "client_assertion": {assertion}})
	if st != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("refused issuer: %d %v", st, out)
	}
	codes, _ := out["error_codes"].([]any)
	if len(codes) != 1 || codes[0] != float64(700211) {
		t.Fatalf("error_codes %v, want [700211]", out["error_codes"])
	}
	if body, _ := json.Marshal(out); strings.Contains(string(body), "not public") || strings.Contains(string(body), "allowed_hosts") {
		t.Fatalf("the refusal's detail reached the caller: %s", body)
	}
	if n := is.count("/.well-known/openid-configuration"); n != 0 {
		t.Fatalf("refused issuer was asked %d times", n)
	}
	if got := logs.String(); !strings.Contains(got, "federated credential issuer refused") || !strings.Contains(got, "127.0.0.1") {
		t.Fatalf("refusal not logged for the operator: %q", got)
	}
	if strings.Contains(logs.String(), assertion) {
		t.Fatal("the assertion reached the log")
	}
}
