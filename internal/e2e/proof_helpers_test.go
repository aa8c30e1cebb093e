package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// clientFor is an azsecrets client for vaultURL with cred.
func clientFor(t *testing.T, e *kwtest.Env, vaultURL string, cred azcore.TokenCredential) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// secondTenant creates another tenant with an administrator and a vault.
func secondTenant(t *testing.T, e *kwtest.Env, vaultName string) *server.TenantBootstrap {
	t.Helper()
	tb, err := e.Server.BootstrapTenant(context.Background(), "other", vaultName)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// httpResult is a raw HTTP exchange.
type httpResult struct {
	Status int
	Header http.Header
	Body   string
}

// do sends a raw request; token "" sends no Authorization header.
func do(t *testing.T, e *kwtest.Env, method, url, token, contentType, body string) httpResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpResult{Status: resp.StatusCode, Header: resp.Header, Body: string(raw)}
}

// jwtClaims decodes (without verifying) the header and claims of a JWT.
func jwtClaims(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	dec := func(s string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

// devObjectID is the object ID of the dev service principal, read from a
// token issued to it.
func devObjectID(t *testing.T, e *kwtest.Env) string {
	t.Helper()
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	_, c := jwtClaims(t, tok.Token)
	oid, _ := c["oid"].(string)
	if oid == "" {
		t.Fatal("token has no oid")
	}
	return oid
}

func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
