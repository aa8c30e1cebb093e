package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// keymgmtToken is a Keyward access token for the management resource, as
// a Vault client sends it (VAULT_TOKEN).
func keymgmtToken(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential) string {
	t.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// vaultClient is Vault's Go API client configured the way Vault's users
// configure it: VAULT_ADDR, VAULT_TOKEN and VAULT_CACERT from dev.json.
func vaultClient(t *testing.T, e *kwtest.Env) *vaultapi.Client {
	t.Helper()
	t.Setenv("VAULT_ADDR", e.Info.KeymgmtAddress)
	t.Setenv("VAULT_TOKEN", keymgmtToken(t, e, e.Credential()))
	t.Setenv("VAULT_CACERT", e.Info.CAFile)
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		t.Fatal(cfg.Error)
	}
	cfg.MaxRetries = 0
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func vaultStatus(err error) (int, []string) {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, re.Errors
	}
	return 0, nil
}

func mustWrite(t *testing.T, c *vaultapi.Client, path string, data map[string]any) {
	t.Helper()
	if _, err := c.Logical().Write(path, data); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func mustRead(t *testing.T, c *vaultapi.Client, path string) map[string]any {
	t.Helper()
	s, err := c.Logical().Read(path)
	if err != nil || s == nil {
		t.Fatalf("read %s: %v (secret %v)", path, err, s)
	}
	return s.Data
}

func mustList(t *testing.T, c *vaultapi.Client, path string) []string {
	t.Helper()
	s, err := c.Logical().List(path)
	if err != nil || s == nil {
		t.Fatalf("list %s: %v (secret %v)", path, err, s)
	}
	var out []string
	for _, k := range s.Data["keys"].([]any) {
		out = append(out, k.(string))
	}
	return out
}

func jsonInt(t *testing.T, v any) int {
	t.Helper()
	n, err := v.(json.Number).Int64()
	if err != nil {
		t.Fatalf("%v is not an integer", v)
	}
	return int(n)
}

// publicKey reads version v's public key from keymgmt.
func publicKey(t *testing.T, c *vaultapi.Client, name string, v string) *rsa.PublicKey {
	t.Helper()
	d := mustRead(t, c, "keymgmt/key/"+name)
	ver, ok := d["versions"].(map[string]any)[v].(map[string]any)
	if !ok {
		t.Fatalf("key %s has no version %s: %v", name, v, d["versions"])
	}
	blk, _ := pem.Decode([]byte(ver["public_key"].(string)))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		t.Fatalf("version %s of %s: no PEM public key", v, name)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return pub.(*rsa.PublicKey)
}

// TestKeyMgmtTutorialAzure runs the seed's Vault keymgmt tutorial with
// Vault's Go API client against one Keyward, distributing into a SECOND
// Keyward's vault, and checks every step there with azkeys.
func TestKeyMgmtTutorialAzure(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	central := kwtest.Start(t, kwtest.Options{Clock: clk, SchedulerInterval: time.Minute})
	target := kwtest.Start(t, kwtest.Options{HSM: true}) // a premium vault: protection=hsm

	ctx := context.Background()
	vc := vaultClient(t, central)
	kv, err := azkeys.NewClient(target.Info.VaultURL, target.Credential(), &azkeys.ClientOptions{ClientOptions: target.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}

	// Write keys, read keys.
	mustWrite(t, vc, "keymgmt/key/rsa-1", map[string]any{"type": "rsa-2048"})
	mustWrite(t, vc, "keymgmt/key/rsa-2", map[string]any{"type": "rsa-2048"})
	for _, name := range []string{"rsa-1", "rsa-2"} {
		d := mustRead(t, vc, "keymgmt/key/"+name)
		if d["type"] != "rsa-2048" || jsonInt(t, d["latest_version"]) != 1 || jsonInt(t, d["min_enabled_version"]) != 1 || d["deletion_allowed"] != false {
			t.Fatalf("key %s: %v", name, d)
		}
		if publicKey(t, vc, name, "1").N.BitLen() != 2048 {
			t.Fatalf("key %s is not RSA-2048", name)
		}
	}
	if got := mustList(t, vc, "keymgmt/key"); !slices.Equal(got, []string{"rsa-1", "rsa-2"}) {
		t.Fatalf("LIST keymgmt/key = %v", got)
	}

	// Create the KMS provider: the second Keyward's vault.
	caPEM, err := os.ReadFile(target.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, vc, "keymgmt/kms/keyvault", map[string]any{
		"provider": "azurekeyvault", "key_collection": "dev",
		"credentials": map[string]any{"client_id": target.Info.ClientID, "client_secret": target.Info.ClientSecret,
			"tenant_id": target.Info.TenantID, "authority_host": target.Info.AuthorityHost,
			"vault_url": target.Info.VaultURL, "ca_cert": string(caPEM)},
	})
	kmsData := mustRead(t, vc, "keymgmt/kms/keyvault")
	if kmsData["provider"] != "azurekeyvault" || kmsData["key_collection"] != "dev" || kmsData["credentials"] != nil {
		t.Fatalf("kms read: %v", kmsData)
	}

	// Distribute: rsa-1 for encrypt,decrypt, rsa-2 for sign.
	mustWrite(t, vc, "keymgmt/kms/keyvault/key/rsa-1", map[string]any{"purpose": "encrypt,decrypt", "protection": "hsm"})
	mustWrite(t, vc, "keymgmt/kms/keyvault/key/rsa-2", map[string]any{"purpose": []string{"sign"}}) // protection: Vault's default, hsm
	if got := mustList(t, vc, "keymgmt/kms/keyvault/key"); !slices.Equal(got, []string{"rsa-1", "rsa-2"}) {
		t.Fatalf("LIST keymgmt/kms/keyvault/key = %v", got)
	}
	if got := mustList(t, vc, "keymgmt/key/rsa-1/kms"); !slices.Equal(got, []string{"keyvault"}) {
		t.Fatalf("LIST keymgmt/key/rsa-1/kms = %v", got)
	}
	dist := mustRead(t, vc, "keymgmt/kms/keyvault/key/rsa-1")
	if dist["protection"] != "hsm" || dist["state"] != "distributed" || len(dist["versions"].(map[string]any)) != 1 {
		t.Fatalf("distribution rsa-1: %v", dist)
	}

	// Verify in the target with azkeys: key_ops exact, public keys equal.
	checkKey := func(name string, ops []string, pub *rsa.PublicKey) azkeys.KeyBundle {
		t.Helper()
		got, err := kv.GetKey(ctx, name, "", nil)
		if err != nil {
			t.Fatalf("target GetKey %s: %v", name, err)
		}
		var gotOps []string
		for _, op := range got.Key.KeyOps {
			gotOps = append(gotOps, string(*op))
		}
		if !slices.Equal(gotOps, ops) {
			t.Fatalf("target %s key_ops = %v, want %v", name, gotOps, ops)
		}
		if *got.Key.Kty != azkeys.KeyTypeRSAHSM {
			t.Fatalf("target %s kty = %s, want RSA-HSM (protection=hsm)", name, *got.Key.Kty)
		}
		if new(big.Int).SetBytes(got.Key.N).Cmp(pub.N) != 0 {
			t.Fatalf("target %s: public key differs from keymgmt's", name)
		}
		if got.Tags["keyward-keymgmt-key"] == nil || *got.Tags["keyward-keymgmt-key"] != name {
			t.Fatalf("target %s is not tagged: %v", name, got.Tags)
		}
		return got.KeyBundle
	}
	rsa1v1 := checkKey("rsa-1", []string{"encrypt", "decrypt"}, publicKey(t, vc, "rsa-1", "1"))
	checkKey("rsa-2", []string{"sign"}, publicKey(t, vc, "rsa-2", "1"))

	// A signature made in the target verifies with keymgmt's public key.
	digest := sha256.Sum256([]byte("signed in the target"))
	sig, err := kv.Sign(ctx, "rsa-2", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(publicKey(t, vc, "rsa-2", "1"), crypto.SHA256, digest[:], sig.Result); err != nil {
		t.Fatalf("signature made in the target does not verify with keymgmt's public key: %v", err)
	}

	// An ECDSA key for signing: same public key there, a signature made
	// there verifies with keymgmt's public key.
	mustWrite(t, vc, "keymgmt/key/ec-1", map[string]any{"type": "ecdsa-p256"})
	mustWrite(t, vc, "keymgmt/kms/keyvault/key/ec-1", map[string]any{"purpose": "sign,verify", "protection": "software"})
	ecd := mustRead(t, vc, "keymgmt/key/ec-1")
	blk, _ := pem.Decode([]byte(ecd["versions"].(map[string]any)["1"].(map[string]any)["public_key"].(string)))
	ecAny, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ecPub := ecAny.(*ecdsa.PublicKey)
	ecSig, err := kv.Sign(ctx, "ec-1", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest[:]}, nil)
	if err != nil || len(ecSig.Result) != 64 {
		t.Fatalf("ES256 in the target: %v", err)
	}
	if !ecdsa.Verify(ecPub, digest[:], new(big.Int).SetBytes(ecSig.Result[:32]), new(big.Int).SetBytes(ecSig.Result[32:])) {
		t.Fatal("ES256 signature made in the target does not verify with keymgmt's public key")
	}

	// protection=hsm: the BYOK transfer blob into the target's HSM (a
	// premium vault: the dev server's when SoftHSM2 is installed).
	if target.Info.HSM != nil {
		mustWrite(t, vc, "keymgmt/key/rsa-h", map[string]any{"type": "rsa-3072"})
		mustWrite(t, vc, "keymgmt/kms/keyvault/key/rsa-h", map[string]any{"purpose": "sign", "protection": "hsm"})
		got, err := kv.GetKey(ctx, "rsa-h", "", nil)
		if err != nil || *got.Key.Kty != azkeys.KeyTypeRSAHSM || new(big.Int).SetBytes(got.Key.N).Cmp(publicKey(t, vc, "rsa-h", "1").N) != 0 {
			t.Fatalf("hsm distribution in the target: %v %+v", err, got.Key)
		}
		hsig, err := kv.Sign(ctx, "rsa-h", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
		if err != nil || rsa.VerifyPKCS1v15(publicKey(t, vc, "rsa-h", "1"), crypto.SHA256, digest[:], hsig.Result) != nil {
			t.Fatalf("signature by the HSM copy: %v", err)
		}
		t.Log("protection=hsm: rsa-h imported into the target's HSM through a .byok transfer blob")
	} else {
		t.Fatal("the target's dev vault has no HSM: protection=hsm untested")
	}

	// Rotate rsa-1: a second version appears in the target with the new public key.
	mustWrite(t, vc, "keymgmt/key/rsa-1/rotate", nil)
	if d := mustRead(t, vc, "keymgmt/key/rsa-1"); jsonInt(t, d["latest_version"]) != 2 {
		t.Fatalf("after rotate: %v", d)
	}
	pub2 := publicKey(t, vc, "rsa-1", "2")
	if pub2.N.Cmp(publicKey(t, vc, "rsa-1", "1").N) == 0 {
		t.Fatal("rotation kept the key material")
	}
	rsa1v2 := checkKey("rsa-1", []string{"encrypt", "decrypt"}, pub2)
	if rsa1v2.Key.KID.Version() == rsa1v1.Key.KID.Version() {
		t.Fatal("no new version in the target")
	}
	if v1, err := kv.GetKey(ctx, "rsa-1", rsa1v1.Key.KID.Version(), nil); err != nil || !*v1.Attributes.Enabled {
		t.Fatalf("version 1 in the target before min_enabled_version: %v", err)
	}

	// min_enabled_version=2 (as Vault's CLI sends it: a string): version 1 disabled there.
	mustWrite(t, vc, "keymgmt/key/rsa-1", map[string]any{"min_enabled_version": "2"})
	v1, err := kv.GetKey(ctx, "rsa-1", rsa1v1.Key.KID.Version(), nil)
	if err != nil || *v1.Attributes.Enabled {
		t.Fatalf("version 1 in the target after min_enabled_version=2: err %v, enabled %v", err, v1.Attributes)
	}
	if v2, err := kv.GetKey(ctx, "rsa-1", rsa1v2.Key.KID.Version(), nil); err != nil || !*v2.Attributes.Enabled {
		t.Fatalf("version 2 in the target: %v", err)
	}

	// Bad input: Vault-shaped errors, nothing changed.
	for _, tc := range []struct {
		path string
		data map[string]any
		want int
	}{
		{"keymgmt/key/rsa-3", map[string]any{"type": "rsa-1024"}, 400},
		{"keymgmt/key/bad_name!", map[string]any{"type": "rsa-2048"}, 400},
		{"keymgmt/key/rsa-1", map[string]any{"min_enabled_version": 7}, 400},
		{"keymgmt/key/rsa-1", map[string]any{"type": "ecdsa-p256"}, 400},
		{"keymgmt/kms/keyvault/key/rsa-1", map[string]any{"purpose": "encrypt,fly", "protection": "software"}, 400},
		{"keymgmt/kms/keyvault/key/rsa-3", map[string]any{"purpose": "sign", "protection": "software"}, 404},
		{"keymgmt/kms/other", map[string]any{"provider": "gcpckms", "key_collection": "x"}, 400},
		{"keymgmt/kms/other", map[string]any{"provider": "azurekeyvault", "key_collection": "dev", "credentials": map[string]any{"client_id": "x"}}, 400},
	} {
		_, err := vc.Logical().Write(tc.path, tc.data)
		if st, msgs := vaultStatus(err); st != tc.want || (st == 400 && len(msgs) != 1) {
			t.Errorf("write %s %v: status %d %v, want %d with one error", tc.path, tc.data, st, msgs, tc.want)
		}
	}
	if s, err := vc.Logical().Read("keymgmt/key/rsa-3"); err != nil || s != nil {
		t.Errorf("a refused key exists: %v %v", s, err)
	}
	if s, err := vc.Logical().Read("keymgmt/kms/other"); err != nil || s != nil {
		t.Errorf("a refused KMS provider exists: %v %v", s, err)
	}
	if d := mustRead(t, vc, "keymgmt/key/rsa-1"); jsonInt(t, d["min_enabled_version"]) != 2 || d["type"] != "rsa-2048" {
		t.Errorf("refused updates changed rsa-1: %v", d)
	}
	if _, err := vc.Logical().Delete("keymgmt/key/rsa-2"); err == nil {
		t.Error("deleted a key without deletion_allowed")
	}
	// No token: 401; a token of a principal without a role: 403.
	anon, _ := vc.Clone()
	anon.ClearToken()
	if _, err := anon.Logical().Read("keymgmt/key/rsa-1"); func() int { s, _ := vaultStatus(err); return s }() != 401 {
		t.Errorf("no token: %v", err)
	}
	unpriv, _ := vc.Clone()
	unpriv.SetToken(keymgmtToken(t, central, central.CredentialFor(central.Info.TenantID, central.Info.UnprivilegedClientID, central.Info.UnprivilegedClientSecret)))
	if _, err := unpriv.Logical().Read("keymgmt/key/rsa-1"); func() int { s, _ := vaultStatus(err); return s }() != 403 {
		t.Errorf("unprivileged caller: %v", err)
	}

	// Reconciliation: delete rsa-2 in the target behind Keyward's back,
	// advance the clock: the job reports it and distributes it again.
	if _, err := kv.DeleteKey(ctx, "rsa-2", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + time.Second)
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := central.Server.Jobs().WaitRunSince(jctx, server.JobKeyMgmt, clk.Now()); err != nil {
		t.Fatalf("the reconciliation job did not run: %v", err)
	}
	dist = mustRead(t, vc, "keymgmt/kms/keyvault/key/rsa-2")
	if dist["state"] != "repaired" || !strings.Contains(strings.Join(toStrings(dist["findings"]), ";"), "deleted in the target") {
		t.Fatalf("distribution after out-of-band delete: %v", dist)
	}
	checkKey("rsa-2", []string{"sign"}, publicKey(t, vc, "rsa-2", "1"))
	// The job emitted an audit event for the repair.
	auditLog, err := os.ReadFile(filepath.Join(central.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"operation":"KeyMgmtReconcile","object_id":"kms/keyvault/key/rsa-2"`).Match(auditLog) {
		t.Fatal("no KeyMgmtReconcile audit event for the repaired distribution")
	}

	// Remove rsa-1 from the target: deleted there (soft delete).
	if _, err := vc.Logical().Delete("keymgmt/kms/keyvault/key/rsa-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.GetKey(ctx, "rsa-1", "", nil); !isHTTPStatus(err, 404) {
		t.Fatalf("rsa-1 still in the target: %v", err)
	}
	if _, err := kv.GetDeletedKey(ctx, "rsa-1", nil); err != nil {
		t.Fatalf("rsa-1 not soft-deleted in the target: %v", err)
	}
	// The key exchange keys made for the imports (RSA-HSM, import only):
	// each version is disabled once its import is done, and they go with
	// the key on removal.
	if _, err := kv.GetKey(ctx, "rsa-1-kek", "", nil); !isHTTPStatus(err, 404) {
		t.Fatalf("rsa-1's key exchange key still in the target after remove: %v", err)
	}
	if _, err := kv.GetDeletedKey(ctx, "rsa-1-kek", nil); err != nil {
		t.Fatalf("rsa-1's key exchange key not soft-deleted in the target: %v", err)
	}
	keks := 0
	for pager := kv.NewListKeyPropertiesVersionsPager("rsa-2-kek", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, kp := range page.Value {
			keks++
			if kp.Attributes == nil || kp.Attributes.Enabled == nil || *kp.Attributes.Enabled {
				t.Fatalf("a key exchange key version of rsa-2 is still enabled after its import: %s", *kp.KID)
			}
		}
	}
	if keks == 0 {
		t.Fatal("rsa-2 (protection hsm) was imported without a key exchange key in the target")
	}
	if s, err := vc.Logical().Read("keymgmt/kms/keyvault/key/rsa-1"); err != nil || s != nil {
		t.Fatalf("distribution still recorded: %v %v", s, err)
	}
	// Central lifecycle: deletion once allowed and distributed nowhere.
	mustWrite(t, vc, "keymgmt/key/rsa-1", map[string]any{"deletion_allowed": true})
	if _, err := vc.Logical().Delete("keymgmt/key/rsa-1"); err != nil {
		t.Fatal(err)
	}
	if s, err := vc.Logical().Read("keymgmt/key/rsa-1"); err != nil || s != nil {
		t.Fatalf("rsa-1 after delete: %v %v", s, err)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, e.(string))
		}
	}
	return out
}

func isHTTPStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

// startLocalKMS starts the AWS KMS emulator (github.com/nsmithuk/local-kms)
// on a free port and returns its endpoint.
func startLocalKMS(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("local-kms")
	if err != nil {
		gobin := filepath.Join(os.Getenv("HOME"), "go", "bin", "local-kms")
		if out, e := exec.Command("go", "env", "GOPATH").Output(); e == nil {
			gobin = filepath.Join(strings.TrimSpace(string(out)), "bin", "local-kms")
		}
		if _, err2 := os.Stat(gobin); err2 != nil {
			missingDep(t, "local-kms (the AWS KMS emulator)", "go install github.com/nsmithuk/local-kms@latest")
		}
		bin = gobin
	}
	dir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT=0", "KMS_DATA_PATH="+dir, "KMS_SEED_PATH="+filepath.Join(dir, "none.yaml"), "KMS_REGION=eu-west-2")
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	portRE := regexp.MustCompile(`Local KMS started on 0\.0\.0\.0:([0-9]+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := portRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	select {
	case port := <-found:
		return "http://127.0.0.1:" + port
	case <-time.After(20 * time.Second):
		t.Fatal("local-kms did not start")
	}
	return ""
}

// TestKeyMgmtAWSKMS distributes an aes256-gcm96 key into AWS KMS (the
// local-kms emulator), rotates and removes it, and repairs a deletion
// scheduled behind Keyward's back.
func TestKeyMgmtAWSKMS(t *testing.T) {
	endpoint := startLocalKMS(t)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	e := kwtest.Start(t, kwtest.Options{Clock: clk, SchedulerInterval: time.Minute})
	vc := vaultClient(t, e)
	ctx := context.Background()
	aw := kms.New(kms.Options{Region: "eu-west-2", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDKEYWARD", "keyward-test-secret", "")})

	mustWrite(t, vc, "keymgmt/key/aes-1", map[string]any{"type": "aes256-gcm96"})
	mustWrite(t, vc, "keymgmt/kms/aws", map[string]any{"provider": "awskms", "key_collection": "eu-west-2",
		"credentials": []string{"access_key=AKIDKEYWARD", "secret_key=keyward-test-secret", "endpoint=" + endpoint}})
	// RSA keys are not imported into KMS here: refused, nothing created.
	mustWrite(t, vc, "keymgmt/key/rsa-x", map[string]any{"type": "rsa-2048"})
	if _, err := vc.Logical().Write("keymgmt/kms/aws/key/rsa-x", map[string]any{"purpose": "encrypt"}); func() int { s, _ := vaultStatus(err); return s }() != 400 {
		t.Fatalf("rsa into awskms: %v", err)
	}
	mustWrite(t, vc, "keymgmt/kms/aws/key/aes-1", map[string]any{"purpose": "encrypt,decrypt", "protection": "hsm"})

	describe := func(id string) *kmstypes.KeyMetadata {
		t.Helper()
		out, err := aw.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
		if err != nil {
			t.Fatalf("DescribeKey %s: %v", id, err)
		}
		return out.KeyMetadata
	}
	md := describe("alias/aes-1")
	if md.KeyState != kmstypes.KeyStateEnabled || md.Origin != kmstypes.OriginTypeExternal {
		t.Fatalf("KMS key: state %s origin %s", md.KeyState, md.Origin)
	}
	v1 := aws.ToString(md.KeyId)
	if d := mustRead(t, vc, "keymgmt/kms/aws/key/aes-1"); d["versions"].(map[string]any)["1"] != v1 {
		t.Fatalf("distribution versions %v, KMS key %s", d["versions"], v1)
	}
	roundTrip := func(keyID string) {
		t.Helper()
		enc, err := aw.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("through KMS")})
		if err != nil {
			t.Fatalf("Encrypt: %v", err)
		}
		dec, err := aw.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		if err != nil || string(dec.Plaintext) != "through KMS" {
			t.Fatalf("Decrypt: %v", err)
		}
	}
	roundTrip("alias/aes-1")

	// Rotate: the alias points at a new KMS key, the old one is disabled.
	mustWrite(t, vc, "keymgmt/key/aes-1/rotate", nil)
	md = describe("alias/aes-1")
	v2 := aws.ToString(md.KeyId)
	if v2 == v1 || md.KeyState != kmstypes.KeyStateEnabled || md.Origin != kmstypes.OriginTypeExternal {
		t.Fatalf("after rotate: alias on %s (was %s), state %s", v2, v1, md.KeyState)
	}
	if st := describe(v1).KeyState; st != kmstypes.KeyStateDisabled {
		t.Fatalf("old KMS key after rotate: %s", st)
	}
	roundTrip("alias/aes-1")

	// Reconciliation: a deletion scheduled behind Keyward's back is cancelled.
	if _, err := aw.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(v2), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + time.Second)
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := e.Server.Jobs().WaitRunSince(jctx, server.JobKeyMgmt, clk.Now()); err != nil {
		t.Fatalf("the reconciliation job did not run: %v", err)
	}
	if st := describe(v2).KeyState; st != kmstypes.KeyStateEnabled {
		t.Fatalf("after reconciliation: %s", st)
	}
	if d := mustRead(t, vc, "keymgmt/kms/aws/key/aes-1"); d["state"] != "repaired" {
		t.Fatalf("distribution after repair: %v", d)
	}

	// Remove: deletion scheduled for every version, alias gone.
	if _, err := vc.Logical().Delete("keymgmt/kms/aws/key/aes-1"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{v1, v2} {
		if st := describe(id).KeyState; st != kmstypes.KeyStatePendingDeletion {
			t.Fatalf("KMS key %s after remove: %s", id, st)
		}
	}
	if _, err := aw.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/aes-1")}); err == nil {
		t.Fatal("alias still there after remove")
	}
}
