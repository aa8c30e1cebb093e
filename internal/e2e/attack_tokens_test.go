package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAttackForgedTokens: every forged or doctored token is refused on both
// planes with 401 and the plane's error code, a challenge, and no change:
// alg none, HS256 keyed with the published RSA key, a foreign key under
// the real kid, embedded jwk and jku headers, claims changed under a real
// signature, and tokens signed with the real key (TestOnlySignToken) whose
// aud, iss, tid, exp, nbf, iat or lifetime are wrong. The same claims
// re-signed unchanged are accepted (the control), so each case fails for
// its own reason.
func TestAttackForgedTokens(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	v := newAttackVault(t, e, "attacktokens")
	victim := newSP(t, e, "victim")
	assign(t, e, e.Credential(), vaultScope(e, v.name), authz.RoleKeyVaultSecretsOfficer, victim.ObjectID)
	assign(t, e, e.Credential(), vaultScope(e, v.name), authz.RoleKeyVaultContributor, victim.ObjectID)
	dataTok := tokenFor(t, victim.Cred, tokenOpts(e).Scopes[0])
	mgmtTok := tokenFor(t, victim.Cred, mgmtScope(e))
	hdr, dataClaims := jwtClaims(t, dataTok)
	_, mgmtClaims := jwtClaims(t, mgmtTok)
	kid, _ := hdr["kid"].(string)
	pub := publishedKey(t, e, kid)
	foreign, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other := secondTenant(t, e, "attackother")
	now := clk.Now()
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }

	realSign := func(c map[string]any) string {
		tok, err := e.Server.TestOnlySignToken(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	spki, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	foreignJWK := map[string]any{"kty": "RSA", "kid": "attacker", "n": b64(foreign.N.Bytes()), "e": "AQAB"}

	forgeries := []struct {
		name string
		make func(c map[string]any) string
	}{
		{"alg none", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, c, nil)
		}},
		{"alg none with a real signature", func(c map[string]any) string {
			real := strings.Split(realSign(c), ".")
			return b64JSON(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + real[1] + "." + real[2]
		}},
		{"HS256 keyed with the published key (PEM)", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, c, hs256(pemKey))
		}},
		{"HS256 keyed with the published key (DER)", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, c, hs256(x509.MarshalPKCS1PublicKey(pub)))
		}},
		{"HS256 keyed with the modulus", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, c, hs256(pub.N.Bytes()))
		}},
		{"foreign key with the real kid", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid}, c, rs256(foreign))
		}},
		{"embedded jwk", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": "attacker", "jwk": foreignJWK}, c, rs256(foreign))
		}},
		{"embedded jwk with the real kid", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid, "jwk": foreignJWK}, c, rs256(foreign))
		}},
		{"jku to the attacker's keys", func(c map[string]any) string {
			return signedJWT(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid, "jku": "https://attacker.localhost/keys"}, c, rs256(foreign))
		}},
		{"claims changed under a real signature", func(c map[string]any) string {
			real := strings.Split(realSign(c), ".")
			return real[0] + "." + b64JSON(t, cloneClaims(c, map[string]any{"oid": devObjectID(t, e)})) + "." + real[2]
		}},
		{"wrong aud", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"aud": "https://vault.azure.net"}))
		}},
		{"wrong iss", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"iss": "https://login.microsoftonline.com/" + e.Info.TenantID + "/v2.0"}))
		}},
		{"wrong tid", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"tid": other.TenantID}))
		}},
		{"another tenant's iss and tid", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"tid": other.TenantID, "iss": e.Info.AuthorityHost + other.TenantID + "/v2.0"}))
		}},
		{"expired", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"iat": at(-3 * time.Hour), "nbf": at(-3 * time.Hour), "exp": at(-2 * time.Hour)}))
		}},
		{"nbf in the future", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"nbf": at(30 * time.Minute), "exp": at(55 * time.Minute)}))
		}},
		{"iat in the future", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"iat": at(30 * time.Minute), "exp": at(55 * time.Minute)}))
		}},
		{"exp 10 years out", func(c map[string]any) string {
			return realSign(cloneClaims(c, map[string]any{"exp": now.AddDate(10, 0, 0).Unix()}))
		}},
		{"no oid", func(c map[string]any) string { return realSign(cloneClaims(c, nil, "oid")) }},
		{"no exp", func(c map[string]any) string { return realSign(cloneClaims(c, nil, "exp")) }},
	}

	// The controls: the victim's claims, re-signed unchanged, pass.
	if r := do(t, e, "GET", v.url+"secrets/canary?api-version=7.4", realSign(dataClaims), "", ""); r.Status != http.StatusOK {
		t.Fatalf("control (data plane): %d %s", r.Status, r.Body)
	}
	if r := do(t, e, "GET", v.armURL+"?api-version=2023-07-01", realSign(mgmtClaims), "", ""); r.Status != http.StatusOK {
		t.Fatalf("control (management plane): %d %s", r.Status, r.Body)
	}

	for _, f := range forgeries {
		t.Run(f.name, func(t *testing.T) {
			v.refusedData(t, "Bearer "+f.make(dataClaims))
			v.refusedMgmt(t, "Bearer "+f.make(mgmtClaims))
			v.unchanged(t, f.name, "")
		})
	}
}

// refusedData sends a read and a write of the canary with authorization
// and wants 401 Unauthorized with the vault's challenge for both.
func (v *attackVault) refusedData(t *testing.T, authorization string) {
	t.Helper()
	for _, r := range []httpResult{
		doAuth(t, v.e, "GET", v.url+"secrets/canary?api-version=7.4", authorization, ""),
		doAuth(t, v.e, "PUT", v.url+"secrets/canary?api-version=7.4", authorization, `{"value":"pwned"}`),
	} {
		code, _ := azureError(r.Body)
		if r.Status != http.StatusUnauthorized || code != "Unauthorized" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer authorization=") {
			t.Fatalf("data plane: %d %s %q, want 401 Unauthorized with a challenge", r.Status, r.Body, r.Header.Get("WWW-Authenticate"))
		}
		if strings.Contains(r.Body, canaryValue) {
			t.Fatal("data plane: the refusal carries the secret")
		}
	}
}

// refusedMgmt sends a read and a tag write of the vault with authorization
// and wants 401 with an ARM authentication error and WWW-Authenticate.
func (v *attackVault) refusedMgmt(t *testing.T, authorization string) {
	t.Helper()
	for _, r := range []httpResult{
		doAuth(t, v.e, "GET", v.armURL+"?api-version=2023-07-01", authorization, ""),
		doAuth(t, v.e, "PATCH", v.armURL+"?api-version=2023-07-01", authorization, `{"tags":{"pwned":"1"}}`),
	} {
		code, _ := azureError(r.Body)
		switch {
		case r.Status != http.StatusUnauthorized:
			t.Fatalf("management plane: %d %s, want 401", r.Status, r.Body)
		case code != "InvalidAuthenticationToken" && code != "AuthenticationFailed" && code != "InvalidAuthenticationTokenTenant":
			t.Fatalf("management plane: code %q: %s", code, r.Body)
		case r.Header.Get("WWW-Authenticate") == "":
			t.Fatalf("management plane: 401 %s without WWW-Authenticate", code)
		}
	}
}

// publishedKey is the RSA key with kid in the tenant's JWKS.
func publishedKey(t *testing.T, e *kwtest.Env, kid string) *rsa.PublicKey {
	t.Helper()
	r := do(t, e, "GET", e.Info.AuthorityHost+e.Info.TenantID+"/discovery/v2.0/keys", "", "", "")
	var set struct {
		Keys []struct{ Kid, N, E string }
	}
	if err := jsonUnmarshal(r.Body, &set); err != nil {
		t.Fatalf("JWKS: %v %s", err, r.Body)
	}
	for _, k := range set.Keys {
		if k.Kid == kid {
			n, _ := base64.RawURLEncoding.DecodeString(k.N)
			eb, _ := base64.RawURLEncoding.DecodeString(k.E)
			return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
		}
	}
	t.Fatalf("kid %s not in the JWKS", kid)
	return nil
}

// TestAttackRevokedAccess: a token whose signature and claims are valid
// stops working when what it stood for is gone: its role assignment was
// removed, its principal was deleted; a managed identity's token works
// only on the vault it was granted.
func TestAttackRevokedAccess(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	v := newAttackVault(t, e, "attackrevoked")
	v2 := newAttackVault(t, e, "attackrevoked2")
	write := func(v *attackVault, tok string) httpResult {
		return do(t, e, "PUT", v.url+"secrets/canary?api-version=7.4", tok, "application/json", `{"value":"pwned"}`)
	}

	t.Run("removed role", func(t *testing.T) {
		sp := newSP(t, e, "removed-role")
		name := assign(t, e, e.Credential(), vaultScope(e, v.name), authz.RoleKeyVaultSecretsOfficer, sp.ObjectID)
		tok := tokenFor(t, sp.Cred, tokenOpts(e).Scopes[0])
		if r := do(t, e, "GET", v.url+"secrets/canary?api-version=7.4", tok, "", ""); r.Status != http.StatusOK {
			t.Fatalf("before removal: %d %s", r.Status, r.Body)
		}
		if _, err := assignmentsARM(t, e, e.Credential()).Delete(ctx, vaultScope(e, v.name), name, nil); err != nil {
			t.Fatal(err)
		}
		r := write(v, tok)
		if code, inner := azureError(r.Body); r.Status != http.StatusForbidden || code != "Forbidden" || inner != "ForbiddenByRbac" {
			t.Fatalf("after removal: %d %s, want 403 Forbidden/ForbiddenByRbac", r.Status, r.Body)
		}
		v.unchanged(t, "removed role", "")
	})

	t.Run("deleted principal", func(t *testing.T) {
		sp := newSP(t, e, "deleted-principal")
		assign(t, e, e.Credential(), vaultScope(e, v.name), authz.RoleKeyVaultSecretsOfficer, sp.ObjectID)
		assign(t, e, e.Credential(), vaultScope(e, v.name), authz.RoleKeyVaultContributor, sp.ObjectID)
		tok := tokenFor(t, sp.Cred, tokenOpts(e).Scopes[0])
		mtok := tokenFor(t, sp.Cred, mgmtScope(e))
		if r := do(t, e, "GET", v.url+"secrets/canary?api-version=7.4", tok, "", ""); r.Status != http.StatusOK {
			t.Fatalf("before deletion: %d %s", r.Status, r.Body)
		}
		if r := dirCall(t, e, e.Credential(), http.MethodDelete, "/providers/Keyward.Directory/principals/"+sp.ObjectID, nil, nil); r.Status >= 300 {
			t.Fatalf("delete principal: %d %s", r.Status, r.Body)
		}
		// Its role assignments went with it: the token is valid but
		// stands for no one with access.
		for _, r := range []httpResult{write(v, tok), do(t, e, "GET", v.url+"secrets/canary?api-version=7.4", tok, "", "")} {
			if code, inner := azureError(r.Body); r.Status != http.StatusForbidden || code != "Forbidden" || inner != "ForbiddenByRbac" {
				t.Fatalf("data plane after deletion: %d %s, want 403 Forbidden/ForbiddenByRbac", r.Status, r.Body)
			}
		}
		r := do(t, e, "PATCH", v.armURL+"?api-version=2023-07-01", mtok, "application/json", `{"tags":{"pwned":"1"}}`)
		if code, _ := azureError(r.Body); r.Status != http.StatusForbidden || code != "AuthorizationFailed" {
			t.Fatalf("management plane after deletion: %d %s, want 403 AuthorizationFailed", r.Status, r.Body)
		}
		v.unchanged(t, "deleted principal", "")
	})

	t.Run("managed identity on another vault", func(t *testing.T) {
		mi := newManagedIdentity(t, e, "attack-mi", nil)
		assign(t, e, e.Credential(), vaultScope(e, v.name), authz.RoleKeyVaultSecretsOfficer, mi.ObjectID)
		tok := tokenFor(t, mi.credential(t, e), tokenOpts(e).Scopes[0])
		if r := do(t, e, "GET", v.url+"secrets/canary?api-version=7.4", tok, "", ""); r.Status != http.StatusOK {
			t.Fatalf("on its own vault: %d %s", r.Status, r.Body)
		}
		for _, r := range []httpResult{write(v2, tok), do(t, e, "GET", v2.url+"secrets/canary?api-version=7.4", tok, "", "")} {
			if code, inner := azureError(r.Body); r.Status != http.StatusForbidden || code != "Forbidden" || inner != "ForbiddenByRbac" {
				t.Fatalf("on another vault: %d %s, want 403 Forbidden/ForbiddenByRbac", r.Status, r.Body)
			}
		}
		v2.unchanged(t, "managed identity on another vault", "")
	})
}

// TestAttackMalformedAuthorization: Authorization headers that are not one
// well-formed Bearer token are refused on both planes with 401.
func TestAttackMalformedAuthorization(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	v := newAttackVault(t, e, "attackheaders")
	good := v.admin
	mgood := v.mgmtTok
	for _, c := range []struct{ name, data, mgmt string }{
		{"empty Bearer", "Bearer", "Bearer"},
		{"Bearer and a space", "Bearer ", "Bearer "},
		{"Basic scheme", "Basic " + good, "Basic " + mgood},
		{"PoP scheme", "PoP " + good, "PoP " + mgood},
		{"no scheme", good, mgood},
		{"trailing garbage", "Bearer " + good + " x", "Bearer " + mgood + " x"},
		{"base64 padding", "Bearer " + good + "==", "Bearer " + mgood + "=="},
		{"two tokens", "Bearer " + good + ",Bearer " + good, "Bearer " + mgood + ",Bearer " + mgood},
		{"20 KB token", "Bearer " + strings.Repeat("a", 20<<10), "Bearer " + strings.Repeat("a", 20<<10)},
		{"four parts", "Bearer " + good + ".x", "Bearer " + mgood + ".x"},
		{"two parts", "Bearer " + good[:strings.LastIndexByte(good, '.')], "Bearer " + mgood[:strings.LastIndexByte(mgood, '.')]},
		{"percent-encoded token", "Bearer " + strings.ReplaceAll(good, ".", "%2E"), "Bearer " + strings.ReplaceAll(mgood, ".", "%2E")},
	} {
		t.Run(c.name, func(t *testing.T) {
			v.refusedData(t, c.data)
			v.refusedMgmt(t, c.mgmt)
		})
	}
	v.unchanged(t, "malformed Authorization", "")
}
