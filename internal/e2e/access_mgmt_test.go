package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestManagementPlaneVaults drives the vault resource with the official
// armkeyvault client: name checks, create, get, update with the one-way and
// immutable rules, lists, access policies add/replace/remove with their
// effect on the data plane, soft delete, recover and purge.
func TestManagementPlaneVaults(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	vc := vaultsARM(t, e, e.Credential())

	check := func(name string, avail bool, reason armkeyvault.Reason) {
		t.Helper()
		res, err := vc.CheckNameAvailability(ctx, armkeyvault.VaultCheckNameAvailabilityParameters{Name: to.Ptr(name), Type: to.Ptr("Microsoft.KeyVault/vaults")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.NameAvailable != avail || (!avail && *res.Reason != reason) {
			t.Fatalf("checkNameAvailability(%s) = %v %v", name, *res.NameAvailable, res.Reason)
		}
	}
	check("fresh-vault", true, "")
	check(devVaultName(e), false, armkeyvault.ReasonAlreadyExists)
	check("x", false, armkeyvault.ReasonAccountNameInvalid)

	app := newSP(t, e, "ap-app")
	v := createVault(t, e, e.Credential(), "apvault", false, []*armkeyvault.AccessPolicyEntry{{
		TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(devObjectID(t, e)),
		Permissions: &armkeyvault.Permissions{Secrets: []*armkeyvault.SecretPermissions{to.Ptr(armkeyvault.SecretPermissionsAll)}},
	}})
	p := v.Properties
	if *v.Name != "apvault" || *p.EnableRbacAuthorization || !*p.EnableSoftDelete || *p.SoftDeleteRetentionInDays != 7 ||
		*p.TenantID != e.Info.TenantID || *p.SKU.Name != armkeyvault.SKUNameStandard || *p.VaultURI != vaultURLOf(e, "apvault") ||
		*p.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded || len(p.AccessPolicies) != 1 {
		t.Fatalf("created vault %+v", p)
	}
	check("apvault", false, armkeyvault.ReasonAlreadyExists)

	// A vault made with api-version 2026-02-01 and no
	// enableRbacAuthorization is an RBAC vault (AZURE-API.md §6).
	poller, err := vc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "defaultrbac", armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr(e.Info.Location), Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(e.Info.TenantID),
			SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNamePremium)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := poller.PollUntilDone(ctx, nil); err != nil || !*res.Properties.EnableRbacAuthorization || *res.Properties.SoftDeleteRetentionInDays != 90 {
		t.Fatalf("default vault: %v %+v", err, res.Properties)
	}

	// Update: purge protection on (one-way), tags; retention is immutable.
	up, err := vc.Update(ctx, e.Info.ResourceGroup, "apvault", armkeyvault.VaultPatchParameters{
		Tags:       map[string]*string{"team": to.Ptr("security")},
		Properties: &armkeyvault.VaultPatchProperties{EnablePurgeProtection: to.Ptr(true)}}, nil)
	if err != nil || !*up.Properties.EnablePurgeProtection || *up.Tags["team"] != "security" || len(up.Properties.AccessPolicies) != 1 {
		t.Fatalf("update: %v %+v", err, up)
	}
	for what, patch := range map[string]armkeyvault.VaultPatchProperties{
		"purge protection off": {EnablePurgeProtection: to.Ptr(false)},
		"retention change":     {SoftDeleteRetentionInDays: to.Ptr[int32](30)},
		"soft delete off":      {EnableSoftDelete: to.Ptr(false)},
		"vnet rules":           {NetworkACLs: &armkeyvault.NetworkRuleSet{VirtualNetworkRules: []*armkeyvault.VirtualNetworkRule{{ID: to.Ptr("/subscriptions/x/vnet")}}}},
		"bad ip rule":          {NetworkACLs: &armkeyvault.NetworkRuleSet{IPRules: []*armkeyvault.IPRule{{Value: to.Ptr("10.0.0.300")}}}},
	} {
		_, err := vc.Update(ctx, e.Info.ResourceGroup, "apvault", armkeyvault.VaultPatchParameters{Properties: &patch}, nil)
		if err == nil {
			t.Fatalf("%s: accepted", what)
		}
		wantErr(t, err, http.StatusBadRequest, "BadRequest")
	}
	got, err := vc.Get(ctx, e.Info.ResourceGroup, "apvault", nil)
	if err != nil || !*got.Properties.EnablePurgeProtection || *got.Properties.SoftDeleteRetentionInDays != 7 {
		t.Fatalf("get after rejected updates: %v %+v", err, got.Properties)
	}

	// Lists: by resource group, by subscription, generic.
	names := map[string]bool{}
	for pg := vc.NewListByResourceGroupPager(e.Info.ResourceGroup, nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Value {
			names[*v.Name] = true
		}
	}
	if !names["apvault"] || !names["defaultrbac"] || !names[devVaultName(e)] {
		t.Fatalf("list by resource group: %v", names)
	}
	bySub, err := vc.NewListBySubscriptionPager(nil).NextPage(ctx)
	if err != nil || len(bySub.Value) != 3 {
		t.Fatalf("list by subscription: %v %d", err, len(bySub.Value))
	}
	generic, err := vc.NewListPager(nil).NextPage(ctx)
	if err != nil || len(generic.Value) != 3 || *generic.Value[0].Type != "Microsoft.KeyVault/vaults" {
		t.Fatalf("generic list: %v %+v", err, generic.Value)
	}

	// Access policies drive the data plane of an access-policy vault.
	url := vaultURLOf(e, "apvault")
	if _, err := secretsFor(t, e, url, e.Credential()).SetSecret(ctx, "s1", azsecrets.SetSecretParameters{Value: to.Ptr("v1")}, nil); err != nil {
		t.Fatal(err)
	}
	appSecrets := secretsFor(t, e, url, app.Cred)
	_, err = appSecrets.GetSecret(ctx, "s1", "", nil)
	wantDenied(t, "no policy yet", err, authz.CodePolicy, "secrets get")
	apUpdate := func(kind armkeyvault.AccessPolicyUpdateKind, perms ...armkeyvault.SecretPermissions) []*armkeyvault.AccessPolicyEntry {
		t.Helper()
		var ps []*armkeyvault.SecretPermissions
		for _, p := range perms {
			ps = append(ps, to.Ptr(p))
		}
		res, err := vc.UpdateAccessPolicy(ctx, e.Info.ResourceGroup, "apvault", kind, armkeyvault.VaultAccessPolicyParameters{
			Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
				TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(app.ObjectID), Permissions: &armkeyvault.Permissions{Secrets: ps}}}}}, nil)
		if err != nil {
			t.Fatalf("access policy %s: %v", kind, err)
		}
		return res.Properties.AccessPolicies
	}
	apUpdate(armkeyvault.AccessPolicyUpdateKindAdd, armkeyvault.SecretPermissionsGet)
	if s, err := appSecrets.GetSecret(ctx, "s1", "", nil); err != nil || *s.Value != "v1" {
		t.Fatalf("after add: %v", err)
	}
	_, err = appSecrets.SetSecret(ctx, "s2", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	wantDenied(t, "set without permission", err, authz.CodePolicy, "secrets set")
	if all := apUpdate(armkeyvault.AccessPolicyUpdateKindAdd, armkeyvault.SecretPermissionsList); len(all) != 2 {
		t.Fatalf("after second add: %d entries", len(all))
	}
	apUpdate(armkeyvault.AccessPolicyUpdateKindReplace, armkeyvault.SecretPermissionsList)
	_, err = appSecrets.GetSecret(ctx, "s1", "", nil)
	wantDenied(t, "after replace with list", err, authz.CodePolicy, "secrets get")
	if _, err := appSecrets.NewListSecretPropertiesPager(nil).NextPage(ctx); err != nil {
		t.Fatalf("list after replace: %v", err)
	}
	if all := apUpdate(armkeyvault.AccessPolicyUpdateKindRemove, armkeyvault.SecretPermissionsList); len(all) != 1 {
		t.Fatalf("after remove: %d entries", len(all))
	}
	_, err = appSecrets.NewListSecretPropertiesPager(nil).NextPage(ctx)
	wantDenied(t, "after remove", err, authz.CodePolicy, "secrets list")

	// At most 1024 access policies.
	var many []*armkeyvault.AccessPolicyEntry
	for range 1025 {
		many = append(many, &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(newGUID()),
			Permissions: &armkeyvault.Permissions{Secrets: []*armkeyvault.SecretPermissions{to.Ptr(armkeyvault.SecretPermissionsGet)}}})
	}
	_, err = vc.UpdateAccessPolicy(ctx, e.Info.ResourceGroup, "apvault", armkeyvault.AccessPolicyUpdateKindAdd,
		armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: many}}, nil)
	wantErr(t, err, http.StatusBadRequest, "AccessPolicyLimitExceeded")

	// Soft delete: gone from the data plane, listed as deleted, its name
	// reserved; recover brings the data back.
	if _, err := vc.Delete(ctx, e.Info.ResourceGroup, "apvault", nil); err != nil {
		t.Fatal(err)
	}
	_, err = vc.Get(ctx, e.Info.ResourceGroup, "apvault", nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
	_, err = secretsFor(t, e, url, e.Credential()).GetSecret(ctx, "s1", "", nil)
	wantErr(t, err, http.StatusNotFound, "VaultNotFound")
	dv, err := vc.GetDeleted(ctx, "apvault", e.Info.Location, nil)
	if err != nil || !*dv.Properties.PurgeProtectionEnabled || *dv.Properties.VaultID != vaultScope(e, "apvault") ||
		dv.Properties.ScheduledPurgeDate.Sub(*dv.Properties.DeletionDate).Hours() != 7*24 {
		t.Fatalf("get deleted: %v %+v", err, dv.Properties)
	}
	deleted, err := vc.NewListDeletedPager(nil).NextPage(ctx)
	if err != nil || len(deleted.Value) != 1 {
		t.Fatalf("list deleted: %v %+v", err, deleted.Value)
	}
	check("apvault", false, armkeyvault.ReasonAlreadyExists)
	_, err = vc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "apvault", armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr(e.Info.Location), Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(e.Info.TenantID),
			SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)}}}, nil)
	wantErr(t, err, http.StatusConflict, "ConflictError")
	// Purge protection: no purge before the retention ends.
	_, err = vc.BeginPurgeDeleted(ctx, "apvault", e.Info.Location, nil)
	wantErr(t, err, http.StatusBadRequest, "PurgeProtected")
	rp, err := vc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "apvault", armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr(e.Info.Location), Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(e.Info.TenantID),
			CreateMode: to.Ptr(armkeyvault.CreateModeRecover),
			SKU:        &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if s, err := secretsFor(t, e, url, e.Credential()).GetSecret(ctx, "s1", "", nil); err != nil || *s.Value != "v1" {
		t.Fatalf("secret after recover: %v", err)
	}

	// Purge (no purge protection): the name is free again.
	if _, err := vc.Delete(ctx, e.Info.ResourceGroup, "defaultrbac", nil); err != nil {
		t.Fatal(err)
	}
	pp, err := vc.BeginPurgeDeleted(ctx, "defaultrbac", e.Info.Location, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = vc.GetDeleted(ctx, "defaultrbac", e.Info.Location, nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
	check("defaultrbac", true, "")
}

// TestRoleAssignmentsAtFourScopes assigns Key Vault Secrets User at the
// subscription, the resource group, the vault and one secret with the
// official armauthorization client, and checks inheritance on the data
// plane; deleting an assignment revokes at once.
func TestRoleAssignmentsAtFourScopes(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	admin := secretsClient(t, e)
	for _, n := range []string{"s1", "s2"} {
		if _, err := admin.SetSecret(ctx, n, azsecrets.SetSecretParameters{Value: to.Ptr("v-" + n)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	createVault(t, e, e.Credential(), "othervault", true, nil)
	if _, err := secretsFor(t, e, vaultURLOf(e, "othervault"), e.Credential()).SetSecret(ctx, "s1", azsecrets.SetSecretParameters{Value: to.Ptr("o")}, nil); err != nil {
		t.Fatal(err)
	}
	sub := "/subscriptions/" + e.Info.SubscriptionID
	rg := sub + "/resourceGroups/" + e.Info.ResourceGroup
	vault := vaultScope(e, devVaultName(e))
	cases := []struct {
		scope               string
		s1, s2, other, list bool
	}{
		{sub, true, true, true, true},
		{rg, true, true, true, true},
		{vault, true, true, false, true},
		{vault + "/secrets/s1", true, false, false, false},
	}
	ac := assignmentsARM(t, e, e.Credential())
	for _, c := range cases {
		sp := newSP(t, e, "reader")
		name := assign(t, e, e.Credential(), c.scope, authz.RoleKeyVaultSecretsUser, sp.ObjectID)
		mine, other := secretsFor(t, e, e.Info.VaultURL, sp.Cred), secretsFor(t, e, vaultURLOf(e, "othervault"), sp.Cred)
		try := func(what string, want bool, err error) {
			t.Helper()
			if (err == nil) != want {
				t.Fatalf("assignment at %s, %s: allowed=%v want %v (%v)", c.scope, what, err == nil, want, err)
			}
			if err != nil {
				wantDenied(t, what, err, authz.CodeRbac, "Microsoft.KeyVault/vaults/secrets/")
			}
		}
		_, err := mine.GetSecret(ctx, "s1", "", nil)
		try("get s1", c.s1, err)
		_, err = mine.GetSecret(ctx, "s2", "", nil)
		try("get s2", c.s2, err)
		_, err = mine.GetSecret(ctx, "does-not-exist", "", nil)
		if c.s2 {
			wantErr(t, err, http.StatusNotFound, "SecretNotFound")
		} else {
			// No read permission: 403, never a hint whether it exists.
			wantDenied(t, "get missing", err, authz.CodeRbac, string(authz.SecretsGetSecret))
		}
		_, err = other.GetSecret(ctx, "s1", "", nil)
		try("other vault", c.other, err)
		_, err = mine.NewListSecretPropertiesPager(nil).NextPage(ctx)
		try("list", c.list, err)

		// The assignment is listed at its scope and below (atScope from
		// the object's point of view includes it).
		listed := false
		for pg := ac.NewListForScopePager(vault+"/secrets/s1", &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: to.Ptr("principalId eq '" + sp.ObjectID + "'")}); pg.More(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range page.Value {
				listed = listed || (*a.Name == name && strings.EqualFold(*a.Properties.Scope, c.scope) &&
					strings.HasSuffix(*a.Properties.RoleDefinitionID, authz.RoleKeyVaultSecretsUser))
			}
		}
		if !listed {
			t.Fatalf("assignment at %s not listed for the secret's scope", c.scope)
		}
		got, err := ac.Get(ctx, c.scope, name, nil)
		if err != nil || *got.Properties.PrincipalID != sp.ObjectID {
			t.Fatalf("get assignment: %v", err)
		}
		if _, err := ac.Delete(ctx, c.scope, name, nil); err != nil {
			t.Fatal(err)
		}
		_, err = mine.GetSecret(ctx, "s1", "", nil)
		wantDenied(t, "after unassign", err, authz.CodeRbac, string(authz.SecretsGetSecret))
	}

	// Unknown principal and unknown role are refused.
	_, err := ac.Create(ctx, vault, newGUID(), armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
		RoleDefinitionID: to.Ptr("/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultReader), PrincipalID: to.Ptr(newGUID())}}, nil)
	wantErr(t, err, http.StatusBadRequest, "PrincipalNotFound")
	_, err = ac.Create(ctx, vault, newGUID(), armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
		RoleDefinitionID: to.Ptr("/providers/Microsoft.Authorization/roleDefinitions/" + newGUID()), PrincipalID: to.Ptr(devObjectID(t, e))}}, nil)
	wantErr(t, err, http.StatusNotFound, "RoleDefinitionDoesNotExist")

	// Role definitions: built-ins by name, and a custom role.
	rc := roleDefsARM(t, e, e.Credential())
	page, err := rc.NewListPager(sub, &armauthorization.RoleDefinitionsClientListOptions{Filter: to.Ptr("roleName eq 'Key Vault Crypto Service Encryption User'")}).NextPage(ctx)
	if err != nil || len(page.Value) != 1 || *page.Value[0].Name != authz.RoleKeyVaultCryptoServiceEncUser || *page.Value[0].Properties.RoleType != "BuiltInRole" {
		t.Fatalf("role by name: %v %+v", err, page.Value)
	}
	custom := newGUID()
	if _, err := rc.CreateOrUpdate(ctx, sub, custom, roleDefinition("Secret setter", rg, nil,
		[]string{"Microsoft.KeyVault/vaults/secrets/setSecret/action"}), nil); err != nil {
		t.Fatal(err)
	}
	setter := newSP(t, e, "setter")
	assign(t, e, e.Credential(), vault, custom, setter.ObjectID)
	sc := secretsFor(t, e, e.Info.VaultURL, setter.Cred)
	if _, err := sc.SetSecret(ctx, "set-by-custom", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
		t.Fatalf("custom role: %v", err)
	}
	_, err = sc.GetSecret(ctx, "s1", "", nil)
	wantDenied(t, "custom role get", err, authz.CodeRbac, string(authz.SecretsGetSecret))
	_, err = rc.Delete(ctx, sub, custom, nil)
	wantErr(t, err, http.StatusConflict, "RoleDefinitionHasAssignments")
}

// TestEscalationAndDelegation: a Secrets Officer cannot grant roles; a Key
// Vault Data Access Administrator can grant only Key Vault data roles; a
// Key Vault Contributor can grant itself data access on an access-policy
// vault (the seed's warning), and that is visible in the audit log; the
// unprivileged dev principal is denied.
func TestEscalationAndDelegation(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	vault := vaultScope(e, devVaultName(e))
	rg := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup

	// The dev server's unprivileged principal (dev.json).
	unpriv := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret)
	_, err := secretsFor(t, e, e.Info.VaultURL, unpriv).GetSecret(ctx, "anything", "", nil)
	wantDenied(t, "unprivileged dev principal", err, authz.CodeRbac, string(authz.SecretsGetSecret))

	officer := newSP(t, e, "officer")
	assign(t, e, e.Credential(), vault, authz.RoleKeyVaultSecretsOfficer, officer.ObjectID)
	victim := newSP(t, e, "victim")
	_, err = assignmentsARM(t, e, officer.Cred).Create(ctx, vault, newGUID(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{PrincipalID: to.Ptr(officer.ObjectID),
			RoleDefinitionID: to.Ptr("/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultAdministrator)}}, nil)
	wantErr(t, err, http.StatusForbidden, "AuthorizationFailed")
	findAudit(t, e, "escalation attempt denied", func(ev audit.Event) bool {
		return ev.Operation == "RoleAssignmentCreate" && ev.Caller.ObjectID == officer.ObjectID && ev.Result == audit.Denied &&
			strings.Contains(ev.Reason, string(authz.RoleAssignmentsWrite))
	})
	// Nor can it turn the vault into an access-policy vault.
	_, err = vaultsARM(t, e, officer.Cred).Update(ctx, e.Info.ResourceGroup, devVaultName(e), armkeyvault.VaultPatchParameters{
		Properties: &armkeyvault.VaultPatchProperties{EnableRbacAuthorization: to.Ptr(false)}}, nil)
	wantErr(t, err, http.StatusForbidden, "AuthorizationFailed")

	daa := newSP(t, e, "data-access-admin")
	assign(t, e, e.Credential(), vault, authz.RoleKeyVaultDataAccessAdministrator, daa.ObjectID)
	assign(t, e, daa.Cred, vault, authz.RoleKeyVaultSecretsUser, victim.ObjectID)
	_, err = assignmentsARM(t, e, daa.Cred).Create(ctx, vault, newGUID(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{PrincipalID: to.Ptr(victim.ObjectID),
			RoleDefinitionID: to.Ptr("/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleOwner)}}, nil)
	wantErr(t, err, http.StatusForbidden, "AuthorizationFailed")
	_, err = assignmentsARM(t, e, daa.Cred).Create(ctx, rg, newGUID(), armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{PrincipalID: to.Ptr(victim.ObjectID),
			RoleDefinitionID: to.Ptr("/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultSecretsUser)}}, nil)
	wantErr(t, err, http.StatusForbidden, "AuthorizationFailed") // outside its scope

	// The Key Vault Contributor path.
	contrib := newSP(t, e, "contributor")
	assign(t, e, e.Credential(), rg, authz.RoleKeyVaultContributor, contrib.ObjectID)
	createVault(t, e, contrib.Cred, "contribap", false, nil)
	createVault(t, e, contrib.Cred, "contribrbac", true, nil)
	for _, name := range []string{"contribap", "contribrbac"} {
		sc := secretsFor(t, e, vaultURLOf(e, name), contrib.Cred)
		_, err := sc.SetSecret(ctx, "mine", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
		inner := authz.CodePolicy
		if name == "contribrbac" {
			inner = authz.CodeRbac
		}
		wantDenied(t, name+" before self-grant", err, inner, "")
		if _, err := vaultsARM(t, e, contrib.Cred).UpdateAccessPolicy(ctx, e.Info.ResourceGroup, name, armkeyvault.AccessPolicyUpdateKindAdd,
			armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
				TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(contrib.ObjectID),
				Permissions: &armkeyvault.Permissions{Secrets: []*armkeyvault.SecretPermissions{to.Ptr(armkeyvault.SecretPermissionsAll)}}}}}}, nil); err != nil {
			t.Fatal(err)
		}
		findAudit(t, e, "self-grant on "+name, func(ev audit.Event) bool {
			return ev.Operation == "VaultAccessPolicyAdd" && ev.Vault == name && ev.Caller.ObjectID == contrib.ObjectID &&
				ev.Result == audit.Allowed && strings.Contains(ev.Reason, "self-grant")
		})
		_, err = sc.SetSecret(ctx, "mine", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
		if name == "contribap" && err != nil {
			t.Fatalf("the seed's warning: a contributor grants itself data access in access-policy mode: %v", err)
		}
		if name == "contribrbac" {
			wantDenied(t, "access policies are inactive in RBAC mode", err, authz.CodeRbac, string(authz.SecretsSetSecret))
		}
	}
	// A Key Vault Contributor cannot purge vaults (notActions).
	if _, err := vaultsARM(t, e, contrib.Cred).Delete(ctx, e.Info.ResourceGroup, "contribrbac", nil); err != nil {
		t.Fatal(err)
	}
	_, err = vaultsARM(t, e, contrib.Cred).BeginPurgeDeleted(ctx, "contribrbac", e.Info.Location, nil)
	wantErr(t, err, http.StatusForbidden, "AuthorizationFailed")
}

// TestTenantsAndDeletedPrincipals: a token of one tenant is refused on
// another tenant's vault and subscription; a deleted principal's token
// stops working before it expires, and it can get no new one.
func TestTenantsAndDeletedPrincipals(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	other := secondTenant(t, e, "othertenant")
	otherCred := e.CredentialFor(other.TenantID, other.ClientID, other.ClientSecret)
	// The other tenant's administrator on its own vault: fine.
	if _, err := secretsFor(t, e, other.VaultURL, otherCred).SetSecret(ctx, "x", azsecrets.SetSecretParameters{Value: to.Ptr("y")}, nil); err != nil {
		t.Fatal(err)
	}
	// Its token on our vault: the challenge names our tenant, and the
	// credential is not allowed to get tokens there.
	_, err := secretsFor(t, e, e.Info.VaultURL, otherCred).GetSecret(ctx, "x", "", nil)
	if err == nil {
		t.Fatal("cross-tenant read allowed")
	}
	tok, err := otherCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.localhost:" + port(e) + "/.default"}, TenantID: other.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, e, http.MethodGet, e.Info.VaultURL+"secrets?api-version=7.4", tok.Token, "", "")
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("other tenant's token on our vault: %d %s", r.Status, r.Body)
	}
	mt, err := otherCred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}, TenantID: other.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	r = do(t, e, http.MethodGet, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/subscriptions/"+e.Info.SubscriptionID+"/providers/Microsoft.KeyVault/vaults?api-version=2025-05-01", mt.Token, "", "")
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "InvalidAuthenticationTokenTenant") {
		t.Fatalf("other tenant's token on our subscription: %d %s", r.Status, r.Body)
	}

	// Deleted principal.
	sp := newSP(t, e, "leaver")
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), authz.RoleKeyVaultSecretsUser, sp.ObjectID)
	if _, err := secretsClient(t, e).SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	sc := secretsFor(t, e, e.Info.VaultURL, sp.Cred)
	if _, err := sc.GetSecret(ctx, "s", "", nil); err != nil {
		t.Fatal(err)
	}
	if r := dirCall(t, e, e.Credential(), http.MethodDelete, "/providers/Keyward.Directory/principals/"+sp.ObjectID, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("delete principal: %d %s", r.Status, r.Body)
	}
	_, err = sc.GetSecret(ctx, "s", "", nil) // the cached, unexpired token
	wantDenied(t, "deleted principal", err, authz.CodeRbac, "")
	findAudit(t, e, "deleted principal denied", func(ev audit.Event) bool {
		return ev.Caller.ObjectID == sp.ObjectID && ev.Result == audit.Denied && strings.Contains(ev.Reason, "does not exist")
	})
	_, err = e.CredentialFor(e.Info.TenantID, sp.AppID, sp.Secret).GetToken(ctx, tokenOpts(e))
	if err == nil || !strings.Contains(err.Error(), "AADSTS700016") {
		t.Fatalf("deleted principal got a token: %v", err)
	}
}
