package e2e

import (
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/securitydomain"
	"github.com/miekg/pkcs11"
)

// tokenObjects counts the key objects in the dev server's SoftHSM2 token,
// over PKCS#11 in this process (the server's library is already
// initialized here; it is not finalized). Keyward's own token keys
// (labels keyward:keyward-…, such as the key that wraps HSM key backups,
// made on first use) are not counted: no vault or pool owns them.
func tokenObjects(t *testing.T, e *kwtest.Env) int {
	t.Helper()
	h := e.Info.HSM
	if h == nil {
		t.Fatal("the dev server has no HSM token")
	}
	p := pkcs11.New(h.Module)
	if err := p.Initialize(); err != nil && !strings.Contains(err.Error(), "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
		t.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, sl := range slots {
		ti, err := p.GetTokenInfo(sl)
		if err != nil || strings.TrimRight(ti.Label, " ") != h.TokenLabel {
			continue
		}
		s, err := p.OpenSession(sl, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(s)
		if err := p.Login(s, pkcs11.CKU_USER, h.UserPIN); err != nil && !strings.Contains(err.Error(), "CKR_USER_ALREADY_LOGGED_IN") {
			t.Fatal(err)
		}
		if err := p.FindObjectsInit(s, nil); err != nil {
			t.Fatal(err)
		}
		defer p.FindObjectsFinal(s)
		n := 0
		for {
			objs, _, err := p.FindObjects(s, 256)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				return n
			}
			for _, o := range objs {
				a, err := p.GetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil)})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(a[0].Value), "keyward:keyward-") {
					n++
				}
			}
		}
	}
	t.Fatalf("token %q not found", h.TokenLabel)
	return 0
}

// activateWithDevDomain gives pool name the dev pool's security domain
// (two of its custodians' keys from the dev data directory open it).
func activateWithDevDomain(t *testing.T, e *kwtest.Env, name string) {
	t.Helper()
	sdDir := filepath.Join(e.DataDir, "managedhsm-dev")
	sdRaw, err := os.ReadFile(filepath.Join(sdDir, "security-domain.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := securitydomain.Parse(sdRaw)
	if err != nil {
		t.Fatal(err)
	}
	var privs []*rsa.PrivateKey
	for _, n := range []string{"custodian-1.key", "custodian-2.key"} {
		b, err := os.ReadFile(filepath.Join(sdDir, n))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		privs = append(privs, k.(*rsa.PrivateKey))
	}
	_, raw := hsmCall(t, e, e.Credential(), name, http.MethodGet, "/securitydomain/upload", nil)
	var tk struct {
		TransferKey struct{ N, E string } `json:"transfer_key"`
	}
	json.Unmarshal(raw, &tk)
	secret, err := securitydomain.Recover(doc, privs)
	if err != nil {
		t.Fatal(err)
	}
	up, _ := securitydomain.ForUpload(secret, &rsa.PublicKey{N: new(big.Int).SetBytes(unb64(t, tk.TransferKey.N)), E: int(new(big.Int).SetBytes(unb64(t, tk.TransferKey.E)).Int64())}, "")
	upRaw, _ := json.Marshal(up)
	if st, raw := hsmCall(t, e, e.Credential(), name, http.MethodPost, "/securitydomain/upload", map[string]string{"value": string(upRaw)}); st != http.StatusAccepted {
		t.Fatalf("upload: %d %s", st, raw)
	}
}

// Purging a pool destroys its keys' token objects, except those another
// pool still holds (a full backup carries HSM keys as token references, so
// a restore into another pool shares them); purging a pool key does too.
func TestManagedHSMPurgeDestroysTokenObjects(t *testing.T) {
	curl, token := azurite(t)
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	ctx := context.Background()

	// The dev pool's RSA-HSM key, in a full backup.
	dev := keysFor(t, e, e.Info.ManagedHSMURL, e.Credential())
	signer, err := dev.CreateKey(ctx, "shared-signer", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := newAdminClient(t, e, e.Credential(), "dev")
	resp := a.do(ctx, http.MethodPost, "/backup", azSAS{StorageResourceURI: &curl, Token: &token}, http.StatusAccepted)
	bp, err := runtime.NewPoller(resp, a.c.Pipeline(), &runtime.NewPollerOptions[azJob]{FinalStateVia: runtime.FinalStateViaAzureAsyncOp})
	if err != nil {
		t.Fatal(err)
	}
	job, err := bp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	folder := (*job.AzureStorageBlobContainerURI)[len(curl)+1:]

	// A second pool with the dev pool's security domain.
	hc, err := armkeyvault.NewManagedHsmsClient(e.Info.SubscriptionID, e.Credential(), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := hc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "tokpool", armkeyvault.ManagedHsm{Location: to.Ptr(e.Info.Location),
		Properties: &armkeyvault.ManagedHsmProperties{InitialAdminObjectIDs: []*string{to.Ptr(e.Info.ObjectID)}}}, nil)
	if err == nil {
		_, err = cp.PollUntilDone(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{authz.RoleHSMCryptoUser, authz.RoleHSMCryptoOfficer} {
		if st, raw := hsmCall(t, e, e.Credential(), "tokpool", http.MethodPut, "/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), map[string]any{
			"properties": map[string]any{"roleDefinitionId": role, "principalId": e.Info.ObjectID}}); st != http.StatusCreated {
			t.Fatalf("assign: %d %s", st, raw)
		}
	}
	activateWithDevDomain(t, e, "tokpool")

	// Its own keys are new token objects.
	before := tokenObjects(t, e)
	kc := keysFor(t, e, poolURL(e, "tokpool"), e.Credential())
	if _, err := kc.CreateKey(ctx, "own-rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
		t.Fatal(err)
	}
	withRSA := tokenObjects(t, e)
	if _, err := kc.CreateKey(ctx, "own-ec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
		t.Fatal(err)
	}
	withBoth := tokenObjects(t, e)
	if withRSA <= before || withBoth <= withRSA {
		t.Fatalf("token objects: %d before, %d with the RSA key, %d with both", before, withRSA, withBoth)
	}
	// The restored dev key shares the dev key's objects: no new ones.
	ta := newAdminClient(t, e, e.Credential(), "tokpool")
	if job, err := ta.restore(ctx, "/restore", map[string]any{"folderToRestore": folder, "sasTokenParameters": azSAS{StorageResourceURI: &curl, Token: &token}}); err != nil || *job.Status != "Succeeded" {
		t.Fatalf("restore into tokpool: %v", err)
	}
	if n := tokenObjects(t, e); n != withBoth {
		t.Fatalf("token objects after the restore: %d, want %d", n, withBoth)
	}

	// Purging a pool key destroys its objects.
	if _, err := kc.DeleteKey(ctx, "own-ec", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.PurgeDeletedKey(ctx, "own-ec", nil); err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != withRSA {
		t.Fatalf("token objects after purging own-ec: %d, want %d", n, withRSA)
	}

	// Deleting the pool keeps its objects (it can be recovered); purging
	// it destroys its own, not the dev pool's.
	dp, err := hc.BeginDelete(ctx, e.Info.ResourceGroup, "tokpool", nil)
	if err == nil {
		_, err = dp.PollUntilDone(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != withRSA {
		t.Fatalf("token objects after the soft delete: %d, want %d", n, withRSA)
	}
	pp, err := hc.BeginPurgeDeleted(ctx, "tokpool", e.Info.Location, nil)
	if err == nil {
		_, err = pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != before {
		t.Fatalf("token objects after the purge: %d, want %d", n, before)
	}
	d := sha256.Sum256([]byte("still here"))
	sig, err := dev.Sign(ctx, "shared-signer", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: d[:]}, nil)
	if err != nil {
		t.Fatalf("the dev pool lost its key with the other pool's purge: %v", err)
	}
	if sig.KID.Version() != signer.Key.KID.Version() {
		t.Errorf("signed with %s", *sig.KID)
	}
}

// Purging a premium vault destroys its HSM keys' token objects too.
func TestVaultPurgeDestroysTokenObjects(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	ctx := context.Background()
	vc := vaultsARM(t, e, e.Credential())
	all := []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}
	cp, err := vc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "tokvault", armkeyvault.VaultCreateOrUpdateParameters{
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
	before := tokenObjects(t, e)
	kc := keysFor(t, e, vaultURLOf(e, "tokvault"), e.Credential())
	if _, err := kc.CreateKey(ctx, "v-rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.RotateKey(ctx, "v-rsa", nil); err != nil {
		t.Fatal(err)
	}
	with := tokenObjects(t, e)
	if with <= before {
		t.Fatalf("token objects: %d before, %d with the key", before, with)
	}
	if _, err := vc.Delete(ctx, e.Info.ResourceGroup, "tokvault", nil); err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != with {
		t.Fatalf("token objects after the soft delete: %d, want %d", n, with)
	}
	pp, err := vc.BeginPurgeDeleted(ctx, "tokvault", e.Info.Location, nil)
	if err == nil {
		_, err = pp.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 50 * time.Millisecond})
	}
	if err != nil {
		t.Fatal(err)
	}
	if n := tokenObjects(t, e); n != before {
		t.Fatalf("token objects after the purge: %d, want %d", n, before)
	}
}
