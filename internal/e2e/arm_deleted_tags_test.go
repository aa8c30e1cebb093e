package e2e

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestDeletedVaultKeepsTags: a soft-deleted vault answers the original
// vault's tags (DeletedVaultProperties.tags, "Tags of the original
// vault"), on get and list through armkeyvault, and a recovered vault
// has them still.
func TestDeletedVaultKeepsTags(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	vc := vaultsARM(t, e, e.Credential())
	tags := map[string]*string{"env": to.Ptr("prod"), "owner": to.Ptr("team-a")}
	params := func(mode *armkeyvault.CreateMode) armkeyvault.VaultCreateOrUpdateParameters {
		return armkeyvault.VaultCreateOrUpdateParameters{Location: to.Ptr(e.Info.Location), Tags: tags,
			Properties: &armkeyvault.VaultProperties{TenantID: to.Ptr(e.Info.TenantID), CreateMode: mode,
				SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)}}}
	}
	create := func(mode *armkeyvault.CreateMode) armkeyvault.Vault {
		t.Helper()
		p, err := vc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "tagged", params(mode), nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.Vault
	}
	same := func(what string, got map[string]*string) {
		t.Helper()
		if len(got) != len(tags) {
			t.Fatalf("%s: tags %v", what, got)
		}
		for k, v := range tags {
			if got[k] == nil || *got[k] != *v {
				t.Fatalf("%s: tag %s = %v, want %s", what, k, got[k], *v)
			}
		}
	}
	create(nil)
	if _, err := vc.Delete(ctx, e.Info.ResourceGroup, "tagged", nil); err != nil {
		t.Fatal(err)
	}
	dv, err := vc.GetDeleted(ctx, "tagged", e.Info.Location, nil)
	if err != nil {
		t.Fatal(err)
	}
	same("get deleted", dv.Properties.Tags)
	page, err := vc.NewListDeletedPager(nil).NextPage(ctx)
	if err != nil || len(page.Value) != 1 {
		t.Fatalf("list deleted: %v %d", err, len(page.Value))
	}
	same("list deleted", page.Value[0].Properties.Tags)
	same("recovered", create(to.Ptr(armkeyvault.CreateModeRecover)).Tags)
}
