//go:build cgo

package hsm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/keys"
)

func rsaPub(t *testing.T, j keys.JWK) *rsa.PublicKey {
	t.Helper()
	return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(new(big.Int).SetBytes(j.E).Int64())}
}

func TestRSAKeyInToken(t *testing.T) {
	h, _ := hsmtest.Open(t)
	ctx := context.Background()
	handle, pub, err := h.Generate(ctx, keys.Spec{Kty: keys.KtyRSA, Size: 2048, ID: "0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(handle), `"d"`) || strings.Contains(string(handle), `"D"`) || !strings.Contains(string(handle), "0123456789abcdef0123456789abcdef") {
		t.Fatalf("handle holds more than identity and public key: %s", handle)
	}
	attrs, err := h.ObjectAttributes(ctx, "0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if !attrs["CKA_SENSITIVE"] || attrs["CKA_EXTRACTABLE"] || !attrs["CKA_TOKEN"] || !attrs["CKA_LOCAL"] {
		t.Fatalf("private object attributes %v", attrs)
	}
	op, err := h.Load(ctx, handle)
	if err != nil {
		t.Fatal(err)
	}
	pk := rsaPub(t, pub)
	d := sha256.Sum256([]byte("hello"))
	sig, err := op.Sign(ctx, keys.AlgRS256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pk, crypto.SHA256, d[:], sig); err != nil {
		t.Fatal("RS256:", err)
	}
	d5 := sha512.Sum512([]byte("hello"))
	sig, err = op.Sign(ctx, keys.AlgPS512, d5[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPSS(pk, crypto.SHA512, d5[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}); err != nil {
		t.Fatal("PS512:", err)
	}
	if _, err := op.Sign(ctx, keys.AlgES256, d[:]); err == nil {
		t.Fatal("ES256 with an RSA key accepted")
	}
	if _, err := op.Sign(ctx, keys.AlgRS256, d[:20]); err == nil {
		t.Fatal("short digest accepted")
	}
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, alg := range []string{keys.AlgRSA15, keys.AlgRSAOAEP, keys.AlgRSAOAEP256} {
		ct, err := op.Encrypt(ctx, alg, secret)
		if err != nil {
			t.Fatal(alg, err)
		}
		pt, err := op.Decrypt(ctx, alg, ct)
		if err != nil || string(pt) != string(secret) {
			t.Fatalf("%s: %q %v", alg, pt, err)
		}
		ct[10] ^= 1
		if _, err := op.Decrypt(ctx, alg, ct); err != keys.ErrDecryption && alg != keys.AlgRSA15 {
			t.Fatalf("%s tampered: %v", alg, err)
		}
	}
	// Go's crypto made this ciphertext: the token (or the raw route) opens it.
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pk, secret, nil)
	if pt, err := op.UnwrapKey(ctx, keys.AlgRSAOAEP256, ct); err != nil || string(pt) != string(secret) {
		t.Fatalf("OAEP-256 from Go: %v", err)
	}
	t.Logf("token OAEP-SHA256: %v (false: raw RSA + OAEP decoding here)", h.SupportsOAEP256())
	if err := h.Destroy(ctx, handle); err != nil {
		t.Fatal(err)
	}
	op2, _ := h.Load(ctx, handle)
	if _, err := op2.Sign(ctx, keys.AlgRS256, d[:]); err == nil {
		t.Fatal("destroyed key still signs")
	}
}

func TestECKeysInToken(t *testing.T) {
	h, _ := hsmtest.Open(t)
	ctx := context.Background()
	for _, c := range []struct {
		crv, alg string
		hash     crypto.Hash
	}{{keys.CurveP256, keys.AlgES256, crypto.SHA256}, {keys.CurveP384, keys.AlgES384, crypto.SHA384},
		{keys.CurveP521, keys.AlgES512, crypto.SHA512}, {keys.CurveP256K, keys.AlgES256K, crypto.SHA256}} {
		handle, pub, err := h.Generate(ctx, keys.Spec{Kty: keys.KtyEC, Curve: c.crv, ID: "ec-" + c.crv})
		if err != nil {
			t.Fatal(c.crv, err)
		}
		op, err := h.Load(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		hh := c.hash.New()
		hh.Write([]byte("msg"))
		d := hh.Sum(nil)
		sig, err := op.Sign(ctx, c.alg, d)
		if err != nil {
			t.Fatal(c.alg, err)
		}
		// Verified by the software key built from the public JWK, and for
		// NIST curves by crypto/ecdsa directly.
		sw, _ := keys.FromJWK(pub)
		if ok, err := sw.Verify(c.alg, d, sig); !ok || err != nil {
			t.Fatalf("%s: %v %v", c.alg, ok, err)
		}
		if curve := map[string]elliptic.Curve{keys.CurveP256: elliptic.P256(), keys.CurveP384: elliptic.P384(), keys.CurveP521: elliptic.P521()}[c.crv]; curve != nil {
			n := len(sig) / 2
			epk := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(pub.X), Y: new(big.Int).SetBytes(pub.Y)}
			if !ecdsa.Verify(epk, d, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
				t.Fatalf("%s: crypto/ecdsa rejects the token's signature", c.alg)
			}
		}
	}
}

func TestAESKeyInToken(t *testing.T) {
	h, _ := hsmtest.Open(t)
	ctx := context.Background()
	for _, size := range []int{128, 192, 256} {
		id := "aes-" + string(rune('0'+size/64))
		handle, pub, err := h.Generate(ctx, keys.Spec{Kty: hsm.KtyOct, Size: size, ID: id})
		if err != nil {
			t.Fatal(size, err)
		}
		if pub.Kty != "oct" || len(pub.K) != 0 {
			t.Fatalf("AES public JWK %+v", pub)
		}
		attrs, err := h.ObjectAttributes(ctx, id)
		if err != nil || !attrs["CKA_SENSITIVE"] || attrs["CKA_EXTRACTABLE"] {
			t.Fatalf("AES-%d attributes %v %v", size, attrs, err)
		}
		if _, err := h.Load(ctx, handle); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := h.Generate(ctx, keys.Spec{Kty: hsm.KtyOct, Size: 100, ID: "bad"}); err == nil {
		t.Fatal("AES-100 accepted")
	}
}
