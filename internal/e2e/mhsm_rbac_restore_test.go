package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestManagedHSMAssignableScopesGroupsAndKeyRestore, through azadmin's
// pipeline and azkeys against a real server with a SoftHSM2 token:
//   - a custom role is assignable only within its assignableScopes
//     (400 RoleAssignmentScopeNotAllowed elsewhere, nothing stored);
//   - a pool role assigned to a group reaches the group's members, nested
//     groups included;
//   - a key backup restores into a pool through the pool's own protector
//     (an RSA-HSM key in the token), and a backup of a key the target
//     cannot hold (a vault's software key into a pool, a pool's oct-HSM
//     key into a vault) is refused with 400 and restores nothing.
func TestManagedHSMAssignableScopesGroupsAndKeyRestore(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	ctx := context.Background()
	a := newAdminClient(t, e, e.Credential(), "dev")
	kc := keysFor(t, e, e.Info.ManagedHSMURL, e.Credential())
	const rd, ra = "/providers/Microsoft.Authorization/roleDefinitions/", "/providers/Microsoft.Authorization/roleAssignments/"
	defID := func(guid string) string {
		return "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/" + guid
	}
	for _, k := range []string{"k1", "k2"} {
		if _, err := kc.CreateKey(ctx, k, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("assignable scopes", func(t *testing.T) {
		custom := newGUID()
		a.do(ctx, http.MethodPut, "/"+rd+custom, map[string]any{"properties": map[string]any{"roleName": "k1 reader", "type": "CustomRole",
			"assignableScopes": []string{"/keys/k1"},
			"permissions":      []any{map[string]any{"dataActions": []string{string(authz.HSMKeysRead)}}}}}, http.StatusCreated)
		sp := newSP(t, e, "hsm-scoped")
		for _, scope := range []string{"/", "/keys", "/keys/k2", "/keys/k10"} {
			id := newGUID()
			resp, err := a.send(ctx, http.MethodPut, scope+ra+id, map[string]any{"properties": map[string]any{"roleDefinitionId": defID(custom), "principalId": sp.ObjectID}})
			if err != nil {
				t.Fatal(err)
			}
			st, code, inner, _ := innerCode(t, runtime.NewResponseError(resp))
			if st != http.StatusBadRequest || code != "BadParameter" || inner != "RoleAssignmentScopeNotAllowed" {
				t.Errorf("custom role assignable at /keys/k1 assigned at %s: %d %s/%s", scope, st, code, inner)
			}
			if resp, _ := a.send(ctx, http.MethodGet, "/"+ra+id, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("the refused assignment at %s was stored: %d", scope, resp.StatusCode)
			}
		}
		a.do(ctx, http.MethodPut, "/keys/k1"+ra+newGUID(), map[string]any{"properties": map[string]any{"roleDefinitionId": defID(custom), "principalId": sp.ObjectID}}, http.StatusCreated)
		sc := keysFor(t, e, e.Info.ManagedHSMURL, sp.Cred)
		if _, err := sc.GetKey(ctx, "k1", "", nil); err != nil {
			t.Errorf("the role within its scope does not work: %v", err)
		}
		if _, err := sc.GetKey(ctx, "k2", "", nil); err == nil {
			t.Error("the role reached a key outside its assignable scopes")
		}
		// Built-in roles are assignable anywhere.
		a.do(ctx, http.MethodPut, "/keys/k2"+ra+newGUID(), map[string]any{"properties": map[string]any{"roleDefinitionId": defID(authz.RoleHSMCryptoAuditor), "principalId": sp.ObjectID}}, http.StatusCreated)
	})

	t.Run("groups", func(t *testing.T) {
		member := newSP(t, e, "hsm-group-member")
		inner := newGroup(t, e, "hsm-inner", member.ObjectID)
		outer := newGroup(t, e, "hsm-outer", inner)
		mc := keysFor(t, e, e.Info.ManagedHSMURL, member.Cred)
		sign := func() error {
			_, err := mc.Sign(ctx, "k1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: make([]byte, 32)}, nil)
			return err
		}
		if err := sign(); err == nil {
			t.Fatal("signed with no role")
		}
		a.do(ctx, http.MethodPut, "/keys"+ra+newGUID(), map[string]any{"properties": map[string]any{"roleDefinitionId": defID(authz.RoleHSMCryptoUser), "principalId": outer}}, http.StatusCreated)
		if err := sign(); err != nil {
			t.Fatalf("Crypto User assigned to the member's outer group: %v", err)
		}
		// Someone outside the groups still cannot.
		other := keysFor(t, e, e.Info.ManagedHSMURL, newSP(t, e, "hsm-outsider").Cred)
		if _, err := other.Sign(ctx, "k1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: make([]byte, 32)}, nil); err == nil {
			t.Error("a principal outside the group signed")
		}
	})

	t.Run("key restore", func(t *testing.T) {
		// A pool RSA-HSM key: backup, delete, purge, restore (the pool's
		// own protector puts the token object back), then it signs.
		b, err := kc.BackupKey(ctx, "k1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kc.DeleteKey(ctx, "k1", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.PurgeDeletedKey(ctx, "k1", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: b.Value}, nil); err != nil {
			t.Fatalf("restore into the pool: %v", err)
		}
		if _, err := kc.Sign(ctx, "k1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: make([]byte, 32)}, nil); err != nil {
			t.Fatalf("the restored key does not sign: %v", err)
		}

		// A vault's software key into the pool; the pool's oct-HSM key
		// into the vault.
		vc := keysFor(t, e, e.Info.VaultURL, e.Credential())
		if _, err := vc.CreateKey(ctx, "soft", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.CreateKey(ctx, "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(int32(256))}, nil); err != nil {
			t.Fatal(err)
		}
		cross := func(from, to *azkeys.Client, name string) {
			t.Helper()
			b, err := from.BackupKey(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := from.DeleteKey(ctx, name, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := from.PurgeDeletedKey(ctx, name, nil); err != nil {
				t.Fatal(err)
			}
			_, err = to.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: b.Value}, nil)
			if st, code, _, msg := innerCode(t, err); st != http.StatusBadRequest || code != "BadParameter" {
				t.Errorf("restoring %s across: %d %s %s", name, st, code, msg)
			}
			if _, err := to.GetKey(ctx, name, "", nil); err == nil {
				t.Errorf("the refused restore of %s stored the key", name)
			}
		}
		cross(vc, kc, "soft")
		cross(kc, vc, "aes")
	})
}
