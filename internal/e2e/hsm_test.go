//go:build cgo

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestHSMKeysPremiumDevVault drives RSA-HSM and EC-HSM keys of a premium
// dev vault backed by a real SoftHSM2 token with the official azkeys SDK,
// checks every result with Go's crypto, and reads the private objects'
// attributes through PKCS#11.
func TestHSMKeysPremiumDevVault(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	if e.Info.HSM == nil {
		t.Fatal("dev.json has no hsm section although SoftHSM2 is installed")
	}
	c := keysClient(t, e)
	ctx := context.Background()
	tok, err := hsm.Open(hsm.Config{Module: e.Info.HSM.Module, TokenLabel: e.Info.HSM.TokenLabel, PIN: e.Info.HSM.UserPIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	checkToken := func(kid *azkeys.ID) {
		t.Helper()
		attrs, err := tok.ObjectAttributes(ctx, kid.Version())
		if err != nil {
			t.Fatalf("%s: no private object with CKA_ID = version: %v", kid.Name(), err)
		}
		if !attrs["CKA_SENSITIVE"] || attrs["CKA_EXTRACTABLE"] || !attrs["CKA_TOKEN"] || !attrs["CKA_PRIVATE"] {
			t.Fatalf("%s: private object attributes %v", kid.Name(), attrs)
		}
	}
	msg := []byte("signed in the token")

	for _, size := range []int32{2048, 3072, 4096} {
		name := "rsa-hsm-" + string(rune('0'+size/1024))
		r, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(size)}, nil)
		if err != nil {
			t.Fatal(size, err)
		}
		if *r.Key.Kty != azkeys.KeyTypeRSAHSM || r.Attributes.HSMPlatform == nil || !strings.Contains(*r.Attributes.HSMPlatform, "pkcs11") {
			t.Fatalf("RSA-HSM %d: kty %v platform %v", size, *r.Key.Kty, r.Attributes.HSMPlatform)
		}
		if len(r.Key.D) != 0 || rsaPublic(t, r.Key).N.BitLen() != int(size) {
			t.Fatalf("RSA-HSM %d: bad public key", size)
		}
		checkToken(r.Key.KID)
		for _, alg := range []azkeys.SignatureAlgorithm{"RS256", "PS256", "RS512", "PS384"} {
			_, digest := digestOf(alg, msg)
			s, err := c.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(alg), Value: digest}, nil)
			if err != nil {
				t.Fatal(alg, err)
			}
			if !verifyLocally(t, r.Key, alg, digest, s.Result) {
				t.Fatalf("RSA-HSM %d %s: Go rejects the signature", size, alg)
			}
			v, err := c.Verify(ctx, name, "", azkeys.VerifyParameters{Algorithm: to.Ptr(alg), Digest: digest, Signature: s.Result}, nil)
			if err != nil || !*v.Value {
				t.Fatalf("%s verify: %v", alg, err)
			}
		}
		pub := rsaPublic(t, r.Key)
		secret := make([]byte, 32)
		rand.Read(secret)
		// Go encrypts, the token decrypts; the service encrypts, Go... can't
		// decrypt (no private key): round trips through the service.
		for alg, ct := range map[azkeys.EncryptionAlgorithm][]byte{
			azkeys.EncryptionAlgorithmRSAOAEP256: must(rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil)),
			azkeys.EncryptionAlgorithmRSAOAEP:    must(rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, nil)),
			azkeys.EncryptionAlgorithmRSA15:      must(rsa.EncryptPKCS1v15(rand.Reader, pub, secret)),
		} {
			d, err := c.Decrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: ct}, nil)
			if err != nil || !bytes.Equal(d.Result, secret) {
				t.Fatalf("RSA-HSM %d decrypt %s: %v", size, alg, err)
			}
			u, err := c.UnwrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: ct}, nil)
			if err != nil || !bytes.Equal(u.Result, secret) {
				t.Fatalf("RSA-HSM %d unwrap %s: %v", size, alg, err)
			}
			w, err := c.WrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: secret}, nil)
			if err != nil {
				t.Fatal(err)
			}
			u, err = c.UnwrapKey(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: w.Result}, nil)
			if err != nil || !bytes.Equal(u.Result, secret) {
				t.Fatalf("RSA-HSM %d wrap/unwrap %s: %v", size, alg, err)
			}
		}
		bad := must(rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil))
		bad[5] ^= 1
		if _, err := c.Decrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: bad}, nil); status(err) != 400 {
			t.Fatalf("tampered ciphertext: %v", err)
		}
	}

	for _, cc := range []struct {
		crv azkeys.CurveName
		alg azkeys.SignatureAlgorithm
	}{{azkeys.CurveNameP256, "ES256"}, {azkeys.CurveNameP384, "ES384"}, {azkeys.CurveNameP521, "ES512"}, {azkeys.CurveNameP256K, "ES256K"}} {
		name := "ec-hsm-" + strings.ToLower(strings.ReplaceAll(string(cc.crv), "-", ""))
		r, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(cc.crv)}, nil)
		if err != nil {
			t.Fatal(cc.crv, err)
		}
		if *r.Key.Kty != azkeys.KeyTypeECHSM || *r.Key.Crv != cc.crv {
			t.Fatalf("EC-HSM: %v %v", *r.Key.Kty, *r.Key.Crv)
		}
		checkToken(r.Key.KID)
		_, digest := digestOf(cc.alg, msg)
		s, err := c.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(cc.alg), Value: digest}, nil)
		if err != nil {
			t.Fatal(cc.alg, err)
		}
		if !verifyLocally(t, r.Key, cc.alg, digest, s.Result) {
			t.Fatalf("%s: Go rejects the token's signature", cc.alg)
		}
		if _, err := c.Encrypt(ctx, name, "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: msg}, nil); status(err) != 403 {
			t.Fatalf("encrypt with EC-HSM: %v", err)
		}
	}

	// Import a private JWK as an HSM key: its private parts go into the
	// token, and no file under the data directory holds them.
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := priv.D.FillBytes(make([]byte, 32))
	imp, err := c.ImportKey(ctx, "imported-hsm", azkeys.ImportKeyParameters{HSM: to.Ptr(true), Key: &azkeys.JSONWebKey{
		Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP256), D: d,
		X: priv.X.FillBytes(make([]byte, 32)), Y: priv.Y.FillBytes(make([]byte, 32))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *imp.Key.Kty != azkeys.KeyTypeECHSM {
		t.Fatalf("imported kty %v", *imp.Key.Kty)
	}
	checkToken(imp.Key.KID)
	_, digest := digestOf("ES256", msg)
	s, err := c.Sign(ctx, "imported-hsm", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest}, nil)
	if err != nil || !verifyLocally(t, imp.Key, "ES256", digest, s.Result) {
		t.Fatalf("imported HSM key signature: %v", err)
	}
	needles := [][]byte{d, []byte(base64.RawURLEncoding.EncodeToString(d)), []byte(base64.StdEncoding.EncodeToString(d))}
	err = filepath.WalkDir(e.DataDir, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				return errors.New(path + " holds the private key")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Purge removes the token objects.
	if _, err := c.DeleteKey(ctx, "imported-hsm", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "imported-hsm", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ObjectAttributes(ctx, imp.Key.KID.Version()); err == nil {
		t.Fatal("the purged key's private object is still in the token")
	}
}

// TestHSMKeyBackupRestore: an HSM key's backup blob holds it wrapped by
// the HSM's backup key; after a purge (token objects destroyed) the
// restore puts it back into the token, non-extractable, same key.
func TestHSMKeyBackupRestore(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	c := keysClient(t, e)
	ctx := context.Background()
	tok, err := hsm.Open(hsm.Config{Module: e.Info.HSM.Module, TokenLabel: e.Info.HSM.TokenLabel, PIN: e.Info.HSM.UserPIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	r, err := c.CreateKey(ctx, "bk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM), Curve: to.Ptr(azkeys.CurveNameP384)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.BackupKey(ctx, "bk", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKey(ctx, "bk", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "bk", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := tok.ObjectAttributes(ctx, r.Key.KID.Version()); err == nil {
		t.Fatal("purged key still in the token")
	}
	rr, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: b.Value}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *rr.Key.Kty != azkeys.KeyTypeECHSM || rr.Key.KID.Version() != r.Key.KID.Version() {
		t.Fatalf("restored %v %v", *rr.Key.Kty, rr.Key.KID)
	}
	attrs, err := tok.ObjectAttributes(ctx, r.Key.KID.Version())
	if err != nil || !attrs["CKA_SENSITIVE"] || attrs["CKA_EXTRACTABLE"] {
		t.Fatalf("restored object %v %v", attrs, err)
	}
	_, digest := digestOf("ES384", []byte("after restore"))
	s, err := c.Sign(ctx, "bk", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Value: digest}, nil)
	if err != nil || !verifyLocally(t, r.Key, "ES384", digest, s.Result) {
		t.Fatalf("restored key's signature does not verify under the original public key: %v", err)
	}
}

// TestHSMKeysRefused: a standard vault refuses -HSM key types, and so does
// a premium vault of a Keyward without an HSM; nothing is created.
func TestHSMKeysRefused(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()
	_, err := c.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "BadParameter" || !strings.Contains(err.Error(), "premium") {
		t.Fatalf("RSA-HSM in a standard vault: %v", err)
	}
	if _, err := c.GetKey(ctx, "k", "", nil); status(err) != 404 {
		t.Fatalf("refused key exists: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// status is the HTTP status of an SDK error (0 when err is nil or not a
// service response).
func status(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}
