package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/audit"
)

// TestAuthorizationCodePKCE drives the authorize page and the code and
// refresh grants as a browser and the console do: an unknown redirect URI
// is shown, never followed; PKCE is required; the user signs in with
// password and TOTP; a code is redeemed once, only with its verifier and
// redirect URI; refresh tokens rotate, reach another audience and expire.
func TestAuthorizationCodePKCE(t *testing.T) {
	e := newIDEnv(t)
	ctx := context.Background()
	u, err := e.dir.CreateUser(ctx, e.tenant, "carol@example.test", "Carol", "correct horse battery", e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret, _, _ := NewTOTPSecret("Keyward", "carol")
	if _, err := e.dir.UpdateUser(ctx, e.tenant, u.ObjectID, func(x *User) error { x.TOTPSecret = secret; return nil }); err != nil {
		t.Fatal(err)
	}
	const redirect = "https://console.test:8443/ui/auth/callback"
	e.a.RegisterRedirectURIs(KeywardConsoleClientID, redirect)
	resources := []string{"https://vault.test", "https://management.test/"}
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		r = r.WithContext(audit.WithEvent(r.Context(), &audit.Event{}))
		w := httptest.NewRecorder()
		_, h := e.a.Surface(resources).Route(r)
		if h == nil {
			t.Fatalf("%s %s not served", r.Method, r.URL)
		}
		h.ServeHTTP(w, r)
		return w
	}
	verifier := strings.Repeat("v", 20) + "-verifier-of-forty-three-chars"
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	authz := func(mod func(url.Values)) url.Values {
		q := url.Values{"client_id": {KeywardConsoleClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
			"scope": {"https://management.test//.default offline_access openid"}, "state": {"st8"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
		if mod != nil {
			mod(q)
		}
		return q
	}
	get := func(q url.Values) *httptest.ResponseRecorder {
		return serve(httptest.NewRequest(http.MethodGet, accessAuthority+e.tenant+"/oauth2/v2.0/authorize?"+q.Encode(), nil))
	}
	post := func(q url.Values, password, totp string) *httptest.ResponseRecorder {
		q.Set("username", "carol@example.test")
		q.Set("password", password)
		q.Set("totp", totp)
		r := httptest.NewRequest(http.MethodPost, accessAuthority+e.tenant+"/oauth2/v2.0/authorize", strings.NewReader(q.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return serve(r)
	}
	token := func(form url.Values) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodPost, accessAuthority+e.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := serve(r)
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		return w.Code, out
	}

	// An unregistered redirect URI is an error page, not a redirect.
	w := get(authz(func(q url.Values) { q.Set("redirect_uri", "https://evil.test/cb") }))
	if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "AADSTS50011") {
		t.Fatalf("unknown redirect: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	// No PKCE: the error goes back to the (registered) redirect URI.
	w = get(authz(func(q url.Values) { q.Del("code_challenge") }))
	if loc, _ := url.Parse(w.Header().Get("Location")); w.Code != http.StatusFound || loc.Query().Get("error") != "invalid_request" || loc.Query().Get("state") != "st8" {
		t.Fatalf("no PKCE: %d %q", w.Code, w.Header().Get("Location"))
	}
	// The sign-in page: a form, a strict CSP, no caching.
	w = get(authz(nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `name="password"`) ||
		!strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("authorize page: %d %v", w.Code, w.Header())
	}
	// A wrong TOTP code is refused on the page; nothing is redirected.
	w = post(authz(nil), "correct horse battery", "000000")
	if w.Code != http.StatusUnauthorized || w.Header().Get("Location") != "" {
		t.Fatalf("wrong TOTP: %d %q", w.Code, w.Header().Get("Location"))
	}
	signIn := func() string {
		t.Helper()
		e.clk.Advance(31e9) // a fresh TOTP step: each code is accepted once
		w := post(authz(nil), "correct horse battery", TOTPCode(secret, TOTPStep(e.clk.Now())))
		loc, _ := url.Parse(w.Header().Get("Location"))
		if w.Code != http.StatusFound || loc == nil || loc.Query().Get("code") == "" || loc.Query().Get("state") != "st8" ||
			!strings.HasPrefix(loc.String(), redirect+"?") {
			t.Fatalf("sign-in: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
		}
		return loc.Query().Get("code")
	}
	redeem := func(code, v, redir string) (int, map[string]any) {
		return token(url.Values{"grant_type": {"authorization_code"}, "client_id": {KeywardConsoleClientID}, "code": {code},
			"redirect_uri": {redir}, "code_verifier": {v}, "scope": {"https://management.test//.default offline_access"}})
	}
	code := signIn()
	if st, out := redeem(code, strings.Repeat("w", 43), redirect); st != http.StatusBadRequest || out["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", st, out)
	}
	if st, _ := redeem(code, verifier, redirect); st != http.StatusBadRequest {
		t.Fatalf("a code was redeemed after a failed attempt: %d", st)
	}
	if st, _ := redeem(signIn(), verifier, "https://console.test:8443/other"); st != http.StatusBadRequest {
		t.Fatalf("another redirect URI redeemed a code: %d", st)
	}
	code = signIn()
	st, out := redeem(code, verifier, redirect)
	if st != http.StatusOK || out["refresh_token"] == nil || out["id_token"] == nil {
		t.Fatalf("redeem: %d %v", st, out)
	}
	claims, _, err := e.a.Validate(out["access_token"].(string), []string{"https://management.test/"})
	if err != nil || claims.ObjectID != u.ObjectID || claims.IDType != "user" || claims.AZP != KeywardConsoleClientID {
		t.Fatalf("access token: %v %+v", err, claims)
	}
	if st, _ := redeem(code, verifier, redirect); st != http.StatusBadRequest {
		t.Fatalf("a code was redeemed twice: %d", st)
	}

	refresh := func(rt, scope string) (int, map[string]any) {
		return token(url.Values{"grant_type": {"refresh_token"}, "client_id": {KeywardConsoleClientID}, "refresh_token": {rt}, "scope": {scope}})
	}
	rt := out["refresh_token"].(string)
	st, out = refresh(rt, "https://vault.test/.default")
	if st != http.StatusOK || out["refresh_token"] == nil {
		t.Fatalf("refresh: %d %v", st, out)
	}
	if c, _, err := e.a.Validate(out["access_token"].(string), []string{"https://vault.test"}); err != nil || c.ObjectID != u.ObjectID {
		t.Fatalf("refreshed token: %v %+v", err, c)
	}
	if st, _ := refresh(rt, "https://vault.test/.default"); st != http.StatusBadRequest {
		t.Fatalf("a rotated refresh token worked again: %d", st)
	}
	e.clk.Advance(RefreshTokenLifetime)
	if st, _ := refresh(out["refresh_token"].(string), "https://vault.test/.default"); st != http.StatusBadRequest {
		t.Fatalf("a refresh token outlived its sign-in: %d", st)
	}
}
