package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestQuorumApprovalVaultPurge: the tenant's policy protects ARM's purge of
// a deleted vault (armkeyvault BeginPurgeDeleted). The purge answers 202
// with the ApprovalRequired error and a Location the SDK's poller follows
// (202 while pending); the vault stays recoverable; the requester cannot
// approve; two approvers on the management host's tenant-level approval API
// approve and the purge runs once, as the requester, and the poller ends
// well. A rejected purge ends the poller with ApprovalRejected and leaves
// its vault recoverable.
func TestQuorumApprovalVaultPurge(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	admin := devObjectID(t, e)
	a, b := newSP(t, e, "purge-approver-a"), newSP(t, e, "purge-approver-b")
	mgmt := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok.Token, "application/json", body)
	}
	if r := mgmt(e.Credential(), http.MethodPut, "tenantPolicy", `{"operations":["DeletedVaultPurge"],"approvers":["`+a.ObjectID+`","`+b.ObjectID+`"],"approvalsRequired":2}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	vc := vaultsARM(t, e, e.Credential())
	for _, n := range []string{"qpurge1", "qpurge2"} {
		createVault(t, e, e.Credential(), n, true, nil)
		if _, err := vc.Delete(ctx, e.Info.ResourceGroup, n, nil); err != nil {
			t.Fatalf("delete %s (not protected by this policy): %v", n, err)
		}
	}
	// A purge of a vault that is not deleted is ARM's 404, not a request.
	_, err := vc.BeginPurgeDeleted(ctx, "nosuchvault", e.Info.Location, nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")

	purge := func(name string) (*runtime.Poller[armkeyvault.VaultsClientPurgeDeletedResponse], string) {
		var raw *http.Response
		pp, err := vc.BeginPurgeDeleted(runtime.WithCaptureResponse(ctx, &raw), name, e.Info.Location, nil)
		if err != nil {
			t.Fatalf("purge %s: %v", name, err)
		}
		body, err := runtime.Payload(raw)
		var out struct {
			Error    struct{ Code, Message string }
			Approval struct{ ID, Operation, Requester, PolicyScope string }
		}
		if err != nil || raw.StatusCode != http.StatusAccepted || json.Unmarshal(body, &out) != nil || out.Error.Code != "ApprovalRequired" ||
			out.Approval.Operation != "DeletedVaultPurge" || out.Approval.Requester != strings.ToLower(admin) || !strings.HasPrefix(out.Approval.PolicyScope, "tenant/") ||
			!strings.Contains(raw.Header.Get("Location"), "/providers/Keyward.Quorum/approvals/"+out.Approval.ID+"/operation") {
			t.Fatalf("purge %s pending answer: %d %s %s", name, raw.StatusCode, raw.Header.Get("Location"), body)
		}
		// The poller follows Location: still running while pending.
		if _, err := pp.Poll(ctx); err != nil || pp.Done() {
			t.Fatalf("poll while pending: done=%v %v", pp.Done(), err)
		}
		if _, err := vc.GetDeleted(ctx, name, e.Info.Location, nil); err != nil {
			t.Fatalf("%s is no longer recoverable before approval: %v", name, err)
		}
		return pp, out.Approval.ID
	}

	pp, id := purge("qpurge1")
	if r := mgmt(e.Credential(), http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusForbidden {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := mgmt(a.Cred, http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Pending"`) {
		t.Fatalf("first approval: %d %s", r.Status, r.Body)
	}
	if _, err := vc.GetDeleted(ctx, "qpurge1", e.Info.Location, nil); err != nil {
		t.Fatalf("purged after one approval of two: %v", err)
	}
	if r := mgmt(b.Cred, http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("second approval: %d %s", r.Status, r.Body)
	}
	if _, err := pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 1}); err != nil {
		t.Fatalf("the approved purge's poller: %v", err)
	}
	_, err = vc.GetDeleted(ctx, "qpurge1", e.Info.Location, nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
	ev := findAudit(t, e, "the approved vault purge", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Service == "management"
	})
	if ev.Operation != "DeletedVaultPurge" || ev.Caller.ObjectID != strings.ToLower(admin) ||
		!slices.Contains(ev.Approval.Approvers, strings.ToLower(a.ObjectID)) || !slices.Contains(ev.Approval.Approvers, strings.ToLower(b.ObjectID)) {
		t.Fatalf("executed event: %+v %+v", ev, ev.Approval)
	}
	// Once: the executed request cannot be approved again.
	if r := mgmt(b.Cred, http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusConflict {
		t.Fatalf("approve again: %d %s", r.Status, r.Body)
	}

	pp, id = purge("qpurge2")
	if r := mgmt(a.Cred, http.MethodPost, "approvals/"+id+"/reject", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Rejected"`) {
		t.Fatalf("reject: %d %s", r.Status, r.Body)
	}
	_, err = pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 1})
	wantErr(t, err, http.StatusConflict, "ApprovalRejected")
	if _, err := vc.GetDeleted(ctx, "qpurge2", e.Info.Location, nil); err != nil {
		t.Fatalf("the rejected purge's vault: %v", err)
	}
}
