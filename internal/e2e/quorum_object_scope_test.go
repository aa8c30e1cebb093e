package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestQuorumApprovalRoleAssignmentObjectScope: the vault's policy on
// RoleAssignmentCreate also protects a role assignment at one of its
// objects' scope (a secret's): armauthorization's Create answers
// ApprovalRequired naming the object, the assignment does not exist and
// grants nothing until the vault's approver approves; then it is made once,
// as the requester, and the grantee reads the secret.
func TestQuorumApprovalRoleAssignmentObjectScope(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "object-ra-approver")
	vault := devVaultName(e)
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	if r := do(t, e, http.MethodPut, vaultURL+"/quorumpolicy?api-version=7.5", vaultTokenFor(t, e, e.Credential()), "application/json",
		`{"operations":["RoleAssignmentCreate"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	sc, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.SetSecret(ctx, "obj-scoped", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	grantee := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret)
	gc, err := azsecrets.NewClient(e.Info.VaultURL, grantee, &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gc.GetSecret(ctx, "obj-scoped", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")

	scope := vaultScope(e, vault) + "/secrets/obj-scoped"
	assignments := assignmentsARM(t, e, e.Credential())
	raName := newGUID()
	_, err = assignments.Create(ctx, scope, raName, armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"),
			PrincipalID:      to.Ptr(e.Info.UnprivilegedObjectID),
		}}, nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var ra struct {
		Approval struct{ ID, Operation, Target, PolicyScope string }
	}
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&ra); err != nil || ra.Approval.Operation != "RoleAssignmentCreate" ||
		ra.Approval.Target != "vaults/"+vault+"/secrets/obj-scoped" || ra.Approval.PolicyScope != "vault/"+strings.ToLower(vault) {
		t.Fatalf("object-scope role assignment 202: %+v %v", ra, err)
	}
	if _, err := assignments.Get(ctx, scope, raName, nil); err == nil {
		t.Fatal("the role assignment exists before approval")
	}
	_, err = gc.GetSecret(ctx, "obj-scoped", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	if r := do(t, e, http.MethodPost, vaultURL+"/approvals/"+ra.Approval.ID+"/approve?api-version=7.5", vaultTokenFor(t, e, e.Credential()), "", ""); r.Status != http.StatusForbidden {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, http.MethodPost, vaultURL+"/approvals/"+ra.Approval.ID+"/approve?api-version=7.5", vaultTokenFor(t, e, a.Cred), "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	if got, err := assignments.Get(ctx, scope, raName, nil); err != nil || !strings.EqualFold(*got.Properties.PrincipalID, e.Info.UnprivilegedObjectID) {
		t.Fatalf("the approved role assignment: %v", err)
	}
	findAudit(t, e, "the approved object-scope role assignment", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == ra.Approval.ID && ev.Approval.Outcome == "executed" && ev.Operation == "RoleAssignmentCreate"
	})
	// The grant holds at the object (another node would see it after its
	// access refresh; this one at once).
	if _, err := gc.GetSecret(ctx, "obj-scoped", "", nil); err != nil {
		t.Fatalf("the grantee cannot read the secret after the approved assignment: %v", err)
	}
}

// TestQuorumApprovalPIMAdminRequests: a policy on RoleAssignmentCreate also
// protects PIM's admin requests, which grant like an assignment: a
// time-bound assignment (roleAssignmentScheduleRequests AdminAssign) and an
// eligibility (roleEligibilityScheduleRequests AdminAssign) wait for the
// vault's approver; the grantee gets nothing until the approval; the
// approved time-bound assignment is then in force. Activation of an
// eligibility that exists (SelfActivate) is not diverted.
func TestQuorumApprovalPIMAdminRequests(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "pim-approver")
	grantee := newSP(t, e, "pim-grantee")
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	if r := do(t, e, http.MethodPut, vaultURL+"/quorumpolicy?api-version=7.5", vaultTokenFor(t, e, e.Credential()), "application/json",
		`{"operations":["RoleAssignmentCreate"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	scope := vaultScope(e, devVaultName(e))
	role := "/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultSecretsOfficer
	setS := func() error {
		_, err := secretsFor(t, e, e.Info.VaultURL, grantee.Cred).SetSecret(ctx, "pim-q", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil)
		return err
	}
	approvalOf := func(err error, op string) string {
		t.Helper()
		re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
		var body struct {
			Approval struct{ ID, Operation string }
		}
		if err := json.NewDecoder(re.RawResponse.Body).Decode(&body); err != nil || body.Approval.Operation != op {
			t.Fatalf("%s pending: %+v %v", op, body, err)
		}
		return body.Approval.ID
	}
	_, err := scheduleRequests(t, e, e.Credential()).Create(ctx, scope, newGUID(), armauthorization.RoleAssignmentScheduleRequest{
		Properties: &armauthorization.RoleAssignmentScheduleRequestProperties{
			PrincipalID: to.Ptr(grantee.ObjectID), RoleDefinitionID: to.Ptr(role), RequestType: to.Ptr(armauthorization.RequestTypeAdminAssign),
			ScheduleInfo: &armauthorization.RoleAssignmentScheduleRequestPropertiesScheduleInfo{StartDateTime: to.Ptr(time.Now().UTC()),
				Expiration: &armauthorization.RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration{Type: to.Ptr(armauthorization.TypeAfterDuration), Duration: to.Ptr("PT8H")}},
		}}, nil)
	id := approvalOf(err, "RoleAssignmentScheduleRequest")
	wantDenied(t, "time-bound assignment pending approval", setS(), authz.CodeRbac, string(authz.SecretsSetSecret))

	ec, err := armauthorization.NewRoleEligibilityScheduleRequestsClient(e.Credential(), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ec.Create(ctx, scope, newGUID(), armauthorization.RoleEligibilityScheduleRequest{Properties: &armauthorization.RoleEligibilityScheduleRequestProperties{
		PrincipalID: to.Ptr(grantee.ObjectID), RoleDefinitionID: to.Ptr(role), RequestType: to.Ptr(armauthorization.RequestTypeAdminAssign)}}, nil)
	approvalOf(err, "RoleEligibilityRequest")

	if r := do(t, e, http.MethodPost, vaultURL+"/approvals/"+id+"/approve?api-version=7.5", vaultTokenFor(t, e, a.Cred), "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve the time-bound assignment: %d %s", r.Status, r.Body)
	}
	if err := setS(); err != nil {
		t.Fatalf("the approved time-bound assignment grants nothing: %v", err)
	}
	findAudit(t, e, "the executed PIM assignment", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Operation == "RoleAssignmentScheduleRequest"
	})
}
