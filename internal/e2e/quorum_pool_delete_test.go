package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestQuorumApprovalPoolDeletePurge: the tenant's policy protects ARM's
// delete and purge of a managed HSM pool (armkeyvault ManagedHsmsClient).
// Each answers 202 ApprovalRequired with a Location the SDK's poller
// follows; the pool (then the deleted pool) stays until an approver on the
// management host approves; then the operation runs once and the poller
// ends well.
func TestQuorumApprovalPoolDeletePurge(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "pool-arm-approver")
	mgmt := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok.Token, "application/json", body)
	}
	if r := mgmt(e.Credential(), http.MethodPut, "tenantPolicy", `{"operations":["ManagedHsmDelete","DeletedManagedHsmPurge"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	hc, err := armkeyvault.NewManagedHsmsClient(e.Info.SubscriptionID, e.Credential(), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := hc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "qpool", armkeyvault.ManagedHsm{
		Location: to.Ptr(e.Info.Location), SKU: &armkeyvault.ManagedHsmSKU{Family: to.Ptr(armkeyvault.ManagedHsmSKUFamilyB), Name: to.Ptr(armkeyvault.ManagedHsmSKUNameStandardB1)},
		Properties: &armkeyvault.ManagedHsmProperties{TenantID: to.Ptr(e.Info.TenantID), InitialAdminObjectIDs: []*string{to.Ptr(e.Info.ObjectID)}},
	}, nil)
	if err == nil {
		_, err = cp.PollUntilDone(ctx, nil)
	}
	if err != nil {
		t.Fatalf("create pool: %v", err)
	}
	// pending checks the first answer of a protected call and returns the
	// approval's ID.
	pending := func(what string, raw *http.Response, op string) string {
		t.Helper()
		body, err := runtime.Payload(raw)
		var out struct {
			Error    struct{ Code string }
			Approval struct{ ID, Operation, PolicyScope string }
		}
		if err != nil || raw.StatusCode != http.StatusAccepted || json.Unmarshal(body, &out) != nil || out.Error.Code != "ApprovalRequired" ||
			out.Approval.Operation != op || !strings.HasPrefix(out.Approval.PolicyScope, "tenant/") ||
			!strings.Contains(raw.Header.Get("Location"), "/providers/Keyward.Quorum/approvals/"+out.Approval.ID+"/operation") {
			t.Fatalf("%s pending answer: %d %s %s", what, raw.StatusCode, raw.Header.Get("Location"), body)
		}
		return out.Approval.ID
	}
	approve := func(id string) {
		t.Helper()
		if r := mgmt(e.Credential(), http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusForbidden {
			t.Fatalf("self approval: %d %s", r.Status, r.Body)
		}
		if r := mgmt(a.Cred, http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
			t.Fatalf("approve: %d %s", r.Status, r.Body)
		}
		findAudit(t, e, "the approved "+id, func(ev audit.Event) bool {
			return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Service == "management"
		})
	}

	var raw *http.Response
	dp, err := hc.BeginDelete(runtime.WithCaptureResponse(ctx, &raw), e.Info.ResourceGroup, "qpool", nil)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	id := pending("delete", raw, "ManagedHsmDelete")
	if _, err := dp.Poll(ctx); err != nil || dp.Done() {
		t.Fatalf("poll while pending: done=%v %v", dp.Done(), err)
	}
	if _, err := hc.Get(ctx, e.Info.ResourceGroup, "qpool", nil); err != nil {
		t.Fatalf("the pool is gone before approval: %v", err)
	}
	approve(id)
	if _, err := dp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 1}); err != nil {
		t.Fatalf("the approved delete's poller: %v", err)
	}
	_, err = hc.Get(ctx, e.Info.ResourceGroup, "qpool", nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")

	pp, err := hc.BeginPurgeDeleted(runtime.WithCaptureResponse(ctx, &raw), "qpool", e.Info.Location, nil)
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	id = pending("purge", raw, "DeletedManagedHsmPurge")
	if _, err := hc.GetDeleted(ctx, "qpool", e.Info.Location, nil); err != nil {
		t.Fatalf("the deleted pool is gone before approval: %v", err)
	}
	approve(id)
	if _, err := pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 1}); err != nil {
		t.Fatalf("the approved purge's poller: %v", err)
	}
	_, err = hc.GetDeleted(ctx, "qpool", e.Info.Location, nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
}
