package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAttackRoleMatrix: each built-in Key Vault role, assigned at the
// vault, against each operation of both planes. An allowed operation
// succeeds and its effect is there; a denied one gets 403 (data plane:
// Forbidden/ForbiddenByRbac; management plane: AuthorizationFailed) and
// its effect is not. The expected cells follow the role definitions Azure
// publishes (azure-docs built-in-roles/security.md).
func TestAttackRoleMatrix(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	v := newAttackVault(t, e, "attackroles")

	type op struct {
		name   string
		plane  string // "data" or "mgmt"
		method string
		path   func(role string) string // data: relative to the vault URL; mgmt: relative to the vault's ARM ID (nil: the vault)
		body   func(role string) string
		// effect reports whether the operation's write is visible (nil: a read).
		effect func(t *testing.T, role string) bool
	}
	assignmentName := map[string]string{}
	slug := func(role string) string { return strings.ToLower(strings.ReplaceAll(role, " ", "")) }
	exists := func(kind, name string) bool {
		r := do(t, e, "GET", v.url+kind+"/"+name+"?api-version=7.4", v.admin, "", "")
		return r.Status == http.StatusOK
	}
	grant := func(name, roleID string) op {
		key := func(r string) string { return assignmentName[r+"|"+roleID] }
		return op{name: name, plane: "mgmt", method: "PUT",
			path: func(r string) string { return "/providers/Microsoft.Authorization/roleAssignments/" + key(r) },
			body: func(string) string {
				return `{"properties":{"roleDefinitionId":"/subscriptions/` + e.Info.SubscriptionID + `/providers/Microsoft.Authorization/roleDefinitions/` +
					roleID + `","principalId":"` + e.Info.UnprivilegedObjectID + `"}}`
			},
			effect: func(t *testing.T, r string) bool {
				res := do(t, e, "GET", v.armURL+"/providers/Microsoft.Authorization/roleAssignments/"+key(r)+"?api-version=2022-04-01", v.mgmtTok, "", "")
				return res.Status == http.StatusOK
			}}
	}
	ops := []op{
		{name: "secret get", plane: "data", method: "GET", path: func(string) string { return "secrets/canary" }},
		{name: "secret list", plane: "data", method: "GET", path: func(string) string { return "secrets" }},
		{name: "secret set", plane: "data", method: "PUT", path: func(r string) string { return "secrets/m-" + slug(r) },
			body:   func(string) string { return `{"value":"x"}` },
			effect: func(t *testing.T, r string) bool { return exists("secrets", "m-"+slug(r)) }},
		{name: "key get", plane: "data", method: "GET", path: func(string) string { return "keys/k1" }},
		{name: "key create", plane: "data", method: "POST", path: func(r string) string { return "keys/mk-" + slug(r) + "/create" },
			body:   func(string) string { return `{"kty":"EC","crv":"P-256"}` },
			effect: func(t *testing.T, r string) bool { return exists("keys", "mk-"+slug(r)) }},
		{name: "key sign", plane: "data", method: "POST", path: func(string) string { return "keys/k1/sign" },
			body: func(string) string { return `{"alg":"RS256","value":"` + b64(make([]byte, 32)) + `"}` }},
		{name: "key wrap", plane: "data", method: "POST", path: func(string) string { return "keys/k1/wrapkey" },
			body: func(string) string { return `{"alg":"RSA-OAEP-256","value":"` + b64(make([]byte, 32)) + `"}` }},
		{name: "certificate list", plane: "data", method: "GET", path: func(string) string { return "certificates" }},
		{name: "vault read", plane: "mgmt", method: "GET"},
		{name: "vault write", plane: "mgmt", method: "PATCH", body: func(r string) string { return `{"tags":{"` + slug(r) + `":"1"}}` },
			effect: func(t *testing.T, r string) bool { _, ok := v.tags(t)[slug(r)]; return ok }},
		// Grant the unprivileged dev principal Key Vault Secrets User on
		// the vault, then Owner (an escalation the Data Access
		// Administrator's condition forbids).
		grant("role assignment write", authz.RoleKeyVaultSecretsUser),
		grant("role assignment write (Owner)", authz.RoleOwner),
	}
	// allowed[role] lists the operations the role may do.
	matrix := []struct {
		role, id string
		allowed  []string
	}{
		{"Key Vault Administrator", authz.RoleKeyVaultAdministrator, []string{"secret get", "secret list", "secret set", "key get", "key create", "key sign", "key wrap", "certificate list"}},
		{"Key Vault Secrets Officer", authz.RoleKeyVaultSecretsOfficer, []string{"secret get", "secret list", "secret set"}},
		{"Key Vault Secrets User", authz.RoleKeyVaultSecretsUser, []string{"secret get", "secret list"}},
		{"Key Vault Reader", authz.RoleKeyVaultReader, []string{"secret list", "key get", "certificate list"}},
		{"Key Vault Crypto Officer", authz.RoleKeyVaultCryptoOfficer, []string{"key get", "key create", "key sign", "key wrap"}},
		{"Key Vault Crypto User", authz.RoleKeyVaultCryptoUser, []string{"key get", "key sign", "key wrap"}},
		{"Key Vault Crypto Service Encryption User", authz.RoleKeyVaultCryptoServiceEncUser, []string{"key get", "key wrap"}},
		{"Key Vault Certificates Officer", authz.RoleKeyVaultCertificatesOfficer, []string{"certificate list"}},
		{"Key Vault Certificate User", authz.RoleKeyVaultCertificateUser, []string{"secret get", "secret list", "key get", "certificate list"}},
		{"Key Vault Contributor", authz.RoleKeyVaultContributor, []string{"vault read", "vault write"}},
		{"Key Vault Data Access Administrator", authz.RoleKeyVaultDataAccessAdministrator, []string{"role assignment write"}},
		{"no role", "", nil},
	}
	for _, m := range matrix {
		assignmentName[m.role+"|"+authz.RoleKeyVaultSecretsUser] = newGUID()
		assignmentName[m.role+"|"+authz.RoleOwner] = newGUID()
		t.Run(m.role, func(t *testing.T) {
			sp := newSP(t, e, "matrix-"+slug(m.role))
			if m.id != "" {
				assign(t, e, e.Credential(), vaultScope(e, v.name), m.id, sp.ObjectID)
			}
			dataTok := tokenFor(t, sp.Cred, tokenOpts(e).Scopes[0])
			mgmtTok := tokenFor(t, sp.Cred, mgmtScope(e))
			for _, o := range ops {
				allowed := false
				for _, a := range m.allowed {
					allowed = allowed || a == o.name
				}
				var body string
				if o.body != nil {
					body = o.body(m.role)
				}
				var r httpResult
				if o.plane == "data" {
					r = do(t, e, o.method, v.url+o.path(m.role)+"?api-version=7.4", dataTok, "application/json", body)
				} else if o.path == nil {
					r = do(t, e, o.method, v.armURL+"?api-version=2023-07-01", mgmtTok, "application/json", body)
				} else {
					r = do(t, e, o.method, v.armURL+o.path(m.role)+"?api-version=2022-04-01", mgmtTok, "application/json", body)
				}
				code, inner := azureError(r.Body)
				switch {
				case allowed && r.Status != http.StatusOK && r.Status != http.StatusCreated:
					t.Errorf("%s: %d %.200s, want 200", o.name, r.Status, r.Body)
				case !allowed && o.plane == "data" && (r.Status != http.StatusForbidden || code != "Forbidden" || inner != "ForbiddenByRbac"):
					t.Errorf("%s: %d %.200s, want 403 Forbidden/ForbiddenByRbac", o.name, r.Status, r.Body)
				case !allowed && o.plane == "mgmt" && (r.Status != http.StatusForbidden || code != "AuthorizationFailed"):
					t.Errorf("%s: %d %.200s, want 403 AuthorizationFailed", o.name, r.Status, r.Body)
				case !allowed && strings.Contains(r.Body, canaryValue):
					t.Errorf("%s: the refusal carries the secret", o.name)
				}
				if o.effect != nil && o.effect(t, m.role) != allowed {
					t.Errorf("%s: effect present = %v, want %v", o.name, !allowed, allowed)
				}
			}
		})
	}
	// The canary was never changed by anyone.
	v.unchangedValue(t)
}

func (v *attackVault) unchangedValue(t *testing.T) {
	t.Helper()
	r := do(t, v.e, "GET", v.url+"secrets/canary?api-version=7.4", v.admin, "", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"value":"`+canaryValue+`"`) {
		t.Fatalf("the canary changed: %d %s", r.Status, r.Body)
	}
}
