package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
)

var challengeRE = regexp.MustCompile(`^Bearer authorization="([^"]+)", resource="([^"]+)"$`)

// wantChallenge checks a 401 with exactly one WWW-Authenticate header that
// names the vault's tenant and the vault resource with its port.
func wantChallenge(t *testing.T, e *kwtest.Env, what string, r httpResult, tenant string) {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("%s: status %d, want 401: %s", what, r.Status, r.Body)
	}
	hs := r.Header.Values("WWW-Authenticate")
	if len(hs) != 1 {
		t.Fatalf("%s: %d WWW-Authenticate headers, want 1: %q", what, len(hs), hs)
	}
	m := challengeRE.FindStringSubmatch(hs[0])
	if m == nil {
		t.Fatalf("%s: challenge %q", what, hs[0])
	}
	if m[1] != e.Info.AuthorityHost+tenant || !strings.HasSuffix(m[1], "/"+tenant) {
		t.Fatalf("%s: authorization=%q, want %q", what, m[1], e.Info.AuthorityHost+tenant)
	}
	if want := "https://vault.localhost:" + port(e); m[2] != want {
		t.Fatalf("%s: resource=%q, want %q", what, m[2], want)
	}
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil || b.Error.Code != "Unauthorized" || b.Error.Message == "" {
		t.Fatalf("%s: body %s", what, r.Body)
	}
}

func mgmtScope(e *kwtest.Env) string { return e.Info.ManagementResource + ".default" }

func TestTokenValidation(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	ctx := context.Background()
	url := e.Info.VaultURL + "secrets?api-version=7.4"
	tenant := e.Info.TenantID

	tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	good := tok.Token
	if r := do(t, e, "GET", url, good, "", ""); r.Status != http.StatusOK {
		t.Fatalf("valid token: %d %s", r.Status, r.Body)
	}

	wantChallenge(t, e, "no token", do(t, e, "GET", url, "", "", ""), tenant)
	// The challenge comes before the body is looked at (AZURE-API.md §0.3).
	wantChallenge(t, e, "no token, bad body", do(t, e, "PUT", e.Info.VaultURL+"secrets/x?api-version=7.4", "", "application/json", "{not json"), tenant)
	wantChallenge(t, e, "garbage", do(t, e, "GET", url, "garbage", "", ""), tenant)
	wantChallenge(t, e, "three garbage parts", do(t, e, "GET", url, "a.b.c", "", ""), tenant)

	parts := strings.Split(good, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	badSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	wantChallenge(t, e, "changed signature byte", do(t, e, "GET", url, badSig, "", ""), tenant)

	// The same claims under a hand-made alg:none header.
	hdr, _ := jwtClaims(t, good)
	noneHdr, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT", "kid": hdr["kid"]})
	none := base64.RawURLEncoding.EncodeToString(noneHdr) + "." + parts[1] + "."
	wantChallenge(t, e, "alg none", do(t, e, "GET", url, none, "", ""), tenant)
	wantChallenge(t, e, "alg none with the real signature", do(t, e, "GET", url, none+parts[2], "", ""), tenant)

	// A token for the management resource is not a vault token.
	mtok, err := e.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}, TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	if _, c := jwtClaims(t, mtok.Token); c["aud"] != e.Info.ManagementResource {
		t.Fatalf("management token aud %v", c["aud"])
	}
	wantChallenge(t, e, "wrong audience", do(t, e, "GET", url, mtok.Token, "", ""), tenant)

	// A token validly signed for another tenant is refused on this tenant's vault.
	other := secondTenant(t, e, "othertenant")
	otok, err := e.CredentialFor(other.TenantID, other.ClientID, other.ClientSecret).GetToken(ctx,
		policy.TokenRequestOptions{Scopes: tokenOpts(e).Scopes, TenantID: other.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, e, "GET", other.VaultURL+"secrets?api-version=7.4", otok.Token, "", ""); r.Status != http.StatusOK {
		t.Fatalf("other tenant's token on its own vault: %d %s", r.Status, r.Body)
	}
	wantChallenge(t, e, "other tenant's token", do(t, e, "GET", url, otok.Token, "", ""), tenant)
	// ...and the challenge on the other vault names the other tenant.
	wantChallenge(t, e, "dev token on other vault", do(t, e, "GET", other.VaultURL+"secrets?api-version=7.4", good, "", ""), other.TenantID)

	// Expired: two hours later the one-hour token (plus 5 minutes' skew) is dead.
	clk.Advance(2 * time.Hour)
	wantChallenge(t, e, "expired", do(t, e, "GET", url, good, "", ""), tenant)
	clk.Advance(-2 * time.Hour)
	if r := do(t, e, "GET", url, good, "", ""); r.Status != http.StatusOK {
		t.Fatalf("valid token after the clock came back: %d", r.Status)
	}

	// Not yet valid: issued an hour in the future.
	clk.Advance(time.Hour)
	ftok, err := e.CredentialFor(tenant, e.Info.ClientID, e.Info.ClientSecret).GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, e, "GET", url, ftok.Token, "", ""); r.Status != http.StatusOK {
		t.Fatalf("future token at its own time: %d", r.Status)
	}
	clk.Advance(-time.Hour)
	wantChallenge(t, e, "nbf in the future", do(t, e, "GET", url, ftok.Token, "", ""), tenant)

	// Bearer scheme only.
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Basic "+good)
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Basic scheme: %d", resp.StatusCode)
	}
}

func TestTokenEndpoint(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	tenant := e.Info.TenantID
	vaultScope := tokenOpts(e).Scopes[0]
	post := func(tenant string, form url.Values) httpResult {
		return do(t, e, "POST", e.Info.AuthorityHost+tenant+"/oauth2/v2.0/token", "", "application/x-www-form-urlencoded", form.Encode())
	}
	form := func(kv ...string) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.Info.ClientID},
			"client_secret": {e.Info.ClientSecret}, "scope": {vaultScope}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	type entraErr struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
		Timestamp   string `json:"timestamp"`
		TraceID     string `json:"trace_id"`
		Correlation string `json:"correlation_id"`
	}
	check := func(what string, r httpResult, status int, code string, aadsts int, aadstsText string) {
		t.Helper()
		if r.Status != status {
			t.Fatalf("%s: status %d, want %d: %s", what, r.Status, status, r.Body)
		}
		var b entraErr
		if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
			t.Fatalf("%s: %v: %s", what, err, r.Body)
		}
		if b.Error != code || !strings.HasPrefix(b.Description, aadstsText) || len(b.Codes) != 1 || b.Codes[0] != aadsts ||
			b.Timestamp == "" || b.TraceID == "" || b.Correlation == "" {
			t.Fatalf("%s: body %s, want error %s with %s", what, r.Body, code, aadstsText)
		}
		if _, err := time.Parse("2006-01-02 15:04:05Z", b.Timestamp); err != nil {
			t.Fatalf("%s: timestamp %q: %v", what, b.Timestamp, err)
		}
		if strings.Contains(r.Body, e.Info.ClientSecret) {
			t.Fatalf("%s: the error echoes the client secret", what)
		}
	}

	// The good path, by hand.
	r := post(tenant, form())
	if r.Status != http.StatusOK {
		t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	var ok struct {
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(r.Body), &ok); err != nil || ok.TokenType != "Bearer" || ok.ExpiresIn <= 0 || ok.ExpiresIn > 3600 || ok.AccessToken == "" {
		t.Fatalf("token response %s", r.Body)
	}

	check("unknown client", post(tenant, form("client_id", "00000000-0000-0000-0000-000000000001")),
		http.StatusBadRequest, "unauthorized_client", 700016, "AADSTS700016")
	check("wrong secret", post(tenant, form("client_secret", e.Info.ClientSecret+"x")),
		http.StatusUnauthorized, "invalid_client", 7000215, "AADSTS7000215")
	check("another tenant's client", post(secondTenant(t, e, "tokvault").TenantID, form()),
		http.StatusBadRequest, "unauthorized_client", 700016, "AADSTS700016")
	r = post("00000000-0000-0000-0000-0000000000aa", form())
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "AADSTS90002") {
		t.Fatalf("unknown tenant: %d %s", r.Status, r.Body)
	}
	check("unknown tenant", r, http.StatusBadRequest, "invalid_request", 90002, "AADSTS90002")
	check("unsupported grant", post(tenant, form("grant_type", "password")),
		http.StatusBadRequest, "unsupported_grant_type", 70003, "AADSTS70003")
	check("unknown scope", post(tenant, form("scope", "https://graph.microsoft.com/.default")),
		http.StatusBadRequest, "invalid_scope", 500011, "AADSTS500011")
	check("no scope", post(tenant, form("scope", "openid profile")),
		http.StatusBadRequest, "invalid_scope", 500011, "AADSTS500011")

	// azidentity surfaces a wrong secret as an error, and gets no token.
	_, err := e.CredentialFor(tenant, e.Info.ClientID, "wrong-secret").GetToken(context.Background(), tokenOpts(e))
	if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("azidentity with a wrong secret: %v", err)
	}
	c := clientFor(t, e, e.Info.VaultURL, e.CredentialFor(tenant, e.Info.ClientID, "wrong-secret"))
	if _, err := c.GetSecret(context.Background(), "x", "", nil); err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Fatalf("azsecrets with a wrong secret: %v", err)
	}
}

func TestDiscoveryAndSigningKeyRotation(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	tenant := e.Info.TenantID

	r := do(t, e, "GET", e.Info.AuthorityHost+tenant+"/v2.0/.well-known/openid-configuration", "", "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("discovery: %d %s", r.Status, r.Body)
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		JWKSURI       string `json:"jwks_uri"`
		TokenEndpoint string `json:"token_endpoint"`
		AuthzEndpoint string `json:"authorization_endpoint"`
	}
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != e.Info.AuthorityHost+tenant+"/v2.0" {
		t.Fatalf("issuer %q, want %q", doc.Issuer, e.Info.AuthorityHost+tenant+"/v2.0")
	}
	if doc.TokenEndpoint != e.Info.AuthorityHost+tenant+"/oauth2/v2.0/token" || doc.AuthzEndpoint == "" || doc.JWKSURI == "" {
		t.Fatalf("discovery document %s", r.Body)
	}
	if r := do(t, e, "GET", e.Info.AuthorityHost+"00000000-0000-0000-0000-0000000000aa/v2.0/.well-known/openid-configuration", "", "", ""); r.Status != http.StatusBadRequest {
		t.Fatalf("discovery for an unknown tenant: %d", r.Status)
	}

	jwks := func() map[string]bool {
		t.Helper()
		r := do(t, e, "GET", doc.JWKSURI, "", "", "")
		var set struct {
			Keys []struct{ Kid, Kty, Alg, Use, N, E string }
		}
		if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &set) != nil {
			t.Fatalf("jwks: %d %s", r.Status, r.Body)
		}
		kids := map[string]bool{}
		for _, k := range set.Keys {
			if k.Kty != "RSA" || k.Alg != "RS256" || k.Use != "sig" || k.N == "" || k.E == "" || k.Kid == "" {
				t.Fatalf("jwk %+v", k)
			}
			kids[k.Kid] = true
		}
		if len(kids) != len(set.Keys) {
			t.Fatalf("duplicate kid in %s", r.Body)
		}
		return kids
	}

	tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	hdr, claims := jwtClaims(t, tok.Token)
	oldKid, _ := hdr["kid"].(string)
	if hdr["alg"] != "RS256" || oldKid == "" {
		t.Fatalf("token header %v", hdr)
	}
	if claims["iss"] != doc.Issuer || claims["tid"] != tenant || claims["aud"] != tokenOpts(e).Scopes[0][:len(tokenOpts(e).Scopes[0])-len("/.default")] {
		t.Fatalf("token claims %v", claims)
	}
	if k := jwks(); len(k) != 1 || !k[oldKid] {
		t.Fatalf("jwks %v does not hold the token's kid %s", k, oldKid)
	}

	// Rotation needs a management token of an administrator.
	rotate := e.Info.AuthorityHost + "sys/rotate-signing-key"
	if r := do(t, e, "POST", rotate, "", "", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("rotate without a token: %d", r.Status)
	}
	if r := do(t, e, "POST", rotate, tok.Token, "", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("rotate with a vault token: %d", r.Status)
	}
	mtok, err := e.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}, TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	r = do(t, e, "POST", rotate, mtok.Token, "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	var rot struct{ Kid string }
	if err := json.Unmarshal([]byte(r.Body), &rot); err != nil || rot.Kid == "" || rot.Kid == oldKid {
		t.Fatalf("rotate returned %s", r.Body)
	}
	if k := jwks(); len(k) != 2 || !k[oldKid] || !k[rot.Kid] {
		t.Fatalf("jwks after rotation %v, want %s and %s", k, oldKid, rot.Kid)
	}

	// Old tokens still validate, through the SDK and by hand.
	if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", tok.Token, "", ""); r.Status != http.StatusOK {
		t.Fatalf("old token after rotation: %d %s", r.Status, r.Body)
	}
	c := secretsClient(t, e)
	if _, err := c.SetSecret(ctx, "after-rotation", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	// New tokens are signed with the new key.
	ntok, err := e.CredentialFor(tenant, e.Info.ClientID, e.Info.ClientSecret).GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := jwtClaims(t, ntok.Token); h["kid"] != rot.Kid {
		t.Fatalf("new token kid %v, want %s", h["kid"], rot.Kid)
	}
	if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", ntok.Token, "", ""); r.Status != http.StatusOK {
		t.Fatalf("new token: %d", r.Status)
	}
}
