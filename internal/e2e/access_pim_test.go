package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
)

func scheduleRequests(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential) *armauthorization.RoleAssignmentScheduleRequestsClient {
	t.Helper()
	c, err := armauthorization.NewRoleAssignmentScheduleRequestsClient(cred, armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPrivilegedAccessAndTimeWindows: the PIM idea from the seeds. An
// eligible assignment grants nothing until the principal activates it for
// a limited time with a justification (audited); the activation ends on
// its own. An administrator's time-bound assignment is in force only in
// its window. Time is a fake clock.
func TestPrivilegedAccessAndTimeWindows(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	ctx := context.Background()
	vault := vaultScope(e, devVaultName(e))
	role := "/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultSecretsOfficer
	oncall := newSP(t, e, "on-call")
	bystander := newSP(t, e, "bystander")
	setS := func(cred azcore.TokenCredential) error {
		_, err := secretsFor(t, e, e.Info.VaultURL, cred).SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("rotated")}, nil)
		return err
	}

	// The administrator makes on-call eligible (not active).
	ec, err := armauthorization.NewRoleEligibilityScheduleRequestsClient(e.Credential(), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Create(ctx, vault, newGUID(), armauthorization.RoleEligibilityScheduleRequest{Properties: &armauthorization.RoleEligibilityScheduleRequestProperties{
		PrincipalID: to.Ptr(oncall.ObjectID), RoleDefinitionID: to.Ptr(role), RequestType: to.Ptr(armauthorization.RequestTypeAdminAssign),
		ScheduleInfo: &armauthorization.RoleEligibilityScheduleRequestPropertiesScheduleInfo{StartDateTime: to.Ptr(clk.Now()),
			Expiration: &armauthorization.RoleEligibilityScheduleRequestPropertiesScheduleInfoExpiration{Type: to.Ptr(armauthorization.TypeAfterDuration), Duration: to.Ptr("P30D")}},
	}}, nil); err != nil {
		t.Fatal(err)
	}
	// Making someone eligible is as privileged as assigning.
	_, err = ec.Create(ctx, vault, newGUID(), armauthorization.RoleEligibilityScheduleRequest{Properties: &armauthorization.RoleEligibilityScheduleRequestProperties{
		PrincipalID: to.Ptr(bystander.ObjectID), RoleDefinitionID: to.Ptr(role), RequestType: to.Ptr(armauthorization.RequestTypeAdminAssign)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	bec, _ := armauthorization.NewRoleEligibilityScheduleRequestsClient(oncall.Cred, armOptions(e))
	_, err = bec.Create(ctx, vault, newGUID(), armauthorization.RoleEligibilityScheduleRequest{Properties: &armauthorization.RoleEligibilityScheduleRequestProperties{
		PrincipalID: to.Ptr(oncall.ObjectID), RoleDefinitionID: to.Ptr("/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultAdministrator),
		RequestType: to.Ptr(armauthorization.RequestTypeAdminAssign)}}, nil)
	wantErr(t, err, http.StatusForbidden, "AuthorizationFailed")

	wantDenied(t, "eligible but not active", setS(oncall.Cred), authz.CodeRbac, string(authz.SecretsSetSecret))

	activate := func(cred azcore.TokenCredential, principal, justification, duration string) error {
		_, err := scheduleRequests(t, e, cred).Create(ctx, vault, newGUID(), armauthorization.RoleAssignmentScheduleRequest{
			Properties: &armauthorization.RoleAssignmentScheduleRequestProperties{
				PrincipalID: to.Ptr(principal), RoleDefinitionID: to.Ptr(role), RequestType: to.Ptr(armauthorization.RequestTypeSelfActivate),
				Justification: to.Ptr(justification),
				ScheduleInfo: &armauthorization.RoleAssignmentScheduleRequestPropertiesScheduleInfo{StartDateTime: to.Ptr(clk.Now()),
					Expiration: &armauthorization.RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration{Type: to.Ptr(armauthorization.TypeAfterDuration), Duration: to.Ptr(duration)}},
			}}, nil)
		return err
	}
	for what, err := range map[string]error{
		"no justification":          activate(oncall.Cred, oncall.ObjectID, "", "PT30M"),
		"longer than the maximum":   activate(oncall.Cred, oncall.ObjectID, "INC-42", "PT9H"),
		"for someone else":          activate(oncall.Cred, bystander.ObjectID, "INC-42", "PT30M"),
		"not eligible for the role": activate(setterCred(t, e), e.Info.UnprivilegedObjectID, "INC-42", "PT30M"),
	} {
		if err == nil {
			t.Fatalf("activation %s: accepted", what)
		}
		wantErr(t, err, http.StatusForbidden, "RoleAssignmentRequestPolicyValidationFailed")
	}
	findAudit(t, e, "refused activation", func(ev audit.Event) bool {
		return ev.Operation == "RoleActivation" && ev.Result == audit.Denied && strings.Contains(ev.Reason, "justification")
	})

	if err := activate(oncall.Cred, oncall.ObjectID, "INC-42: rotate the database password", "PT30M"); err != nil {
		t.Fatalf("activation: %v", err)
	}
	findAudit(t, e, "activation", func(ev audit.Event) bool {
		return ev.Operation == "RoleActivation" && ev.Result == audit.Allowed && ev.Caller.ObjectID == oncall.ObjectID &&
			strings.Contains(ev.Reason, "Key Vault Secrets Officer") && strings.Contains(ev.Reason, "justification recorded")
	})
	if err := setS(oncall.Cred); err != nil {
		t.Fatalf("activated role: %v", err)
	}
	clk.Advance(29 * time.Minute)
	if err := setS(oncall.Cred); err != nil {
		t.Fatalf("activated role before its end: %v", err)
	}
	clk.Advance(2 * time.Minute)
	wantDenied(t, "activation ended", setS(oncall.Cred), authz.CodeRbac, string(authz.SecretsSetSecret))

	// A time-bound assignment by the administrator.
	start := clk.Now().Add(10 * time.Minute)
	if _, err := scheduleRequests(t, e, e.Credential()).Create(ctx, vault, newGUID(), armauthorization.RoleAssignmentScheduleRequest{
		Properties: &armauthorization.RoleAssignmentScheduleRequestProperties{
			PrincipalID: to.Ptr(bystander.ObjectID), RoleDefinitionID: to.Ptr(role), RequestType: to.Ptr(armauthorization.RequestTypeAdminAssign),
			ScheduleInfo: &armauthorization.RoleAssignmentScheduleRequestPropertiesScheduleInfo{StartDateTime: to.Ptr(start),
				Expiration: &armauthorization.RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration{Type: to.Ptr(armauthorization.TypeAfterDateTime), EndDateTime: to.Ptr(start.Add(10 * time.Minute))}},
		}}, nil); err != nil {
		t.Fatal(err)
	}
	wantDenied(t, "before the window", setS(bystander.Cred), authz.CodeRbac, "")
	clk.Advance(11 * time.Minute)
	if err := setS(bystander.Cred); err != nil {
		t.Fatalf("inside the window: %v", err)
	}
	clk.Advance(10 * time.Minute)
	wantDenied(t, "after the window", setS(bystander.Cred), authz.CodeRbac, "")
}

// setterCred is a principal eligible for nothing.
func setterCred(t *testing.T, e *kwtest.Env) azcore.TokenCredential {
	return e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret)
}
