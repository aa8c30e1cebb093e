package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestManagedHSMSharedTokenObjectSurvivesVaultPurge: a key backup of an
// HSM key carries a reference to its token object, so restoring it into a
// second premium vault of the tenant makes both vaults hold the same
// object. Purging the key in the first vault, then the first vault
// itself, must leave the second vault's key usable (the object stays).
func TestManagedHSMSharedTokenObjectSurvivesVaultPurge(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	ctx := context.Background()
	vc := vaultsARM(t, e, e.Credential())
	all := []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}
	for _, name := range []string{"shareda", "sharedb"} {
		cp, err := vc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, name, armkeyvault.VaultCreateOrUpdateParameters{
			Location: to.Ptr(e.Info.Location), Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(e.Info.TenantID),
				SKU:                       &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNamePremium)},
				SoftDeleteRetentionInDays: to.Ptr[int32](7),
				AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(e.Info.ObjectID),
					Permissions: &armkeyvault.Permissions{Keys: all}}}}}, nil)
		if err == nil {
			_, err = cp.PollUntilDone(ctx, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ka := keysFor(t, e, vaultURLOf(e, "shareda"), e.Credential())
	kb := keysFor(t, e, vaultURLOf(e, "sharedb"), e.Credential())
	r, err := ka.CreateKey(ctx, "shared", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ka.BackupKey(ctx, "shared", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kb.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: b.Value}, nil); err != nil {
		t.Fatal(err)
	}
	signB := func(when string) {
		t.Helper()
		_, digest := digestOf("ES256", []byte(when))
		s, err := kb.Sign(ctx, "shared", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest}, nil)
		if err != nil || !verifyLocally(t, r.Key, "ES256", digest, s.Result) {
			t.Fatalf("the restored copy in sharedb does not sign %s: %v", when, err)
		}
	}
	signB("before any purge")
	before := tokenObjects(t, e)
	if _, err := ka.DeleteKey(ctx, "shared", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ka.PurgeDeletedKey(ctx, "shared", nil); err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != before {
		t.Fatalf("token objects after purging the key in shareda: %d, want %d (sharedb still holds it)", n, before)
	}
	signB("after the key purge in shareda")

	// The same through a whole-vault purge: a key created in sharedb and
	// restored into shareda.
	r, err = kb.CreateKey(ctx, "shared2", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = kb.BackupKey(ctx, "shared2", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ka.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: b.Value}, nil); err != nil {
		t.Fatal(err)
	}
	before = tokenObjects(t, e)
	if _, err := vc.Delete(ctx, e.Info.ResourceGroup, "shareda", nil); err != nil {
		t.Fatal(err)
	}
	pp, err := vc.BeginPurgeDeleted(ctx, "shareda", e.Info.Location, nil)
	if err == nil {
		_, err = pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != before {
		t.Fatalf("token objects after purging shareda: %d, want %d (sharedb still holds its keys)", n, before)
	}
	_, digest := digestOf("ES256", []byte("after the vault purge"))
	s, err := kb.Sign(ctx, "shared2", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest}, nil)
	if err != nil || !verifyLocally(t, r.Key, "ES256", digest, s.Result) {
		t.Fatalf("sharedb's key does not sign after shareda's purge: %v", err)
	}
}
