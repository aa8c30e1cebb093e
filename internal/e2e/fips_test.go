package e2e

import (
	"context"
	"crypto/fips140"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestFIPSOnlyMode runs a whole server under GODEBUG=fips140=only (by
// re-running this test binary): approved operations work end to end over
// TLS, non-approved ones get a clear 400, and nothing panics.
func TestFIPSOnlyMode(t *testing.T) {
	if !fips140.Enforced() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFIPSOnlyMode$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140=only")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestFIPSOnlyMode") {
			t.Fatalf("under fips140=only: %v\n%s", err, out)
		}
		return
	}
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	sc, _ := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if _, err := sc.SetSecret(ctx, "fips", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if g, err := sc.GetSecret(ctx, "fips", "", nil); err != nil || *g.Value != "v" {
		t.Fatalf("get: %v", err)
	}
	kc := keysClient(t, e)
	k, err := kc.CreateKey(ctx, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*k.Attributes.HSMPlatform, "enforced") {
		t.Fatalf("hsmPlatform %q does not say FIPS is enforced", *k.Attributes.HSMPlatform)
	}
	oaep256 := azkeys.EncryptionAlgorithmRSAOAEP256
	enc, err := kc.Encrypt(ctx, "rsa", "", azkeys.KeyOperationParameters{Algorithm: &oaep256, Value: []byte("dek")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := kc.Decrypt(ctx, "rsa", "", azkeys.KeyOperationParameters{Algorithm: &oaep256, Value: enc.Result}, nil); err != nil || string(d.Result) != "dek" {
		t.Fatalf("RSA-OAEP-256 round trip: %v", err)
	}
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSA15, azkeys.EncryptionAlgorithmRSAOAEP} {
		_, err := kc.Encrypt(ctx, "rsa", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: []byte("dek")}, nil)
		re := wantErr(t, err, http.StatusBadRequest, "BadParameter")
		if !strings.Contains(re.Error(), "NotAllowedInFIPSMode") {
			t.Fatalf("%s: %v", alg, re)
		}
	}
	_, err = kc.CreateKey(ctx, "k1", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256K)}, nil)
	re := wantErr(t, err, http.StatusBadRequest, "BadParameter")
	if !strings.Contains(re.Error(), "NotAllowedInFIPSMode") {
		t.Fatalf("P-256K: %v", re)
	}
}
