package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestOtherTenantCannotOperateTheInstance: an administrator of a second
// tenant may not seal Keyward or rotate its signing key; the operator
// tenant's administrator may.
func TestOtherTenantCannotOperateTheInstance(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	other := secondTenant(t, e, "othervault")
	mgmt := policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}}

	mgmt.TenantID = other.TenantID
	otherTok, err := e.CredentialFor(other.TenantID, other.ClientID, other.ClientSecret).GetToken(ctx, mgmt)
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(e.Info.AuthorityHost, "/")
	for _, path := range []string{"/sys/seal", "/sys/rotate-signing-key"} {
		r := do(t, e, http.MethodPost, base+path, otherTok.Token, "", "")
		if r.Status != http.StatusForbidden || !strings.Contains(r.Body, "ForbiddenByRbac") {
			t.Fatalf("%s by another tenant's admin: %d %s", path, r.Status, r.Body)
		}
	}
	if e.Server.Sealed() {
		t.Fatal("sealed by another tenant")
	}
	mgmt.TenantID = e.Info.TenantID
	tok, err := e.Credential().GetToken(ctx, mgmt)
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, e, http.MethodPost, base+"/sys/seal", tok.Token, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("seal by the operator tenant's admin: %d %s", r.Status, r.Body)
	}
	if !e.Server.Sealed() {
		t.Fatal("not sealed")
	}
}
