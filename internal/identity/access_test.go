package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/netguard"
	"github.com/keyward/keyward/internal/storage/mem"
)

const accessAuthority = "https://login.test:8443/"

type idEnv struct {
	a      *Authority
	dir    *Directory
	b      *barrier.Barrier
	clk    *clock.Fake
	tenant string
}

func newIDEnv(t testing.TB) *idEnv {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := barrier.New(mem.New())
	shares, err := b.Initialize(ctx, barrier.SealConfig{Type: "dev", Shares: 1, Threshold: 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	dir := NewDirectory(b)
	ten, err := dir.CreateTenant(ctx, Tenant{DisplayName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthority(dir, b, clk, accessAuthority)
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return &idEnv{a: a, dir: dir, b: b, clk: clk, tenant: ten.ID}
}

// token posts a form to the token endpoint and returns status and body.
func (e *idEnv) token(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, accessAuthority+e.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req = req.WithContext(audit.WithEvent(req.Context(), &audit.Event{}))
	w := httptest.NewRecorder()
	_, h := e.a.Surface([]string{"https://vault.test"}).Route(req)
	if h == nil {
		t.Fatal("token endpoint not served")
	}
	h.ServeHTTP(w, req)
	out := map[string]any{}
	json.Unmarshal(w.Body.Bytes(), &out)
	return w.Code, out
}

func TestTOTPRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890") // RFC 6238 Appendix B, SHA-1
	for ts, want := range map[int64]string{59: "287082", 1111111109: "081804", 1111111111: "050471",
		1234567890: "005924", 2000000000: "279037", 20000000000: "353130"} {
		if got := TOTPCode(secret, TOTPStep(time.Unix(ts, 0))); got != want {
			t.Errorf("T=%d: %s, want %s", ts, got, want)
		}
	}
	now := time.Unix(1111111111, 0)
	step, ok := VerifyTOTP(secret, "050471", now, 0)
	if !ok || step != TOTPStep(now) {
		t.Fatal("valid code refused")
	}
	if _, ok := VerifyTOTP(secret, "050471", now, step); ok {
		t.Fatal("replayed code accepted")
	}
	if _, ok := VerifyTOTP(secret, TOTPCode(secret, TOTPStep(now)-1), now, 0); !ok {
		t.Fatal("previous step (clock drift) refused")
	}
	if _, ok := VerifyTOTP(secret, TOTPCode(secret, TOTPStep(now)-2), now, 0); ok {
		t.Fatal("code two steps old accepted")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := VerifyTOTP(secret, bad, now, 0); ok {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestPasswordHashing(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$") || strings.Contains(h, "correct") {
		t.Fatalf("hash %q", h)
	}
	if !VerifyPassword(h, "correct horse battery") || VerifyPassword(h, "correct horse batterY") {
		t.Fatal("verification")
	}
	for _, bad := range []string{"", "$argon2id$v=19$m=1,t=1,p=1$$", "$argon2i$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", h + "x", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$aGFzaA"} {
		if VerifyPassword(bad, "correct horse battery") {
			t.Fatalf("malformed hash %q verified", bad)
		}
	}
	if CheckPassword("short") == nil {
		t.Fatal("short password accepted")
	}
}

func newCert(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// TestCertificateAssertionBothThumbprintForms: Go sends x5t#S256 in
// standard base64 with padding, JS in base64url (IDENTITY.md §1); both are
// accepted, the assertion cannot be replayed, and the audience must be
// the token endpoint.
func TestCertificateAssertionBothThumbprintForms(t *testing.T) {
	e := newIDEnv(t)
	ctx := context.Background()
	sp, _ := e.dir.CreateServicePrincipal(ctx, e.tenant, "app", e.clk.Now())
	cert, key := newCert(t)
	if _, err := e.dir.AddCertificate(ctx, e.tenant, sp.AppID, cert.Raw, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	assertion := func(method jwt.SigningMethod, thumb, aud, jti string) string {
		now := e.clk.Now()
		tok := jwt.NewWithClaims(method, jwt.MapClaims{"iss": sp.AppID, "sub": sp.AppID, "aud": aud, "jti": jti,
			"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()})
		tok.Header["x5t#S256"] = thumb
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	endpoint := accessAuthority + e.tenant + "/oauth2/v2.0/token"
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "scope": {"https://vault.test/.default"},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {a}}
	}
	std := base64.StdEncoding.EncodeToString(sum[:])
	urlForm := base64.RawURLEncoding.EncodeToString(sum[:])
	for i, a := range []string{
		assertion(jwt.SigningMethodPS256, std, endpoint, "jti-1"),
		assertion(jwt.SigningMethodPS256, urlForm, endpoint, "jti-2"),
		assertion(jwt.SigningMethodRS256, urlForm, endpoint, "jti-3"),
	} {
		if st, out := e.token(t, form(a)); st != http.StatusOK || out["access_token"] == nil {
			t.Fatalf("assertion %d: %d %v", i, st, out)
		}
	}
	replay := assertion(jwt.SigningMethodPS256, std, endpoint, "jti-4")
	e.token(t, form(replay))
	if st, out := e.token(t, form(replay)); st != http.StatusUnauthorized || !strings.Contains(out["error_description"].(string), "AADSTS7000222") {
		t.Fatalf("replay: %d %v", st, out)
	}
	if st, _ := e.token(t, form(assertion(jwt.SigningMethodPS256, std, "https://elsewhere/token", "jti-5"))); st != http.StatusUnauthorized {
		t.Fatalf("wrong audience: %d", st)
	}
	e.clk.Advance(400 * 24 * time.Hour) // past the certificate's NotAfter
	if st, _ := e.token(t, form(assertion(jwt.SigningMethodPS256, std, endpoint, "jti-6"))); st != http.StatusUnauthorized {
		t.Fatalf("expired certificate: %d", st)
	}
}

// TestFederatedIssuerDiscovery: without an uploaded key set, the
// issuer's keys come from its discovery document over HTTPS.
func TestFederatedIssuerDiscovery(t *testing.T) {
	e := newIDEnv(t)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var issuer string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/keys"})
		case "/keys":
			b := base64.RawURLEncoding.EncodeToString
			json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": "k1",
				"x": b(key.X.FillBytes(make([]byte, 32))), "y": b(key.Y.FillBytes(make([]byte, 32)))}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	issuer = srv.URL
	allow, err := netguard.New([]string{"127.0.0.1"}, false) // the test issuer is on loopback
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	e.a.SetIssuerFetch(IssuerFetch{Guard: allow, Roots: roots})
	sp, _ := e.dir.CreateServicePrincipal(ctx, e.tenant, "gh", e.clk.Now())
	if err := e.dir.SetFederatedCredential(ctx, e.tenant, sp.AppID, FederatedCredential{Name: "github-ci", Issuer: issuer,
		Subject: "repo:keyward/keyward:ref:refs/heads/main", Audiences: []string{"api://AzureADTokenExchange"}}); err != nil {
		t.Fatal(err)
	}
	mk := func(sub string) string {
		now := e.clk.Now()
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": issuer, "sub": sub, "aud": "api://AzureADTokenExchange",
			"nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
		tok.Header["kid"] = "k1"
		s, _ := tok.SignedString(key)
		return s
	}
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "scope": {"https://vault.test/.default"},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {a}}
	}
	if st, out := e.token(t, form(mk("repo:keyward/keyward:ref:refs/heads/main"))); st != http.StatusOK {
		t.Fatalf("federated via discovery: %d %v", st, out)
	}
	if st, _ := e.token(t, form(mk("repo:keyward/keyward:ref:refs/heads/evil"))); st != http.StatusUnauthorized {
		t.Fatalf("wrong subject: %d", st)
	}
	// A token of this authority is never an assertion.
	own, _, err := e.a.IssueAppToken(sp, "api://AzureADTokenExchange")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := e.token(t, form(own)); st != http.StatusUnauthorized {
		t.Fatalf("own token as assertion: %d", st)
	}
	// Validation of the credential itself.
	for _, fc := range []FederatedCredential{
		{Name: "x", Issuer: issuer, Subject: "s", Audiences: []string{"a"}},
		{Name: "okname", Issuer: "http://insecure", Subject: "s", Audiences: []string{"a"}},
		{Name: "okname", Issuer: issuer, Subject: " s", Audiences: []string{"a"}},
		{Name: "okname", Issuer: issuer, Subject: "s", Audiences: []string{"a", "b"}},
		{Name: "other", Issuer: issuer, Subject: "repo:keyward/keyward:ref:refs/heads/main", Audiences: []string{"a"}}, // same (iss, sub)
	} {
		if err := e.dir.SetFederatedCredential(ctx, e.tenant, sp.AppID, fc); err == nil {
			t.Errorf("federated credential %+v accepted", fc)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	b := base64.RawURLEncoding.EncodeToString
	good, _ := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "a", "n": b(key.N.Bytes()), "e": "AQAB"},
		{"kty": "oct", "kid": "skip", "k": "AAAA"},
		{"kty": "RSA", "kid": "enc", "use": "enc", "n": b(key.N.Bytes()), "e": "AQAB"},
	}})
	set, err := ParseJWKS(good)
	if err != nil || len(set.Keys) != 1 {
		t.Fatalf("%v %+v", err, set)
	}
	if _, ok := set.Find("a"); !ok {
		t.Fatal("kid a not found")
	}
	for _, bad := range []string{`{}`, `{"keys":[]}`, `not json`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","kid":"p","n":"` + b(key.N.Bytes()) + `","e":"AQAB","d":"AQAB"}]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		set, err := ParseJWKS(raw)
		if err == nil && len(set.Keys) == 0 {
			t.Fatal("accepted an empty set")
		}
	})
}

// FuzzClientAssertion feeds arbitrary assertions (certificate or
// federated) to the token endpoint: no panic, never a token.
func FuzzClientAssertion(f *testing.F) {
	e := newIDEnv(f)
	sp, _ := e.dir.CreateServicePrincipal(context.Background(), e.tenant, "app", e.clk.Now())
	f.Add("eyJhbGciOiJQUzI1NiIsIng1dCNTMjU2IjoiQUFBQSJ9.eyJpc3MiOiJ4In0.c2ln")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, a string) {
		if len(a) > 4096 {
			return
		}
		u, err := peekAssertion(a)
		if err != nil {
			return
		}
		if u.isCertificateAssertion(sp.AppID) {
			if e.a.verifyCertificateAssertion(sp, e.tenant, a, u) == nil {
				t.Fatal("forged certificate assertion accepted")
			}
		} else if e.a.verifyFederatedAssertion(context.Background(), sp, e.tenant, a, u) == nil {
			t.Fatal("forged federated token accepted")
		}
	})
}

// TestDeviceSignInLockout: failed sign-ins on the device page are counted
// per user; after ten, even the right password is refused for a while — on
// every node, and however many other names an attacker fails with.
func TestDeviceSignInLockout(t *testing.T) {
	e := newIDEnv(t)
	ctx := context.Background()
	if _, err := e.dir.CreateUser(ctx, e.tenant, "bob@example.test", "Bob", "correct horse battery", e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	// A second node: its own memory, the same storage.
	node2 := NewAuthority(e.dir, e.b, e.clk, accessAuthority)
	if err := node2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	serve := func(a *Authority, r *http.Request) *httptest.ResponseRecorder {
		r = r.WithContext(audit.WithEvent(r.Context(), &audit.Event{}))
		w := httptest.NewRecorder()
		_, h := a.Surface([]string{"https://vault.test"}).Route(r)
		if h == nil {
			t.Fatal("not served")
		}
		h.ServeHTTP(w, r)
		return w
	}
	body := url.Values{"client_id": {KeywardCLIClientID}, "scope": {"https://vault.test/.default"}}.Encode()
	// newCode starts a device sign-in on node a (pending codes are per node).
	newCode := func(a *Authority) string {
		r := httptest.NewRequest(http.MethodPost, accessAuthority+e.tenant+"/oauth2/v2.0/devicecode", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		var dc struct {
			UserCode string `json:"user_code"`
		}
		if err := json.Unmarshal(serve(a, r).Body.Bytes(), &dc); err != nil || dc.UserCode == "" {
			t.Fatalf("device code: %v", err)
		}
		return dc.UserCode
	}
	signIn := func(a *Authority, code, pw string) int {
		r := httptest.NewRequest(http.MethodPost, accessAuthority+"device",
			strings.NewReader(url.Values{"user_code": {code}, "username": {"bob@example.test"}, "password": {pw}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return serve(a, r).Code
	}
	code := newCode(e.a)
	for i := range maxSignInFailures {
		if st := signIn(e.a, code, "wrong password!!"); st != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	if st := signIn(e.a, code, "correct horse battery"); st != http.StatusTooManyRequests {
		t.Fatalf("locked out user signed in: %d", st)
	}
	if st := signIn(node2, newCode(node2), "correct horse battery"); st != http.StatusTooManyRequests {
		t.Fatalf("locked out user signed in on another node: %d", st)
	}
	// Failing with enough other names fills and empties the first node's
	// in-memory counts; the user's stored count stays.
	for i := range maxTrackedNames + 1 {
		e.a.signInFailed(fmt.Sprintf("%s|nobody-%d", e.tenant, i), e.clk.Now())
	}
	if st := signIn(e.a, code, "correct horse battery"); st != http.StatusTooManyRequests {
		t.Fatalf("locked out user signed in after the memory counts were flushed: %d", st)
	}

	e.clk.Advance(signInWindow + time.Second)
	if st := signIn(node2, newCode(node2), "correct horse battery"); st != http.StatusOK {
		t.Fatalf("after the window: %d", st)
	}
	u, err := e.dir.UserByName(ctx, e.tenant, "bob@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if u.FailedSignIns != 0 {
		t.Fatalf("a successful sign-in left %d failures stored", u.FailedSignIns)
	}
}
