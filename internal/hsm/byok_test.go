//go:build cgo

package hsm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"hash"
	"math/big"
	"testing"

	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/keys"
)

func transferBlob(t *testing.T, kek keys.JWK, h func() hash.Hash, target []byte) []byte {
	t.Helper()
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	ek, err := rsa.EncryptOAEP(h(), rand.Reader, rsaPub(t, kek), aesKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	wk, err := hsm.KWPWrap(aesKey, target)
	if err != nil {
		t.Fatal(err)
	}
	return append(ek, wk...)
}

func TestImportTransferBlob(t *testing.T) {
	h, _ := hsmtest.Open(t)
	ctx := context.Background()
	kekHandle, kek, err := h.Generate(ctx, keys.Spec{Kty: keys.KtyRSA, Size: 3072, ID: "kek", Usage: keys.UsageOf([]string{"import"})})
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	digest := make([]byte, 48)
	rand.Read(digest)
	for i, c := range []struct {
		hash   crypto.Hash
		newH   func() hash.Hash
		kty    string
		der    []byte
		verify func(sig []byte) bool
		alg    string
	}{
		{crypto.SHA1, sha1.New, keys.KtyRSA, rsaDER, func(sig []byte) bool {
			return rsa.VerifyPKCS1v15(&rsaKey.PublicKey, crypto.SHA256, digest[:32], sig) == nil
		}, keys.AlgRS256},
		{crypto.SHA256, sha256.New, keys.KtyEC, ecDER, func(sig []byte) bool {
			return ecdsa.Verify(&ecKey.PublicKey, digest, new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:]))
		}, keys.AlgES384},
	} {
		id := "imported-" + string(rune('a'+i))
		blob := transferBlob(t, kek, c.newH, c.der)
		handle, pub, err := h.ImportTransfer(ctx, kekHandle, blob, c.hash, keys.Spec{Kty: c.kty, ID: id})
		if err != nil {
			t.Fatal(c.kty, err)
		}
		op, err := h.Load(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		d := digest
		if c.alg == keys.AlgRS256 {
			d = digest[:32]
			if rsaPub(t, pub).N.Cmp(rsaKey.N) != 0 {
				t.Fatal("imported RSA key has another modulus")
			}
		} else if new(big.Int).SetBytes(pub.X).Cmp(ecKey.X) != 0 {
			t.Fatal("recovered EC public key differs")
		}
		sig, err := op.Sign(ctx, c.alg, d)
		if err != nil || !c.verify(sig) {
			t.Fatalf("%s: signature of the imported key does not verify under the original: %v", c.kty, err)
		}
		attrs, _ := h.ObjectAttributes(ctx, id)
		if !attrs["CKA_SENSITIVE"] || attrs["CKA_EXTRACTABLE"] || attrs["CKA_LOCAL"] {
			t.Fatalf("imported object attributes %v", attrs)
		}
		// A flipped byte in the wrapped key: one error, nothing left behind.
		blob[len(blob)-3] ^= 1
		if _, _, err := h.ImportTransfer(ctx, kekHandle, blob, c.hash, keys.Spec{Kty: c.kty, ID: id + "-bad"}); !errors.Is(err, hsm.ErrTransferBlob) {
			t.Fatalf("tampered blob: %v", err)
		}
		if _, err := h.ObjectAttributes(ctx, id+"-bad"); err == nil {
			t.Fatal("a refused import left an object in the token")
		}
	}
	// oct target.
	aes := make([]byte, 32)
	rand.Read(aes)
	if _, pub, err := h.ImportTransfer(ctx, kekHandle, transferBlob(t, kek, sha1.New, aes), crypto.SHA1, keys.Spec{Kty: hsm.KtyOct, ID: "aes"}); err != nil || pub.Kty != "oct" {
		t.Fatal(err)
	}
	// Truncated.
	if _, _, err := h.ImportTransfer(ctx, kekHandle, make([]byte, 100), crypto.SHA1, keys.Spec{Kty: keys.KtyRSA}); !errors.Is(err, hsm.ErrTransferBlob) {
		t.Fatal(err)
	}
}

func TestExportKey(t *testing.T) {
	h, _ := hsmtest.Open(t)
	ctx := context.Background()
	for _, spec := range []keys.Spec{{Kty: keys.KtyRSA, Size: 2048}, {Kty: keys.KtyEC, Curve: keys.CurveP521}, {Kty: hsm.KtyOct, Size: 192}} {
		spec.Exportable = true
		handle, pub, err := h.Generate(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		der, err := h.ExportKey(ctx, handle)
		if err != nil {
			t.Fatal(spec.Kty, err)
		}
		switch spec.Kty {
		case hsm.KtyOct:
			if len(der) != 24 {
				t.Fatalf("AES-192 exported %d bytes", len(der))
			}
		default:
			k, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatal(spec.Kty, err)
			}
			switch k := k.(type) {
			case *rsa.PrivateKey:
				if k.N.Cmp(rsaPub(t, pub).N) != 0 {
					t.Fatal("exported RSA key differs")
				}
			case *ecdsa.PrivateKey:
				if k.X.Cmp(new(big.Int).SetBytes(pub.X)) != 0 {
					t.Fatal("exported EC key differs")
				}
			}
		}
		attrs, _ := h.ObjectAttributes(ctx, mustID(t, handle))
		if !attrs["CKA_EXTRACTABLE"] || !attrs["CKA_SENSITIVE"] {
			t.Fatalf("exportable key attributes %v", attrs)
		}
	}
	handle, _, _ := h.Generate(ctx, keys.Spec{Kty: keys.KtyEC})
	if _, err := h.ExportKey(ctx, handle); !errors.Is(err, hsm.ErrNotExtractable) {
		t.Fatalf("non-exportable key exported: %v", err)
	}
}

func mustID(t *testing.T, handle []byte) string {
	id, _, err := hsm.ParseHandle(handle)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
