package e2e

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// The attack suite (attack_*_test.go) tries what an outside reviewer tried
// (issue 12): forged tokens, malformed credentials and bodies, and every
// built-in role against every operation, on both planes. Each case asserts
// the status, the Azure error code and that nothing changed, read back
// with the administrator's credentials. docs/SECURITY.md maps the threats
// to these tests.

// attackVault is an RBAC vault with a secret "canary" = canaryValue and an
// RSA key "k1", and the dev principal as its Key Vault Administrator.
type attackVault struct {
	e       *kwtest.Env
	name    string
	url     string // data-plane URL with a trailing slash
	armURL  string // management URL of the vault, without api-version
	admin   string // the dev principal's data-plane token
	mgmtTok string // the dev principal's management token
}

const canaryValue = "canary-value-1"

func newAttackVault(t *testing.T, e *kwtest.Env, name string) *attackVault {
	t.Helper()
	createVault(t, e, e.Credential(), name, true, nil)
	assign(t, e, e.Credential(), vaultScope(e, name), authz.RoleKeyVaultAdministrator, devObjectID(t, e))
	v := &attackVault{e: e, name: name, url: vaultURLOf(e, name),
		armURL:  strings.TrimSuffix(e.Info.ManagementURL, "/") + vaultScope(e, name),
		admin:   tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0]),
		mgmtTok: tokenFor(t, e.Credential(), mgmtScope(e))}
	if r := do(t, e, "PUT", v.url+"secrets/canary?api-version=7.4", v.admin, "application/json", `{"value":"`+canaryValue+`"}`); r.Status != http.StatusOK {
		t.Fatalf("canary: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, "POST", v.url+"keys/k1/create?api-version=7.4", v.admin, "application/json", `{"kty":"RSA","key_size":2048}`); r.Status != http.StatusOK {
		t.Fatalf("key k1: %d %s", r.Status, r.Body)
	}
	return v
}

func tokenFor(t *testing.T, cred azcore.TokenCredential, scope string) string {
	t.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		t.Fatalf("token for %s: %v", scope, err)
	}
	return tok.Token
}

// unchanged fails unless the canary still holds its value, no secret or
// key named name exists, and the vault's tags are as they were.
func (v *attackVault) unchanged(t *testing.T, what, name string) {
	t.Helper()
	r := do(t, v.e, "GET", v.url+"secrets/canary?api-version=7.4", v.admin, "", "")
	var s struct{ Value string }
	json.Unmarshal([]byte(r.Body), &s)
	if r.Status != http.StatusOK || s.Value != canaryValue {
		t.Fatalf("%s: the canary changed: %d %s", what, r.Status, r.Body)
	}
	if name != "" {
		if r := do(t, v.e, "GET", v.url+"secrets/"+name+"?api-version=7.4", v.admin, "", ""); r.Status != http.StatusNotFound {
			t.Fatalf("%s: secret %s exists: %d", what, name, r.Status)
		}
		if r := do(t, v.e, "GET", v.url+"keys/"+name+"?api-version=7.4", v.admin, "", ""); r.Status != http.StatusNotFound {
			t.Fatalf("%s: key %s exists: %d", what, name, r.Status)
		}
	}
	if tags := v.tags(t); len(tags) != 0 {
		t.Fatalf("%s: vault tags changed: %v", what, tags)
	}
}

func (v *attackVault) tags(t *testing.T) map[string]string {
	t.Helper()
	r := do(t, v.e, "GET", v.armURL+"?api-version=2023-07-01", v.mgmtTok, "", "")
	var out struct{ Tags map[string]string }
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &out) != nil {
		t.Fatalf("reading the vault: %d %s", r.Status, r.Body)
	}
	return out.Tags
}

// azureError is the error code of an Azure error body ({"error":{"code"}}),
// and its innererror code.
func azureError(body string) (code, inner string) {
	var b struct {
		Error struct {
			Code       string
			InnerError *struct{ Code string }
		}
	}
	json.Unmarshal([]byte(body), &b)
	if b.Error.InnerError != nil {
		inner = b.Error.InnerError.Code
	}
	return b.Error.Code, inner
}

// doAuth sends a request with a raw Authorization header value.
func doAuth(t *testing.T, e *kwtest.Env, method, url, authorization, body string) httpResult {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequest(method, url, rd)
	} else {
		req, err = http.NewRequest(method, url, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: sb.String()}
}

// JWT forgery.

func b64JSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(raw)
}

// signedJWT is header.claims signed by sign (nil: an empty signature).
func signedJWT(t *testing.T, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	input := b64JSON(t, header) + "." + b64JSON(t, claims)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64(sig)
}

func rs256(key *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, h[:])
		if err != nil {
			panic(err)
		}
		return sig
	}
}

func hs256(key []byte) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil)
	}
}

func cloneClaims(c map[string]any, set map[string]any, del ...string) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for k, v := range set {
		out[k] = v
	}
	for _, k := range del {
		delete(out, k)
	}
	return out
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
