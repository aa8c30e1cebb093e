package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/securitydomain"
)

// Managed HSM pools (issue 15), driven with the official azkeys and
// armkeyvault modules, and the local RBAC, settings and security domain
// endpoints over the same bearer tokens those clients use. (The azadmin
// module is not served by this workplace's module proxy; its wire shapes
// are AZURE-API.md §5's.)

// hsmCall calls a pool's data plane with a token for the managed HSM
// resource, as azadmin's clients do.
func hsmCall(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential, pool, method, path string, body any) (int, []byte) {
	t.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{hsmResource(e) + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, poolURL(e, pool)+strings.TrimPrefix(path, "/")+sep+"api-version=7.5", rd)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func hsmResource(e *kwtest.Env) string {
	u := strings.TrimSuffix(e.Info.ManagedHSMURL, "/")
	return "https://" + u[strings.Index(u, ".")+1:]
}

func poolURL(e *kwtest.Env, name string) string {
	return strings.Replace(e.Info.ManagedHSMURL, "//dev.", "//"+name+".", 1)
}

func TestManagedHSM(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true}) // pool RSA-HSM/EC-HSM keys in SoftHSM2
	ctx := context.Background()
	if e.Info.ManagedHSMURL == "" || !strings.Contains(e.Info.ManagedHSMURL, "://dev.managedhsm.localhost:") || e.Info.ManagedHSMDNSSuffix != "managedhsm.localhost" {
		t.Fatalf("dev.json managed HSM fields: %q %q", e.Info.ManagedHSMURL, e.Info.ManagedHSMDNSSuffix)
	}
	kc := keysFor(t, e, e.Info.ManagedHSMURL, e.Credential())

	t.Run("oct-HSM every AES algorithm against crypto/aes", func(t *testing.T) {
		for _, bits := range []int{128, 192, 256} {
			raw := make([]byte, bits/8)
			rand.Read(raw)
			name := fmt.Sprintf("aes%d", bits)
			_, err := kc.ImportKey(ctx, name, azkeys.ImportKeyParameters{HSM: to.Ptr(true),
				Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeOct), K: raw}}, nil)
			if err != nil {
				t.Fatalf("import oct %d: %v", bits, err)
			}
			got, err := kc.GetKey(ctx, name, "", nil)
			if err != nil || *got.Key.Kty != azkeys.KeyTypeOctHSM || len(got.Key.K) != 0 {
				t.Fatalf("get oct key: %v %+v", err, got.Key)
			}
			block, _ := aes.NewCipher(raw)
			pt := []byte("sixteen byte msg and then 32 by!")
			// GCM: the service's ciphertext opens with the stdlib, and
			// the stdlib's opens with the service.
			alg := azkeys.EncryptionAlgorithm(fmt.Sprintf("A%dGCM", bits))
			enc, err := kc.Encrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: pt, AdditionalAuthenticatedData: []byte("aad")}, nil)
			if err != nil {
				t.Fatalf("%s encrypt: %v", alg, err)
			}
			g, _ := cipher.NewGCM(block)
			if out, err := g.Open(nil, enc.IV, append(enc.Result, enc.AuthenticationTag...), []byte("aad")); err != nil || !bytes.Equal(out, pt) {
				t.Errorf("%s: stdlib cannot open the service's ciphertext: %v", alg, err)
			}
			dec, err := kc.Decrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: enc.Result, IV: enc.IV,
				AuthenticationTag: enc.AuthenticationTag, AdditionalAuthenticatedData: []byte("aad")}, nil)
			if err != nil || !bytes.Equal(dec.Result, pt) {
				t.Errorf("%s decrypt: %v", alg, err)
			}
			// CBC and CBCPAD with the client's IV.
			iv := make([]byte, 16)
			rand.Read(iv)
			for _, suffix := range []string{"CBC", "CBCPAD"} {
				alg := azkeys.EncryptionAlgorithm(fmt.Sprintf("A%d%s", bits, suffix))
				enc, err := kc.Encrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: pt, IV: iv}, nil)
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				plain := make([]byte, len(enc.Result))
				cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, enc.Result)
				if !bytes.HasPrefix(plain, pt) || (suffix == "CBC") != (len(plain) == len(pt)) {
					t.Errorf("%s: stdlib decryption %x", alg, plain)
				}
				dec, err := kc.Decrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: enc.Result, IV: iv}, nil)
				if err != nil || !bytes.Equal(dec.Result, pt) {
					t.Errorf("%s decrypt: %v", alg, err)
				}
			}
			// Key wrap: RFC 3394 under the stdlib block cipher.
			kw := azkeys.EncryptionAlgorithm(fmt.Sprintf("A%dKW", bits))
			cek := bytes.Repeat([]byte{7}, 32)
			w, err := kc.WrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: &kw, Value: cek}, nil)
			if err != nil || len(w.Result) != 40 {
				t.Fatalf("%s wrap: %v", kw, err)
			}
			u, err := kc.UnwrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: &kw, Value: w.Result}, nil)
			if err != nil || !bytes.Equal(u.Result, cek) {
				t.Errorf("%s unwrap: %v", kw, err)
			}
			if !bytes.Equal(w.Result, rfc3394(block, cek)) {
				t.Errorf("%s differs from RFC 3394 over crypto/aes", kw)
			}
		}
		k, err := kc.CreateKey(ctx, "gen256", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(int32(256))}, nil)
		if err != nil || *k.Key.Kty != azkeys.KeyTypeOctHSM {
			t.Fatalf("create oct-HSM: %v", err)
		}
		if _, err := kc.CreateKey(ctx, "soft", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err == nil {
			t.Error("a software RSA key was created in a managed HSM")
		}
	})

	t.Run("RSA-HSM signs, verifies under the public key", func(t *testing.T) {
		k, err := kc.CreateKey(ctx, "signer", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.Sum256([]byte("hello"))
		s, err := kc.Sign(ctx, "signer", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmPS256), Value: d[:]}, nil)
		if err != nil {
			t.Fatal(err)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(k.Key.N), E: int(new(big.Int).SetBytes(k.Key.E).Int64())}
		if err := rsa.VerifyPSS(pub, crypto.SHA256, d[:], s.Result, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
			t.Errorf("signature does not verify: %v", err)
		}
		if e.Info.HSM == nil || (k.Attributes.HSMPlatform == nil || !strings.HasPrefix(*k.Attributes.HSMPlatform, "pkcs11: ")) {
			t.Errorf("pool RSA-HSM key is not in the dev SoftHSM2 token: hsmPlatform %v", k.Attributes.HSMPlatform)
		}
		if !strings.HasPrefix(string(*k.Key.KID), e.Info.ManagedHSMURL+"keys/signer/") {
			t.Errorf("kid %s", *k.Key.KID)
		}
	})

	t.Run("GetRandomBytes", func(t *testing.T) {
		r, err := kc.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr(int32(33))}, nil)
		if err != nil || len(r.Value) != 33 {
			t.Fatalf("rng: %v %d", err, len(r.Value))
		}
		r2, _ := kc.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr(int32(33))}, nil)
		if bytes.Equal(r.Value, r2.Value) {
			t.Error("two random draws are equal")
		}
	})

	t.Run("local RBAC", func(t *testing.T) {
		st, raw := hsmCall(t, e, e.Credential(), "dev", http.MethodGet, "/providers/Microsoft.Authorization/roleDefinitions?$filter=atScope()", nil)
		if st != http.StatusOK {
			t.Fatalf("list role definitions: %d %s", st, raw)
		}
		for _, id := range []string{authz.RoleHSMAdministrator, authz.RoleHSMCryptoOfficer, authz.RoleHSMCryptoUser, authz.RoleHSMPolicyAdministrator,
			authz.RoleHSMCryptoAuditor, authz.RoleHSMCryptoServiceEncUser, authz.RoleHSMBackup} {
			if !strings.Contains(string(raw), `"name":"`+id+`"`) {
				t.Errorf("built-in role %s missing", id)
			}
		}
		// A custom role (encrypt only), assigned at /keys/{name}.
		custom := newGUID()
		st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/providers/Microsoft.Authorization/roleDefinitions/"+custom, map[string]any{
			"properties": map[string]any{"roleName": "encrypt only", "type": "CustomRole",
				"permissions": []any{map[string]any{"dataActions": []string{string(authz.HSMKeysEncrypt), string(authz.HSMKeysRead)}}}}})
		if st != http.StatusCreated {
			t.Fatalf("create custom role: %d %s", st, raw)
		}
		if _, err := kc.CreateKey(ctx, "shared", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil); err != nil {
			t.Fatal(err)
		}
		enc := newSP(t, e, "hsm-encryptor")
		st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/keys/shared/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), map[string]any{
			"properties": map[string]any{"roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/" + custom, "principalId": enc.ObjectID}})
		if st != http.StatusCreated || !strings.Contains(string(raw), `"scope":"/keys/shared"`) {
			t.Fatalf("assign custom role: %d %s", st, raw)
		}
		ec := keysFor(t, e, e.Info.ManagedHSMURL, enc.Cred)
		if _, err := ec.Encrypt(ctx, "shared", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("x")}, nil); err != nil {
			t.Errorf("custom role at /keys/shared cannot encrypt: %v", err)
		}
		if _, err := ec.Encrypt(ctx, "signer", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("x")}, nil); err == nil {
			t.Error("custom role at /keys/shared encrypted with another key")
		}
		// Crypto User at /keys: encrypt yes, purge no.
		user := newSP(t, e, "hsm-crypto-user")
		st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/keys/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), map[string]any{
			"properties": map[string]any{"roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleHSMCryptoUser, "principalId": user.ObjectID}})
		if st != http.StatusCreated {
			t.Fatalf("assign Crypto User: %d %s", st, raw)
		}
		uc := keysFor(t, e, e.Info.ManagedHSMURL, user.Cred)
		if _, err := uc.Encrypt(ctx, "shared", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: []byte("x")}, nil); err != nil {
			t.Errorf("Crypto User cannot encrypt: %v", err)
		}
		if _, err := uc.DeleteKey(ctx, "shared", nil); err != nil {
			t.Errorf("Crypto User cannot delete: %v", err)
		}
		_, err := uc.PurgeDeletedKey(ctx, "shared", nil)
		if st, code, inner, _ := innerCode(t, err); st != http.StatusForbidden || code != "Forbidden" || inner != "AccessDenied" {
			t.Errorf("Crypto User purge: %d %s %s", st, code, inner)
		}
		// The encryptor (custom role) cannot delete.
		_, err = ec.DeleteKey(ctx, "signer", nil)
		if st, _, _, _ := innerCode(t, err); st != http.StatusForbidden {
			t.Errorf("custom role delete: %d", st)
		}
		// Vault roles give nothing on a pool.
		vaultAdmin := newSP(t, e, "vault-admin-only")
		assign(t, e, e.Credential(), "/subscriptions/"+e.Info.SubscriptionID, "00482a5a-887f-4fb3-b363-3b7fe8e74483", vaultAdmin.ObjectID)
		vc := keysFor(t, e, e.Info.ManagedHSMURL, vaultAdmin.Cred)
		_, err = vc.GetKey(ctx, "signer", "", nil)
		if st, _, inner, msg := innerCode(t, err); st != http.StatusForbidden || inner != "AccessDenied" || !strings.Contains(msg, "keys/read/action") {
			t.Errorf("vault administrator on the pool: %d %s %s", st, inner, msg)
		}
		if _, err := keysFor(t, e, e.Info.VaultURL, vaultAdmin.Cred).CreateKey(ctx, "vk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
			t.Errorf("the same principal on the vault: %v", err)
		}
		// Settings.
		st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodPatch, "/settings/AllowKeyManagementOperationsThroughARM", map[string]string{"value": "true"})
		if st != http.StatusOK || !strings.Contains(string(raw), `"value":"true"`) {
			t.Errorf("settings update: %d %s", st, raw)
		}
		st, raw = hsmCall(t, e, e.Credential(), "dev", http.MethodGet, "/settings", nil)
		var set struct {
			Settings []struct{ Name, Value, Type string }
		}
		json.Unmarshal(raw, &set)
		if st != http.StatusOK || len(set.Settings) != 1 || set.Settings[0] != (struct{ Name, Value, Type string }{"AllowKeyManagementOperationsThroughARM", "true", "boolean"}) {
			t.Errorf("settings list: %d %s", st, raw)
		}
	})

	t.Run("ARM resource, activation by security domain, restore onto a new pool", func(t *testing.T) {
		hc, err := armkeyvault.NewManagedHsmsClient(e.Info.SubscriptionID, e.Credential(), armOptions(e))
		if err != nil {
			t.Fatal(err)
		}
		create := func(name string) *armkeyvault.ManagedHsm {
			poller, err := hc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, name, armkeyvault.ManagedHsm{
				Location: to.Ptr(e.Info.Location), SKU: &armkeyvault.ManagedHsmSKU{Family: to.Ptr(armkeyvault.ManagedHsmSKUFamilyB), Name: to.Ptr(armkeyvault.ManagedHsmSKUNameStandardB1)},
				Properties: &armkeyvault.ManagedHsmProperties{TenantID: to.Ptr(e.Info.TenantID), InitialAdminObjectIDs: []*string{to.Ptr(e.Info.ObjectID)}},
			}, nil)
			if err != nil {
				t.Fatalf("create pool %s: %v", name, err)
			}
			res, err := poller.PollUntilDone(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			return &res.ManagedHsm
		}
		p := create("pool2")
		if *p.Properties.HsmURI != poolURL(e, "pool2") || *p.Properties.SecurityDomainProperties.ActivationStatus != armkeyvault.ActivationStatusNotActivated {
			t.Fatalf("new pool: %s %s", *p.Properties.HsmURI, *p.Properties.SecurityDomainProperties.ActivationStatus)
		}
		// Crypto User for the admin, who may assign it (Administrator).
		st, raw := hsmCall(t, e, e.Credential(), "pool2", http.MethodPut, "/providers/Microsoft.Authorization/roleAssignments/"+newGUID(), map[string]any{
			"properties": map[string]any{"roleDefinitionId": authz.RoleHSMCryptoUser, "principalId": e.Info.ObjectID}})
		if st != http.StatusCreated {
			t.Fatalf("assign on a pool that is not activated: %d %s", st, raw)
		}
		k2 := keysFor(t, e, poolURL(e, "pool2"), e.Credential())
		_, err = k2.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}, nil)
		if st, _, inner, _ := innerCode(t, err); st != http.StatusForbidden || inner != "HSMNotActivated" {
			t.Fatalf("key operation before activation: %d %s", st, inner)
		}
		// Download with three custodians, quorum 2.
		dir := t.TempDir()
		var certs []any
		var privs []*rsa.PrivateKey
		for i := 0; i < 3; i++ {
			k, der := custodian(t)
			privs = append(privs, k)
			certs = append(certs, map[string]any{"kty": "RSA", "x5c": []string{b64std(der)}})
			os.WriteFile(filepath.Join(dir, fmt.Sprint(i, ".pem")), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		}
		st, raw = hsmCall(t, e, e.Credential(), "pool2", http.MethodPost, "/securitydomain/download", map[string]any{"certificates": certs[:2], "required": 2})
		if st != http.StatusBadRequest {
			t.Errorf("download with two certificates: %d %s", st, raw)
		}
		st, raw = hsmCall(t, e, e.Credential(), "pool2", http.MethodPost, "/securitydomain/download", map[string]any{"certificates": certs, "required": 2})
		if st != http.StatusAccepted {
			t.Fatalf("download: %d %s", st, raw)
		}
		var dl struct{ Value string }
		json.Unmarshal(raw, &dl)
		doc, err := securitydomain.Parse([]byte(dl.Value))
		if err != nil || doc.SharedKeys == nil || len(doc.SharedKeys.EncShares) != 3 || doc.SharedKeys.Required != 2 || doc.EncData.KDF != "sp108_kdf" {
			t.Fatalf("security domain document: %v %s", err, dl.Value)
		}
		st, _ = hsmCall(t, e, e.Credential(), "pool2", http.MethodPost, "/securitydomain/download", map[string]any{"certificates": certs, "required": 2})
		if st != http.StatusConflict {
			t.Errorf("second download: %d", st)
		}
		got, err := hc.Get(ctx, e.Info.ResourceGroup, "pool2", nil)
		if err != nil || *got.Properties.SecurityDomainProperties.ActivationStatus != armkeyvault.ActivationStatusActive {
			t.Fatalf("after download: %v", err)
		}
		if _, err := k2.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}, nil); err != nil {
			t.Fatalf("key operation after activation: %v", err)
		}

		// A new pool takes pool2's security domain: the custodians open
		// it locally and re-wrap it to the new pool's transfer key.
		create("pool3")
		st, raw = hsmCall(t, e, e.Credential(), "pool3", http.MethodGet, "/securitydomain/upload", nil)
		if st != http.StatusOK {
			t.Fatalf("transfer key: %d %s", st, raw)
		}
		var tk struct {
			TransferKey struct{ N, E string } `json:"transfer_key"`
		}
		json.Unmarshal(raw, &tk)
		secret, err := securitydomain.Recover(doc, privs[1:])
		if err != nil {
			t.Fatalf("custodians recover: %v", err)
		}
		up, err := securitydomain.ForUpload(secret, &rsa.PublicKey{N: new(big.Int).SetBytes(unb64(t, tk.TransferKey.N)), E: int(new(big.Int).SetBytes(unb64(t, tk.TransferKey.E)).Int64())}, "")
		if err != nil {
			t.Fatal(err)
		}
		upRaw, _ := json.Marshal(up)
		st, raw = hsmCall(t, e, e.Credential(), "pool3", http.MethodPost, "/securitydomain/upload", map[string]string{"value": string(upRaw)})
		if st != http.StatusAccepted {
			t.Fatalf("upload: %d %s", st, raw)
		}
		got, _ = hc.Get(ctx, e.Info.ResourceGroup, "pool3", nil)
		if *got.Properties.SecurityDomainProperties.ActivationStatus != armkeyvault.ActivationStatusActive {
			t.Errorf("pool3 after upload: %s", *got.Properties.SecurityDomainProperties.ActivationStatus)
		}

		// Soft delete, list deleted, purge.
		dp, err := hc.BeginDelete(ctx, e.Info.ResourceGroup, "pool3", nil)
		if err == nil {
			_, err = dp.PollUntilDone(ctx, nil)
		}
		if err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := hc.Get(ctx, e.Info.ResourceGroup, "pool3", nil); err == nil {
			t.Error("deleted pool still found")
		}
		if _, err := hc.GetDeleted(ctx, "pool3", e.Info.Location, nil); err != nil {
			t.Errorf("get deleted: %v", err)
		}
		pp, err := hc.BeginPurgeDeleted(ctx, "pool3", e.Info.Location, nil)
		if err == nil {
			_, err = pp.PollUntilDone(ctx, nil)
		}
		if err != nil {
			t.Fatalf("purge: %v", err)
		}
		if _, err := hc.GetDeleted(ctx, "pool3", e.Info.Location, nil); err == nil {
			t.Error("purged pool still listed")
		}
	})
}

func custodian(t *testing.T) (*rsa.PrivateKey, []byte) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return k, der
}

// rfc3394 wraps p under b (RFC 3394 §2.2.1), written from the RFC for the
// cross-check.
func rfc3394(b cipher.Block, p []byte) []byte {
	n := len(p) / 8
	r := make([][]byte, n)
	for i := range r {
		r[i] = append([]byte(nil), p[8*i:8*i+8]...)
	}
	a := bytes.Repeat([]byte{0xa6}, 8)
	buf := make([]byte, 16)
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf, a)
			copy(buf[8:], r[i])
			b.Encrypt(buf, buf)
			t := uint64(n*j + i + 1)
			for k := 0; k < 8; k++ {
				a[k] = buf[k] ^ byte(t>>(56-8*k))
			}
			copy(r[i], buf[8:])
		}
	}
	return append(a, bytes.Join(r, nil)...)
}

func b64std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
