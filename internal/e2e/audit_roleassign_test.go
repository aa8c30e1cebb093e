package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAuditRoleAssignmentsInVaultReport: a role assignment made or
// deleted at a vault's scope (through armauthorization) is the vault's
// event: the vault's audit report lists it with the vault's name and
// resource ID; one at the resource group's scope, above the vault, is not
// in the vault's report.
func TestAuditRoleAssignmentsInVaultReport(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	vault := devVaultName(e)
	sp := newSP(t, e, "audited-grantee")
	atVault := assign(t, e, e.Credential(), vaultScope(e, vault), authz.RoleReader, sp.ObjectID)
	rgScope := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup
	atRG := assign(t, e, e.Credential(), rgScope, authz.RoleReader, sp.ObjectID)
	if _, err := assignmentsARM(t, e, e.Credential()).Delete(ctx, vaultScope(e, vault), atVault, nil); err != nil {
		t.Fatal(err)
	}

	base := strings.TrimSuffix(e.Info.ManagementURL, "/") + vaultScope(e, vault) + "/providers/Keyward.Audit/events?api-version=2026-01-01&$top=500"
	r := do(t, e, http.MethodGet, base, tokenFor(t, e.Credential(), mgmtScope(e)), "", "")
	var p struct {
		Value []struct {
			Operation  string `json:"operation"`
			Method     string `json:"method"`
			Vault      string `json:"vault"`
			ResourceID string `json:"resourceId"`
			Path       string `json:"path"`
			Result     string `json:"result"`
			RequestID  string `json:"request_id"`
		} `json:"value"`
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &p) != nil {
		t.Fatalf("events: %d %s", r.Status, r.Body)
	}
	// Requests, not lines: a write answered 201 has its commit-time event
	// (written before the change commits) and its final one.
	put, del := map[string]bool{}, map[string]bool{}
	for _, ev := range p.Value {
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), atRG) {
			t.Errorf("the resource group's assignment is in the vault's report: %s", raw)
		}
		if !strings.HasPrefix(ev.Operation, "RoleAssignment") || !strings.Contains(ev.Path, atVault) {
			continue
		}
		if !strings.EqualFold(ev.Vault, vault) || !strings.HasSuffix(strings.ToLower(ev.ResourceID), "/vaults/"+strings.ToLower(vault)) || ev.Result != "allowed" {
			t.Errorf("assignment event: %s", raw)
		}
		switch ev.Method {
		case http.MethodPut:
			put[ev.RequestID] = ev.Operation == "RoleAssignmentCreate"
		case http.MethodDelete:
			del[ev.RequestID] = ev.Operation == "RoleAssignmentDelete"
		}
	}
	if len(put) != 1 || len(del) != 1 {
		t.Fatalf("the vault's report has %d PUT and %d DELETE requests of its role assignment, want 1 and 1:\n%s", len(put), len(del), r.Body)
	}
	for _, ops := range []map[string]bool{put, del} {
		for id, named := range ops {
			if !named {
				t.Fatalf("request %s is not audited as RoleAssignmentCreate/Delete", id)
			}
		}
	}
	// The log itself: the resource group's assignment names no vault.
	for _, ev := range auditEvents(t, e) {
		if strings.HasPrefix(ev.Operation, "RoleAssignment") && strings.Contains(ev.Path, atRG) && (ev.Vault != "" || ev.ResourceID != "") {
			t.Errorf("the resource group's assignment is audited as vault %q", ev.Vault)
		}
	}
}
