package e2e

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/securitydomain"
)

// azurite starts the Azure Storage emulator (npm azurite) on a loopback
// port and returns a container URL and a SAS token for it.
func azurite(t *testing.T) (string, string) {
	t.Helper()
	bin, err := exec.LookPath("azurite-blob")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("azurite-blob is not installed (npm install -g azurite); .ci/run installs it")
		}
		t.Skip("azurite-blob is not installed (npm install -g azurite)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port), "--location", t.TempDir(), "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	const account, key = "devstoreaccount1", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	cred, _ := container.NewSharedKeyCredential(account, key)
	curl := "http://127.0.0.1:" + strconv.Itoa(port) + "/" + account + "/backups"
	c, err := container.NewClientWithSharedKeyCredential(curl, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = c.Create(context.Background(), nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("azurite: creating the container: %v", err)
	}
	qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour), ContainerName: "backups",
		Permissions: (&sas.ContainerPermissions{Read: true, Write: true, Create: true, List: true}).String()}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return curl, qp.Encode()
}

// waitJob polls an Azure-AsyncOperation status until it ends.
func waitJob(t *testing.T, e *kwtest.Env, pool, kind string, raw []byte) map[string]any {
	t.Helper()
	var j map[string]any
	json.Unmarshal(raw, &j)
	id, _ := j["jobId"].(string)
	for i := 0; i < 300; i++ {
		st, raw := hsmCall(t, e, e.Credential(), pool, http.MethodGet, "/"+kind+"/"+id+"/pending", nil)
		if st != http.StatusOK {
			t.Fatalf("%s status: %d %s", kind, st, raw)
		}
		json.Unmarshal(raw, &j)
		if j["status"] != "InProgress" {
			return j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s job did not end", kind)
	return nil
}

func TestManagedHSMBackupRestore(t *testing.T) {
	curl, token := azurite(t)
	e := kwtest.Start(t, kwtest.Options{HSM: true}) // pool RSA-HSM/EC-HSM keys in SoftHSM2
	ctx := context.Background()
	kc := keysFor(t, e, e.Info.ManagedHSMURL, e.Credential())
	if _, err := kc.CreateKey(ctx, "data", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(int32(256))}, nil); err != nil {
		t.Fatal(err)
	}
	signer, err := kc.CreateKey(ctx, "bk-signer", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gcm := azkeys.EncryptionAlgorithmA256GCM
	enc, err := kc.Encrypt(ctx, "data", "", azkeys.KeyOperationParameters{Algorithm: &gcm, Value: []byte("payroll")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	decrypts := func(c *azkeys.Client) error {
		d, err := c.Decrypt(ctx, "data", "", azkeys.KeyOperationParameters{Algorithm: &gcm, Value: enc.Result, IV: enc.IV, AuthenticationTag: enc.AuthenticationTag}, nil)
		if err == nil && string(d.Result) != "payroll" {
			t.Errorf("decrypted %q", d.Result)
		}
		return err
	}
	purge := func(name string) {
		if _, err := kc.DeleteKey(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.PurgeDeletedKey(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Full backup to azurite (SAS token without '?').
	st, raw := hsmCall(t, e, e.Credential(), "dev", http.MethodPost, "/backup", map[string]any{"storageResourceUri": curl, "token": token})
	if st != http.StatusAccepted {
		t.Fatalf("backup: %d %s", st, raw)
	}
	j := waitJob(t, e, "dev", "backup", raw)
	uri, _ := j["azureStorageBlobContainerUri"].(string)
	if j["status"] != "Succeeded" || !strings.HasPrefix(uri, curl+"/mhsm-dev-") {
		t.Fatalf("backup job: %v", j)
	}
	folder := uri[strings.LastIndex(uri, "/")+1:]

	// Restore into the same pool after deleting (and purging) a key
	// (SAS token with a leading '?').
	purge("data")
	if decrypts(kc) == nil {
		t.Fatal("purged key still decrypts")
	}
	st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/restore", map[string]any{
		"sasTokenParameters": map[string]any{"storageResourceUri": curl, "token": "?" + token}, "folderToRestore": folder})
	if st != http.StatusAccepted {
		t.Fatalf("restore: %d %s", st, raw)
	}
	if j := waitJob(t, e, "dev", "restore", raw); j["status"] != "Succeeded" {
		t.Fatalf("restore job: %v", j)
	}
	if err := decrypts(kc); err != nil {
		t.Fatalf("restored key does not decrypt: %v", err)
	}

	// Selective key restore.
	purge("data")
	st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/keys/data/restore", map[string]any{
		"sasTokenParameters": map[string]any{"storageResourceUri": curl, "token": token}, "folder": folder})
	if st != http.StatusAccepted {
		t.Fatalf("selective restore: %d %s", st, raw)
	}
	if j := waitJob(t, e, "dev", "restore", raw); j["status"] != "Succeeded" {
		t.Fatalf("selective restore job: %v", j)
	}
	if err := decrypts(kc); err != nil {
		t.Fatalf("selectively restored key does not decrypt: %v", err)
	}
	// Selective restore of a key the pool has fails and changes nothing.
	st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/keys/data/restore", map[string]any{
		"sasTokenParameters": map[string]any{"storageResourceUri": curl, "token": token}, "folder": folder})
	if j := waitJob(t, e, "dev", "restore", raw); st != http.StatusAccepted || j["status"] != "Failed" {
		t.Errorf("selective restore over a live key: %d %v", st, j)
	}

	// Disaster recovery: a new pool takes the dev pool's security domain
	// (opened by two of its custodians' keys from the dev data directory)
	// and then its backup, and signs with the dev pool's key.
	hc, err := armkeyvault.NewManagedHsmsClient(e.Info.SubscriptionID, e.Credential(), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string) {
		p, err := hc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, name, armkeyvault.ManagedHsm{Location: to.Ptr(e.Info.Location),
			Properties: &armkeyvault.ManagedHsmProperties{InitialAdminObjectIDs: []*string{to.Ptr(e.Info.ObjectID)}}}, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		st, raw := hsmCall(t, e, e.Credential(), name, http.MethodPut, "/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), map[string]any{
			"properties": map[string]any{"roleDefinitionId": authz.RoleHSMCryptoUser, "principalId": e.Info.ObjectID}})
		if st != http.StatusCreated {
			t.Fatalf("assign: %d %s", st, raw)
		}
	}
	mk("drpool")
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
	for _, n := range []string{"custodian-1.key", "custodian-3.key"} {
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
	st, raw = hsmCall(t, e, e.Credential(), "drpool", http.MethodGet, "/securitydomain/upload", nil)
	var tk struct {
		TransferKey struct{ N, E string } `json:"transfer_key"`
	}
	json.Unmarshal(raw, &tk)
	secret, err := securitydomain.Recover(doc, privs)
	if err != nil {
		t.Fatalf("recover the dev security domain: %v", err)
	}
	up, _ := securitydomain.ForUpload(secret, &rsa.PublicKey{N: new(big.Int).SetBytes(unb64(t, tk.TransferKey.N)), E: int(new(big.Int).SetBytes(unb64(t, tk.TransferKey.E)).Int64())}, "")
	upRaw, _ := json.Marshal(up)
	if st, raw := hsmCall(t, e, e.Credential(), "drpool", http.MethodPost, "/securitydomain/upload", map[string]string{"value": string(upRaw)}); st != http.StatusAccepted {
		t.Fatalf("upload: %d %s", st, raw)
	}
	st, raw = hsmCall(t, e, e.Credential(), "drpool", http.MethodPut, "/restore", map[string]any{
		"sasTokenParameters": map[string]any{"storageResourceUri": curl, "token": token}, "folderToRestore": folder})
	if j := waitJob(t, e, "drpool", "restore", raw); st != http.StatusAccepted || j["status"] != "Succeeded" {
		t.Fatalf("restore onto the new pool: %d %v", st, j)
	}
	dr := keysFor(t, e, poolURL(e, "drpool"), e.Credential())
	d := sha256.Sum256([]byte("disaster recovery"))
	sig, err := dr.Sign(ctx, "bk-signer", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: d[:]}, nil)
	if err != nil {
		t.Fatalf("the new pool cannot sign with the restored key: %v", err)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(signer.Key.N), E: int(new(big.Int).SetBytes(signer.Key.E).Int64())}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig.Result); err != nil {
		t.Errorf("signature of the restored key does not verify under the original public key: %v", err)
	}
	if err := decrypts(dr); err != nil {
		t.Errorf("the new pool cannot decrypt the old pool's data: %v", err)
	}

	// A pool with another security domain cannot open the backup.
	mk("other")
	var certs []any
	for i := 0; i < 3; i++ {
		_, der := custodian(t)
		certs = append(certs, map[string]any{"kty": "RSA", "x5c": []string{b64std(der)}})
	}
	if st, raw := hsmCall(t, e, e.Credential(), "other", http.MethodPost, "/securitydomain/download", map[string]any{"certificates": certs, "required": 2}); st != http.StatusAccepted {
		t.Fatalf("download: %d %s", st, raw)
	}
	st, raw = hsmCall(t, e, e.Credential(), "other", http.MethodPut, "/restore", map[string]any{
		"sasTokenParameters": map[string]any{"storageResourceUri": curl, "token": token}, "folderToRestore": folder})
	j = waitJob(t, e, "other", "restore", raw)
	if st != http.StatusAccepted || j["status"] != "Failed" || !strings.Contains(raw2s(j["error"]), "InvalidBackup") {
		t.Errorf("restore under another security domain: %d %v", st, j)
	}
	if _, err := keysFor(t, e, poolURL(e, "other"), e.Credential()).GetKey(ctx, "bk-signer", "", nil); err == nil {
		t.Error("a failed restore left a key behind")
	}

	// Plain http to a host that is not loopback is refused before anything runs.
	st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPost, "/backup", map[string]any{"storageResourceUri": "http://example.com/c", "token": token})
	if st != http.StatusBadRequest {
		t.Errorf("backup to plain http off loopback: %d %s", st, raw)
	}
}

func raw2s(v any) string { b, _ := json.Marshal(v); return string(b) }
