package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestBYOKOctIntoPool: a managed HSM pool whose keys Keyward protects in
// software (no HSM configured) imports an oct-HSM (AES) and an RSA-HSM
// key from .byok files made by `keyward byok`; the imported AES key
// decrypts what Go's AES-GCM encrypted with the original key bytes.
func TestBYOKOctIntoPool(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	if e.Info.ManagedHSMURL == "" {
		t.Fatal("dev.json has no managed_hsm_url")
	}
	ctx := context.Background()
	c, err := azkeys.NewClient(e.Info.ManagedHSMURL, e.Credential(), &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kek, err := c.CreateKey(ctx, "kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048)),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())})
	kekPEM := filepath.Join(dir, "kek.pem")
	os.WriteFile(kekPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	os.WriteFile(filepath.Join(dir, "aes.key"), aesKey, 0o600)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	os.WriteFile(filepath.Join(dir, "rsa.pem"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600)
	for _, f := range [][]string{{"aes.key", "--oct"}, {"rsa.pem"}} {
		args := append([]string{"byok", "--key", filepath.Join(dir, f[0]), "--kek", kekPEM, "--kid", string(*kek.Key.KID),
			"-o", filepath.Join(dir, f[0]+".byok")}, f[1:]...)
		if out, err := (cli{t: t}).run(args...); err != nil {
			t.Fatal(err, out)
		}
	}
	octFile, _ := os.ReadFile(filepath.Join(dir, "aes.key.byok"))
	rsaFile, _ := os.ReadFile(filepath.Join(dir, "rsa.pem.byok"))
	if _, err := c.ImportKey(ctx, "byok-aes", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeOctHSM), T: octFile}}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.ImportKey(ctx, "byok-rsa", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: rsaFile}}, nil)
	if err != nil || new(big.Int).SetBytes(r.Key.N).Cmp(rk.N) != 0 {
		t.Fatal("RSA-HSM BYOK into the pool:", err)
	}
	blk, _ := aes.NewCipher(aesKey)
	g, _ := cipher.NewGCM(blk)
	iv := make([]byte, 12)
	rand.Read(iv)
	sealed := g.Seal(nil, iv, []byte("sealed outside"), nil)
	gcm := azkeys.EncryptionAlgorithmA256GCM
	d, err := c.Decrypt(ctx, "byok-aes", "", azkeys.KeyOperationParameters{Algorithm: &gcm, Value: sealed[:len(sealed)-16],
		IV: iv, AuthenticationTag: sealed[len(sealed)-16:]}, nil)
	if err != nil || string(d.Result) != "sealed outside" {
		t.Fatalf("the imported AES key does not decrypt: %v", err)
	}
	// An AES blob announced as RSA-HSM fails like any bad blob.
	_, err = c.ImportKey(ctx, "neg", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: octFile}}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		t.Fatalf("oct blob as RSA-HSM: %v", err)
	}
}
