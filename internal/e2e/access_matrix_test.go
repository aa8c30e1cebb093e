package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// newGroup creates a group with members, as the dev administrator.
func newGroup(t *testing.T, e *kwtest.Env, name string, members ...string) string {
	t.Helper()
	var g struct{ ObjectID string }
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/groups", map[string]string{"displayName": name}, &g); r.Status != http.StatusCreated {
		t.Fatalf("group %s: %d %s", name, r.Status, r.Body)
	}
	for _, m := range members {
		if r := dirCall(t, e, e.Credential(), http.MethodPut, "/providers/Keyward.Directory/groups/"+g.ObjectID+"/members/"+m, nil, nil); r.Status != http.StatusOK {
			t.Fatalf("member %s: %d %s", m, r.Status, r.Body)
		}
	}
	return g.ObjectID
}

// managedIdentity is a user-assigned managed identity with a workload
// binding.
type managedIdentity struct {
	ClientID, ObjectID string
	Endpoint, Header   string
	BindingID          string
}

func newManagedIdentity(t *testing.T, e *kwtest.Env, name string, binding map[string]any) managedIdentity {
	t.Helper()
	var mi struct{ ClientID, PrincipalID string }
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/managedIdentities",
		map[string]string{"name": name, "type": "UserAssigned",
			"resourceId": "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name}, &mi); r.Status != http.StatusCreated {
		t.Fatalf("managed identity %s: %d %s", name, r.Status, r.Body)
	}
	if binding == nil {
		binding = map[string]any{}
	}
	binding["name"] = name + "-workload"
	binding["identities"] = []string{mi.ClientID}
	var b struct {
		Binding          struct{ ID string }
		IdentityHeader   string
		IdentityEndpoint string
	}
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/workloadBindings", binding, &b); r.Status != http.StatusCreated {
		t.Fatalf("binding for %s: %d %s", name, r.Status, r.Body)
	}
	return managedIdentity{ClientID: mi.ClientID, ObjectID: mi.PrincipalID, Endpoint: b.IdentityEndpoint, Header: b.IdentityHeader, BindingID: b.Binding.ID}
}

// credential is the unmodified ManagedIdentityCredential, configured the
// App Service way: IDENTITY_ENDPOINT and IDENTITY_HEADER in the
// environment when it is constructed. The ID keeps MSAL's per-process
// token cache from mixing identities of different test servers.
func (mi managedIdentity) credential(t *testing.T, e *kwtest.Env) azcore.TokenCredential {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", mi.Endpoint)
	t.Setenv("IDENTITY_HEADER", mi.Header)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: azcore.ClientOptions{Transport: e.HTTP}, ID: azidentity.ClientID(mi.ClientID)})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// TestSeedWorkedExample is the worked example of
// seeds/secure-access-to-a-key-vault.txt, in both permission models, with
// the official clients: the security team, developers and operators,
// auditors, a storage service (through a managed identity) and an
// application each get exactly the permissions of the seed's table.
func TestSeedWorkedExample(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	rgScope := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup

	sec := newSP(t, e, "security-officer")
	devops := newSP(t, e, "developer")
	aud := newSP(t, e, "auditor")
	app := newSP(t, e, "application")
	storage := newManagedIdentity(t, e, "storage", nil)
	secTeam := newGroup(t, e, "security-team", sec.ObjectID)
	devTeam := newGroup(t, e, "developers-and-operators", devops.ObjectID)
	auditors := newGroup(t, e, "auditors", aud.ObjectID)

	// Management plane (same in both models): the subscription
	// administrator gives the security team Key Vault Contributor on the
	// resource group; developers get a deploy-only custom role.
	assign(t, e, e.Credential(), rgScope, authz.RoleKeyVaultContributor, secTeam)
	deployer := newGUID()
	rdClient := roleDefsARM(t, e, e.Credential())
	if _, err := rdClient.CreateOrUpdate(ctx, rgScope, deployer, roleDefinition("Key Vault deployer", rgScope,
		[]string{"Microsoft.KeyVault/vaults/deploy/action"}, nil), nil); err != nil {
		t.Fatal(err)
	}
	assign(t, e, e.Credential(), rgScope, deployer, devTeam)

	// The security team creates both vaults (Key Vault Contributor), one
	// per permission model.
	perms := func(keys, secrets, certs []string) *armkeyvault.Permissions {
		p := &armkeyvault.Permissions{}
		for _, k := range keys {
			p.Keys = append(p.Keys, to.Ptr(armkeyvault.KeyPermissions(k)))
		}
		for _, s := range secrets {
			p.Secrets = append(p.Secrets, to.Ptr(armkeyvault.SecretPermissions(s)))
		}
		for _, c := range certs {
			p.Certificates = append(p.Certificates, to.Ptr(armkeyvault.CertificatePermissions(c)))
		}
		return p
	}
	entry := func(oid string, p *armkeyvault.Permissions) *armkeyvault.AccessPolicyEntry {
		return &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(oid), Permissions: p}
	}
	createVault(t, e, sec.Cred, "seedap", false, []*armkeyvault.AccessPolicyEntry{
		entry(secTeam, perms([]string{"all"}, []string{"all"}, []string{"all"})),
		entry(auditors, perms([]string{"list"}, []string{"list"}, []string{"list"})),
		entry(storage.ObjectID, perms([]string{"get", "list", "wrapKey", "unwrapKey"}, nil, nil)),
		entry(app.ObjectID, perms(nil, []string{"get", "list"}, []string{"get", "list"})),
	})
	createVault(t, e, sec.Cred, "seedrbac", true, nil)
	// RBAC: the security team cannot assign roles (Key Vault Contributor
	// has no roleAssignments/write); the subscription administrator does.
	rbacScope := vaultScope(e, "seedrbac")
	for _, a := range []struct{ role, who string }{
		{authz.RoleKeyVaultAdministrator, secTeam},
		{authz.RoleKeyVaultReader, auditors},
		{authz.RoleKeyVaultCryptoServiceEncUser, storage.ObjectID},
		{authz.RoleKeyVaultReader, app.ObjectID},
		{authz.RoleKeyVaultSecretsUser, app.ObjectID},
	} {
		assign(t, e, e.Credential(), rbacScope, a.role, a.who)
	}

	storageCred := storage.credential(t, e)
	type who struct {
		name string
		cred azcore.TokenCredential
	}
	people := []who{{"security", sec.Cred}, {"developer", devops.Cred}, {"auditor", aud.Cred}, {"storage", storageCred}, {"application", app.Cred}}
	ops := []string{"secret set", "secret get", "secret list", "key create", "key get", "key list", "wrap", "unwrap", "certificate list", "vault create"}
	// The seed's table, written out per model.
	want := map[string]map[string][]string{
		"seedap": {
			"security":    ops,
			"developer":   {},
			"auditor":     {"secret list", "key list", "certificate list"},
			"storage":     {"key get", "key list", "wrap", "unwrap"},
			"application": {"secret get", "secret list", "certificate list"},
		},
		"seedrbac": {
			"security":    ops,
			"developer":   {},
			"auditor":     {"secret list", "key get", "key list", "certificate list"},
			"storage":     {"key get", "key list", "wrap", "unwrap"},
			"application": {"secret get", "secret list", "key get", "key list", "certificate list"},
		},
	}
	for _, vaultName := range []string{"seedap", "seedrbac"} {
		url := vaultURLOf(e, vaultName)
		inner := authz.CodeRbac
		if vaultName == "seedap" {
			inner = authz.CodePolicy
		}
		// The security team's objects, used by everyone's reads.
		if _, err := secretsFor(t, e, url, sec.Cred).SetSecret(ctx, "storage-key", azsecrets.SetSecretParameters{Value: to.Ptr("s3cr3t")}, nil); err != nil {
			t.Fatalf("%s: security team sets a secret: %v", vaultName, err)
		}
		if _, err := keysFor(t, e, url, sec.Cred).CreateKey(ctx, "rsa-2048", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil); err != nil {
			t.Fatalf("%s: security team creates a key: %v", vaultName, err)
		}
		wrapped, err := keysFor(t, e, url, sec.Cred).WrapKey(ctx, "rsa-2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: make([]byte, 32)}, nil)
		if err != nil {
			t.Fatalf("%s: security team wraps: %v", vaultName, err)
		}
		for _, p := range people {
			allowed := map[string]bool{}
			for _, op := range want[vaultName][p.name] {
				allowed[op] = true
			}
			sc, kc := secretsFor(t, e, url, p.cred), keysFor(t, e, url, p.cred)
			cc, err := azcertificates.NewClient(url, p.cred, &azcertificates.ClientOptions{ClientOptions: e.ClientOptions()})
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range ops {
				var err error
				var missing string
				switch op {
				case "secret set":
					_, err = sc.SetSecret(ctx, "by-"+p.name, azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil)
					missing = pick(inner, "secrets set", string(authz.SecretsSetSecret))
				case "secret get":
					_, err = sc.GetSecret(ctx, "storage-key", "", nil)
					missing = pick(inner, "secrets get", string(authz.SecretsGetSecret))
				case "secret list":
					_, err = sc.NewListSecretPropertiesPager(nil).NextPage(ctx)
					missing = pick(inner, "secrets list", string(authz.SecretsReadMetadata))
				case "key create":
					_, err = kc.CreateKey(ctx, "by-"+p.name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
					missing = pick(inner, "keys create", string(authz.KeysCreate))
				case "key get":
					_, err = kc.GetKey(ctx, "rsa-2048", "", nil)
					missing = pick(inner, "keys get", string(authz.KeysRead))
				case "key list":
					_, err = kc.NewListKeyPropertiesPager(nil).NextPage(ctx)
					missing = pick(inner, "keys list", string(authz.KeysRead))
				case "wrap":
					_, err = kc.WrapKey(ctx, "rsa-2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: make([]byte, 32)}, nil)
					missing = pick(inner, "keys wrapKey", string(authz.KeysWrap))
				case "unwrap":
					_, err = kc.UnwrapKey(ctx, "rsa-2048", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped.Result}, nil)
					missing = pick(inner, "keys unwrapKey", string(authz.KeysUnwrap))
				case "certificate list":
					_, err = cc.NewListCertificatePropertiesPager(nil).NextPage(ctx)
					missing = pick(inner, "certificates list", string(authz.CertificatesRead))
				case "vault create":
					// Management plane: the same for both models.
					if vaultName == "seedrbac" {
						continue
					}
					_, err = vaultsARM(t, e, p.cred).BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "seed-"+p.name[:3], armkeyvault.VaultCreateOrUpdateParameters{
						Location: to.Ptr(e.Info.Location), Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(e.Info.TenantID),
							SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)}}}, nil)
					if allowed[op] != (err == nil) {
						t.Errorf("%s / %s: allowed=%v, want %v (%v)", p.name, op, err == nil, allowed[op], err)
					} else if err != nil {
						wantErr(t, err, http.StatusForbidden, "AuthorizationFailed")
					}
					continue
				}
				if allowed[op] != (err == nil) {
					t.Errorf("%s / %s / %s: allowed=%v, want %v (%v)", vaultName, p.name, op, err == nil, allowed[op], err)
					continue
				}
				if err != nil {
					wantDenied(t, vaultName+"/"+p.name+"/"+op, err, inner, missing)
				}
			}
		}
	}
}

func pick(inner, policy, action string) string {
	if inner == authz.CodePolicy {
		return policy
	}
	return action
}

func roleDefinition(name, scope string, actions, dataActions []string) armauthorization.RoleDefinition {
	p := &armauthorization.Permission{}
	for _, a := range actions {
		p.Actions = append(p.Actions, to.Ptr(a))
	}
	for _, a := range dataActions {
		p.DataActions = append(p.DataActions, to.Ptr(a))
	}
	return armauthorization.RoleDefinition{Properties: &armauthorization.RoleDefinitionProperties{
		RoleName: to.Ptr(name), RoleType: to.Ptr("CustomRole"), AssignableScopes: []*string{to.Ptr(scope)},
		Permissions: []*armauthorization.Permission{p}}}
}
