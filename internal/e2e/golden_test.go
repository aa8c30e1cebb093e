package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/kwtest"
)

// The golden wire tests of each surface (golden_helpers_test.go): what the
// official SDKs parse, byte for byte up to run-specific values.

func goldenToken(t *testing.T, e *kwtest.Env, scope string) string {
	t.Helper()
	tok, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}, TenantID: e.Info.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func TestGoldenDataPlane(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	g := newGolden(t, e, "dataplane")
	g.name(devVaultName(e), "{vault}")
	tok := goldenToken(t, e, tokenOpts(e).Scopes[0])
	base := strings.TrimSuffix(e.Info.VaultURL, "/")
	u := func(path string) string { return base + path }
	const v = "?api-version=7.5"

	// Authentication and request errors.
	g.do("challenge-no-token", req{method: http.MethodGet, url: u("/secrets/golden" + v)})
	g.do("challenge-invalid-token", req{method: http.MethodGet, url: u("/secrets/golden" + v), token: "not-a-token"})
	g.do("api-version-unknown", req{method: http.MethodGet, url: u("/secrets/golden?api-version=1.0"), token: tok})
	g.do("api-version-missing", req{method: http.MethodGet, url: u("/secrets/golden"), token: tok})
	g.do("method-not-allowed", req{method: http.MethodPost, url: u("/secrets/golden" + v), token: tok})
	g.do("route-not-found", req{method: http.MethodGet, url: u("/nothing" + v), token: tok})
	g.do("vault-not-found", req{method: http.MethodGet, url: strings.Replace(u("/secrets/golden"+v), "//"+devVaultName(e)+".", "//nosuchvault.", 1), token: tok})
	unpriv, err := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret).GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	g.do("forbidden-by-rbac", req{method: http.MethodGet, url: u("/secrets/golden" + v), token: unpriv.Token})

	// Secrets.
	g.do("secret-get-not-found", req{method: http.MethodGet, url: u("/secrets/golden" + v), token: tok})
	g.do("secret-set-bad-name", req{method: http.MethodPut, url: u("/secrets/bad_name" + v), token: tok, json: map[string]any{"value": "x"}})
	g.do("secret-set-no-value", req{method: http.MethodPut, url: u("/secrets/golden" + v), token: tok, json: map[string]any{"contentType": "text/plain"}})
	g.do("secret-set-bad-json", req{method: http.MethodPut, url: u("/secrets/golden" + v), token: tok, json: []int{1}})
	_, set := g.do("secret-set", req{method: http.MethodPut, url: u("/secrets/golden" + v), token: tok,
		json: map[string]any{"value": "s3cr3t", "contentType": "text/plain", "tags": map[string]string{"env": "golden"}}})
	g.do("secret-set-second-version", req{method: http.MethodPut, url: u("/secrets/golden" + v), token: tok, json: map[string]any{"value": "again"}})
	g.do("secret-get", req{method: http.MethodGet, url: u("/secrets/golden" + v), token: tok})
	id, _ := set["id"].(string)
	version := id[strings.LastIndexByte(id, '/')+1:]
	g.do("secret-get-version", req{method: http.MethodGet, url: u("/secrets/golden/" + version + v), token: tok})
	g.do("secret-get-version-not-found", req{method: http.MethodGet, url: u("/secrets/golden/00000000000000000000000000000000" + v), token: tok})
	g.do("secret-update", req{method: http.MethodPatch, url: u("/secrets/golden/" + version + v), token: tok,
		json: map[string]any{"contentType": "application/json", "attributes": map[string]any{"enabled": false}}})
	g.do("secret-get-disabled-version", req{method: http.MethodGet, url: u("/secrets/golden/" + version + v), token: tok})
	g.do("secret-list", req{method: http.MethodGet, url: u("/secrets" + v), token: tok})
	// Paging: the SDK pagers follow nextLink.
	g.do("secret-set-other", req{method: http.MethodPut, url: u("/secrets/golden-other" + v), token: tok, json: map[string]any{"value": "x"}})
	_, page := g.do("secret-list-page-1", req{method: http.MethodGet, url: u("/secrets" + v + "&maxresults=1"), token: tok})
	next, _ := page["nextLink"].(string)
	if next == "" {
		t.Fatal("no nextLink with maxresults=1 and two secrets")
	}
	g.do("secret-list-page-2", req{method: http.MethodGet, url: next, token: tok})
	g.do("secret-list-bad-maxresults", req{method: http.MethodGet, url: u("/secrets" + v + "&maxresults=26"), token: tok})
	g.do("secret-list-bad-skiptoken", req{method: http.MethodGet, url: u("/secrets" + v + "&$skiptoken=%21%21"), token: tok})
	g.do("secret-delete-other", req{method: http.MethodDelete, url: u("/secrets/golden-other" + v), token: tok})
	g.do("deletedsecret-purge-other", req{method: http.MethodDelete, url: u("/deletedsecrets/golden-other" + v), token: tok})
	g.do("secret-list-versions", req{method: http.MethodGet, url: u("/secrets/golden/versions" + v), token: tok, unordered: true})
	g.do("secret-backup", req{method: http.MethodPost, url: u("/secrets/golden/backup" + v), token: tok, volatile: []string{"value"}})
	g.do("secret-delete", req{method: http.MethodDelete, url: u("/secrets/golden" + v), token: tok})
	g.do("secret-get-deleted", req{method: http.MethodGet, url: u("/secrets/golden" + v), token: tok})
	g.do("secret-set-while-deleted-conflict", req{method: http.MethodPut, url: u("/secrets/golden" + v), token: tok, json: map[string]any{"value": "x"}})
	g.do("deletedsecret-get", req{method: http.MethodGet, url: u("/deletedsecrets/golden" + v), token: tok})
	g.do("deletedsecret-list", req{method: http.MethodGet, url: u("/deletedsecrets" + v), token: tok})
	g.do("deletedsecret-recover", req{method: http.MethodPost, url: u("/deletedsecrets/golden/recover" + v), token: tok})
	g.do("deletedsecret-get-not-found", req{method: http.MethodGet, url: u("/deletedsecrets/golden" + v), token: tok})

	// Backup and restore.
	g.do("secret-set-restorable", req{method: http.MethodPut, url: u("/secrets/golden-restore" + v), token: tok, json: map[string]any{"value": "r"}})
	_, blob := g.do("secret-backup-restorable", req{method: http.MethodPost, url: u("/secrets/golden-restore/backup" + v), token: tok, volatile: []string{"value"}})
	g.do("secret-delete-restorable", req{method: http.MethodDelete, url: u("/secrets/golden-restore" + v), token: tok})
	g.do("deletedsecret-purge-restorable", req{method: http.MethodDelete, url: u("/deletedsecrets/golden-restore" + v), token: tok})
	g.do("secret-restore", req{method: http.MethodPost, url: u("/secrets/restore" + v), token: tok, reqVolatile: []string{"value"},
		json: map[string]any{"value": blob["value"]}})
	g.do("secret-restore-conflict", req{method: http.MethodPost, url: u("/secrets/restore" + v), token: tok, reqVolatile: []string{"value"},
		json: map[string]any{"value": blob["value"]}})
	g.do("secret-restore-bad-blob", req{method: http.MethodPost, url: u("/secrets/restore" + v), token: tok, json: map[string]any{"value": b64url([]byte("not a backup"))}})

	// Keys.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g.do("key-import-ec", req{method: http.MethodPut, url: u("/keys/golden-imported" + v), token: tok, reqVolatile: []string{"d"},
		json: map[string]any{"key": map[string]any{"kty": "EC", "crv": "P-256", "x": b64url(ec.X.FillBytes(make([]byte, 32))),
			"y": b64url(ec.Y.FillBytes(make([]byte, 32))), "d": b64url(ec.D.FillBytes(make([]byte, 32))), "key_ops": []string{"sign", "verify"}},
			"attributes": map[string]any{"enabled": true}}})
	g.do("key-import-no-key", req{method: http.MethodPut, url: u("/keys/golden-imported" + v), token: tok, json: map[string]any{"attributes": map[string]any{"enabled": true}}})
	g.do("key-get-not-found", req{method: http.MethodGet, url: u("/keys/golden-rsa" + v), token: tok})
	g.do("key-create-bad-kty", req{method: http.MethodPost, url: u("/keys/golden-rsa/create" + v), token: tok, json: map[string]any{"kty": "FOO"}})
	g.do("key-create-bad-size", req{method: http.MethodPost, url: u("/keys/golden-rsa/create" + v), token: tok, json: map[string]any{"kty": "RSA", "key_size": 1000}})
	g.do("key-create-rsa", req{method: http.MethodPost, url: u("/keys/golden-rsa/create" + v), token: tok,
		json: map[string]any{"kty": "RSA", "key_size": 2048, "tags": map[string]string{"env": "golden"}}})
	g.do("key-create-ec", req{method: http.MethodPost, url: u("/keys/golden-ec/create" + v), token: tok,
		json: map[string]any{"kty": "EC", "crv": "P-256", "key_ops": []string{"sign", "verify"}}})
	g.do("key-get", req{method: http.MethodGet, url: u("/keys/golden-rsa" + v), token: tok})
	g.do("key-list", req{method: http.MethodGet, url: u("/keys" + v), token: tok})
	_, enc := g.do("key-encrypt", req{method: http.MethodPost, url: u("/keys/golden-rsa/encrypt" + v), token: tok, volatile: []string{"value"},
		json: map[string]any{"alg": "RSA-OAEP-256", "value": b64url([]byte("golden plaintext"))}})
	g.do("key-decrypt", req{method: http.MethodPost, url: u("/keys/golden-rsa/decrypt" + v), token: tok,
		reqVolatile: []string{"value"},
		json:        map[string]any{"alg": "RSA-OAEP-256", "value": enc["value"]}})
	g.do("key-decrypt-bad-ciphertext", req{method: http.MethodPost, url: u("/keys/golden-rsa/decrypt" + v), token: tok,
		json: map[string]any{"alg": "RSA-OAEP-256", "value": b64url([]byte("not a ciphertext"))}})
	g.do("key-encrypt-bad-alg", req{method: http.MethodPost, url: u("/keys/golden-rsa/encrypt" + v), token: tok,
		json: map[string]any{"alg": "NOPE", "value": b64url([]byte("x"))}})
	digest := sha256.Sum256([]byte("golden"))
	_, sig := g.do("key-sign", req{method: http.MethodPost, url: u("/keys/golden-ec/sign" + v), token: tok, volatile: []string{"value"},
		json: map[string]any{"alg": "ES256", "value": b64url(digest[:])}})
	g.do("key-verify", req{method: http.MethodPost, url: u("/keys/golden-ec/verify" + v), token: tok, reqVolatile: []string{"value"},
		json: map[string]any{"alg": "ES256", "digest": b64url(digest[:]), "value": sig["value"]}})
	g.do("key-sign-wrong-op", req{method: http.MethodPost, url: u("/keys/golden-ec/encrypt" + v), token: tok,
		json: map[string]any{"alg": "RSA-OAEP-256", "value": b64url([]byte("x"))}})
	_, wrapped := g.do("key-wrap", req{method: http.MethodPost, url: u("/keys/golden-rsa/wrapkey" + v), token: tok, volatile: []string{"value"},
		json: map[string]any{"alg": "RSA-OAEP", "value": b64url(make([]byte, 32))}})
	g.do("key-unwrap", req{method: http.MethodPost, url: u("/keys/golden-rsa/unwrapkey" + v), token: tok,
		reqVolatile: []string{"value"},
		json:        map[string]any{"alg": "RSA-OAEP", "value": wrapped["value"]}})
	g.do("key-rotationpolicy-get", req{method: http.MethodGet, url: u("/keys/golden-rsa/rotationpolicy" + v), token: tok})
	g.do("key-rotationpolicy-set", req{method: http.MethodPut, url: u("/keys/golden-rsa/rotationpolicy" + v), token: tok,
		json: map[string]any{"lifetimeActions": []any{map[string]any{"trigger": map[string]any{"timeBeforeExpiry": "P30D"}, "action": map[string]any{"type": "Rotate"}}},
			"attributes": map[string]any{"expiryTime": "P90D"}}})
	g.do("key-rotate", req{method: http.MethodPost, url: u("/keys/golden-rsa/rotate" + v), token: tok})
	g.do("key-delete", req{method: http.MethodDelete, url: u("/keys/golden-ec" + v), token: tok})
	g.do("deletedkey-get", req{method: http.MethodGet, url: u("/deletedkeys/golden-ec" + v), token: tok})

	// Certificates.
	policy := map[string]any{
		"key_props":    map[string]any{"exportable": true, "kty": "RSA", "key_size": 2048, "reuse_key": false},
		"secret_props": map[string]any{"contentType": "application/x-pkcs12"},
		"x509_props":   map[string]any{"subject": "CN=golden-cert", "validity_months": 12},
		"issuer":       map[string]any{"name": "Self"},
	}
	g.do("certificate-get-not-found", req{method: http.MethodGet, url: u("/certificates/golden-cert" + v), token: tok})
	g.do("certificate-create-no-policy", req{method: http.MethodPost, url: u("/certificates/golden-cert/create" + v), token: tok, json: map[string]any{}})
	g.do("certificate-create", req{method: http.MethodPost, url: u("/certificates/golden-cert/create" + v), token: tok, json: map[string]any{"policy": policy}})
	waitCertificate(t, e, "golden-cert", tok)
	g.do("certificate-pending-get", req{method: http.MethodGet, url: u("/certificates/golden-cert/pending" + v), token: tok})
	g.do("certificate-get", req{method: http.MethodGet, url: u("/certificates/golden-cert" + v), token: tok})
	g.do("certificate-policy-get", req{method: http.MethodGet, url: u("/certificates/golden-cert/policy" + v), token: tok})
	g.do("certificate-list", req{method: http.MethodGet, url: u("/certificates" + v), token: tok})
	g.do("certificate-secret-get", req{method: http.MethodGet, url: u("/secrets/golden-cert" + v), token: tok, volatile: []string{"value"}})
	g.do("certificate-key-get", req{method: http.MethodGet, url: u("/keys/golden-cert" + v), token: tok})
	g.do("certificate-issuers-list", req{method: http.MethodGet, url: u("/certificates/issuers" + v), token: tok})
	g.do("certificate-contacts-get-not-found", req{method: http.MethodGet, url: u("/certificates/contacts" + v), token: tok})
	g.do("certificate-delete", req{method: http.MethodDelete, url: u("/certificates/golden-cert" + v), token: tok})
}

// waitCertificate waits until the pending operation of a certificate is no
// longer in progress (self-signed issuance completes without outside help).
func waitCertificate(t *testing.T, e *kwtest.Env, name, tok string) {
	t.Helper()
	u := strings.TrimSuffix(e.Info.VaultURL, "/") + "/certificates/" + name + "/pending?api-version=7.5"
	for i := 0; i < 600; i++ {
		r := do(t, e, http.MethodGet, u, tok, "", "")
		if r.Status != http.StatusOK || !strings.Contains(r.Body, `"inProgress"`) {
			return
		}
		waitBriefly()
	}
	t.Fatalf("certificate %s still pending", name)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestGoldenManagement(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	g := newGolden(t, e, "management")
	g.name(devVaultName(e), "{vault}")
	tok := goldenToken(t, e, mgmtScope(e))
	base := strings.TrimSuffix(e.Info.ManagementURL, "/")
	rg := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup
	vaultPath := rg + "/providers/Microsoft.KeyVault/vaults/goldenvault"
	const vv = "?api-version=2023-07-01"
	const av = "?api-version=2022-04-01"

	g.do("metadata-endpoints", req{method: http.MethodGet, url: base + "/metadata/endpoints?api-version=2022-09-01"})
	g.do("challenge-no-token", req{method: http.MethodGet, url: base + vaultPath + vv})
	g.do("challenge-invalid-token", req{method: http.MethodGet, url: base + vaultPath + vv, token: "not-a-token"})
	g.do("api-version-missing", req{method: http.MethodGet, url: base + vaultPath, token: tok})
	g.do("api-version-invalid", req{method: http.MethodGet, url: base + vaultPath + "?api-version=yesterday", token: tok})
	g.do("vault-get-not-found", req{method: http.MethodGet, url: base + vaultPath + vv, token: tok})
	g.do("vault-put-bad-body", req{method: http.MethodPut, url: base + vaultPath + vv, token: tok, json: []int{1}})
	g.do("vault-put-no-location", req{method: http.MethodPut, url: base + vaultPath + vv, token: tok,
		json: map[string]any{"properties": map[string]any{"tenantId": e.Info.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}}}})
	g.do("vault-put", req{method: http.MethodPut, url: base + vaultPath + vv, token: tok,
		json: map[string]any{"location": e.Info.Location, "tags": map[string]string{"env": "golden"},
			"properties": map[string]any{"tenantId": e.Info.TenantID, "sku": map[string]any{"family": "A", "name": "standard"},
				"enableRbacAuthorization": true, "enableSoftDelete": true, "softDeleteRetentionInDays": 7}}})
	g.do("vault-get", req{method: http.MethodGet, url: base + vaultPath + vv, token: tok})
	g.do("vault-list-resource-group", req{method: http.MethodGet, url: base + rg + "/providers/Microsoft.KeyVault/vaults" + vv, token: tok, unordered: true})
	g.do("vault-list-subscription", req{method: http.MethodGet, url: base + "/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.KeyVault/vaults" + vv, token: tok, unordered: true})
	sub := base + "/subscriptions/" + e.Info.SubscriptionID
	g.do("subscription-get", req{method: http.MethodGet, url: sub + "?api-version=2022-12-01", token: tok})
	g.do("resourcegroup-list", req{method: http.MethodGet, url: sub + "/resourcegroups?api-version=2022-09-01", token: tok, unordered: true})
	g.do("resourcegroup-get", req{method: http.MethodGet, url: base + rg + "?api-version=2022-09-01", token: tok})
	g.do("vault-check-name-taken", req{method: http.MethodPost, url: sub + "/providers/Microsoft.KeyVault/checkNameAvailability" + vv, token: tok,
		json: map[string]any{"name": "goldenvault", "type": "Microsoft.KeyVault/vaults"}})
	g.do("vault-check-name-available", req{method: http.MethodPost, url: sub + "/providers/Microsoft.KeyVault/checkNameAvailability" + vv, token: tok,
		json: map[string]any{"name": "goldenfree", "type": "Microsoft.KeyVault/vaults"}})
	g.do("vault-patch-tags", req{method: http.MethodPatch, url: base + vaultPath + vv, token: tok,
		json: map[string]any{"tags": map[string]string{"env": "golden", "patched": "yes"}}})
	g.do("vault-accesspolicies-add", req{method: http.MethodPut, url: base + vaultPath + "/accessPolicies/add" + vv, token: tok,
		json: map[string]any{"properties": map[string]any{"accessPolicies": []any{map[string]any{"tenantId": e.Info.TenantID,
			"objectId": e.Info.UnprivilegedObjectID, "permissions": map[string]any{"secrets": []string{"get", "list"}}}}}}})
	g.do("vault-post-not-allowed", req{method: http.MethodPost, url: base + vaultPath + vv, token: tok})
	g.do("resource-type-unknown", req{method: http.MethodGet, url: base + rg + "/providers/Microsoft.KeyVault/nothings/x" + vv, token: tok})

	// Role assignments at the new vault's scope.
	roleDef := "/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"
	raPath := vaultPath + "/providers/Microsoft.Authorization/roleAssignments/"
	const ra1, ra2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	g.name(ra1, "{assignment-1}")
	g.name(ra2, "{assignment-2}")
	g.do("roledefinition-get", req{method: http.MethodGet, url: base + roleDef + av, token: tok})
	g.do("roleassignment-put", req{method: http.MethodPut, url: base + raPath + ra1 + av, token: tok,
		json: map[string]any{"properties": map[string]any{"roleDefinitionId": roleDef, "principalId": e.Info.UnprivilegedObjectID}}})
	g.do("roleassignment-put-duplicate-conflict", req{method: http.MethodPut, url: base + raPath + ra2 + av, token: tok,
		json: map[string]any{"properties": map[string]any{"roleDefinitionId": roleDef, "principalId": e.Info.UnprivilegedObjectID}}})
	g.do("roleassignment-put-bad-role", req{method: http.MethodPut, url: base + raPath + ra2 + av, token: tok,
		json: map[string]any{"properties": map[string]any{"roleDefinitionId": "/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-4000-8000-000000000000", "principalId": e.Info.UnprivilegedObjectID}}})
	g.do("roleassignment-get", req{method: http.MethodGet, url: base + raPath + ra1 + av, token: tok})
	g.do("roleassignment-list", req{method: http.MethodGet, url: base + vaultPath + "/providers/Microsoft.Authorization/roleAssignments" + av, token: tok, unordered: true})
	g.do("roleassignment-get-not-found", req{method: http.MethodGet, url: base + raPath + ra2 + av, token: tok})
	g.do("roleassignment-delete", req{method: http.MethodDelete, url: base + raPath + ra1 + av, token: tok})

	unpriv, err := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret).GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
	if err != nil {
		t.Fatal(err)
	}
	g.do("vault-get-forbidden", req{method: http.MethodGet, url: base + vaultPath + vv, token: unpriv.Token})
	g.do("vault-delete", req{method: http.MethodDelete, url: base + vaultPath + vv, token: tok})
	g.do("vault-get-after-delete", req{method: http.MethodGet, url: base + vaultPath + vv, token: tok})
	deleted := sub + "/providers/Microsoft.KeyVault/locations/" + e.Info.Location + "/deletedVaults/goldenvault"
	g.do("deletedvault-list", req{method: http.MethodGet, url: sub + "/providers/Microsoft.KeyVault/deletedVaults" + vv, token: tok, unordered: true})
	g.do("deletedvault-get", req{method: http.MethodGet, url: deleted + vv, token: tok})
	g.do("deletedvault-purge", req{method: http.MethodPost, url: deleted + "/purge" + vv, token: tok})
	g.do("deletedvault-get-after-purge", req{method: http.MethodGet, url: deleted + vv, token: tok})
}

func TestGoldenTokenService(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	g := newGolden(t, e, "tokenservice")
	g.name(e.Info.ClientSecret, "{client-secret}")
	auth := strings.TrimSuffix(e.Info.AuthorityHost, "/") + "/" + e.Info.TenantID
	vaultScope := tokenOpts(e).Scopes[0]
	vaultResource := strings.TrimSuffix(vaultScope, "/.default")

	g.do("discovery-v2", req{method: http.MethodGet, url: auth + "/v2.0/.well-known/openid-configuration"})
	g.do("discovery-v1", req{method: http.MethodGet, url: auth + "/.well-known/openid-configuration"})
	g.do("discovery-unknown-tenant", req{method: http.MethodGet, url: strings.TrimSuffix(e.Info.AuthorityHost, "/") + "/00000000-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration"})
	g.do("jwks-v2", req{method: http.MethodGet, url: auth + "/discovery/v2.0/keys", volatile: []string{"kid", "x5t"}})
	g.do("jwks-v1", req{method: http.MethodGet, url: auth + "/discovery/keys", volatile: []string{"kid", "x5t"}})

	form := func(kv ...string) url.Values {
		f := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	tokenV2, tokenV1 := auth+"/oauth2/v2.0/token", auth+"/oauth2/token"
	g.do("token-v2-client-credentials", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "client_secret", e.Info.ClientSecret, "scope", vaultScope)})
	g.do("token-v1-client-credentials", req{method: http.MethodPost, url: tokenV1,
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "client_secret", e.Info.ClientSecret, "resource", vaultResource)})
	g.do("token-bad-secret", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "client_secret", "wrong", "scope", vaultScope)})
	g.do("token-unknown-client", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "client_credentials", "client_id", "00000000-0000-4000-8000-000000000000", "client_secret", "x", "scope", vaultScope)})
	g.do("token-unknown-resource", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "client_secret", e.Info.ClientSecret, "scope", "https://nothing.example/.default")})
	g.do("token-unsupported-grant", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "urn:nothing", "client_id", e.Info.ClientID, "scope", vaultScope)})
	g.do("token-no-grant-type", req{method: http.MethodPost, url: tokenV2, form: form("client_id", e.Info.ClientID)})
	g.do("token-unknown-tenant", req{method: http.MethodPost, url: strings.TrimSuffix(e.Info.AuthorityHost, "/") + "/00000000-0000-4000-8000-000000000000/oauth2/v2.0/token",
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "client_secret", e.Info.ClientSecret, "scope", vaultScope)})
	g.do("token-get-not-found", req{method: http.MethodGet, url: tokenV2})
	g.do("token-client-assertion-invalid", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "scope", vaultScope,
			"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion", "not.a.jwt")})
	g.do("token-no-credential", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "client_credentials", "client_id", e.Info.ClientID, "scope", vaultScope)})
	g.do("devicecode", req{method: http.MethodPost, url: auth + "/oauth2/v2.0/devicecode", volatile: []string{"device_code", "user_code", "message"},
		form: form("client_id", e.Info.ClientID, "scope", vaultScope+" offline_access")})
	g.do("token-device-code-unknown", req{method: http.MethodPost, url: tokenV2,
		form: form("grant_type", "urn:ietf:params:oauth:grant-type:device_code", "client_id", e.Info.ClientID, "device_code", "nothing")})
}

func TestGoldenManagedIdentity(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	g := newGolden(t, e, "managedidentity")
	mi := newManagedIdentity(t, e, "golden", nil)
	g.name(mi.ClientID, "{mi-client}")
	g.name(mi.ObjectID, "{mi-object}")
	g.name(mi.Header, "{identity-header}")
	host := strings.TrimSuffix(e.Info.AuthorityHost, "/")
	res := url.QueryEscape("https://vault.localhost:" + port(e))
	hdr := map[string]string{"X-IDENTITY-HEADER": mi.Header}

	g.do("appservice-token", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01&resource=" + res, header: hdr})
	g.do("appservice-token-client-id", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01&client_id=" + mi.ClientID + "&resource=" + res, header: hdr})
	g.do("appservice-wrong-header", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01&resource=" + res, header: map[string]string{"X-IDENTITY-HEADER": mi.Header + "x"}})
	g.do("appservice-no-header", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01&resource=" + res})
	g.do("appservice-no-resource", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01", header: hdr})
	g.do("appservice-unknown-resource", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01&resource=https%3A%2F%2Fnothing.example", header: hdr})
	g.do("appservice-unknown-identity", req{method: http.MethodGet, url: host + "/msi/token?api-version=2019-08-01&client_id=00000000-0000-4000-8000-000000000000&resource=" + res, header: hdr})
	g.do("method-not-allowed", req{method: http.MethodPut, url: host + "/msi/token?api-version=2019-08-01&resource=" + res, header: hdr})
	g.do("cloudshell-no-binding", req{method: http.MethodPost, url: host + "/msi/token", header: map[string]string{"Metadata": "true"},
		form: url.Values{"resource": {"https://vault.localhost:" + port(e)}}})
}

func TestGoldenSys(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	g := newGolden(t, e, "sys")
	host := strings.TrimSuffix(e.Info.AuthorityHost, "/")
	g.do("healthz", req{method: http.MethodGet, url: host + "/healthz"})
	g.do("readyz", req{method: http.MethodGet, url: host + "/readyz"})
	g.do("seal-status", req{method: http.MethodGet, url: host + "/sys/seal-status"})
	g.do("seal-no-token", req{method: http.MethodPost, url: host + "/sys/seal"})
	g.do("init-already-initialized", req{method: http.MethodPost, url: host + "/sys/init", json: map[string]any{"secret_shares": 1, "secret_threshold": 1}})
	g.do("unknown-path", req{method: http.MethodGet, url: host + "/nothing"})
	g.do("managedhsm-host", req{method: http.MethodGet, url: strings.Replace(e.Info.VaultURL, ".vault.", ".managedhsm.", 1) + "keys?api-version=7.5"})
}

// waitBriefly is the pause between two polls of a condition.
func waitBriefly() { time.Sleep(20 * time.Millisecond) }
