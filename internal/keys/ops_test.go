package keys_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"math/big"
	"sync"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/keyward/keyward/internal/keys"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, spec := range allSpecs {
		k := testKey(t, spec)
		pubOnly, err := keys.FromJWK(k.Public())
		if err != nil {
			t.Fatalf("%s: FromJWK(Public()): %v", specName(spec), err)
		}
		for _, alg := range sigAlgs {
			t.Run(specName(spec)+"/"+alg, func(t *testing.T) {
				t.Parallel()
				h := sigHash[alg]
				digest := randBytes(t, h.Size())
				if !sigFits(alg, spec) {
					if _, err := k.Sign(alg, digest); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
						t.Errorf("Sign: got %v, want ErrUnsupportedAlgorithm", err)
					}
					if _, err := k.Verify(alg, digest, make([]byte, 64)); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
						t.Errorf("Verify: got %v, want ErrUnsupportedAlgorithm", err)
					}
					return
				}

				sig, err := k.Sign(alg, digest)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				wantLen := (k.Size() + 7) / 8
				if spec.Kty == keys.KtyEC {
					wantLen *= 2
				}
				if len(sig) != wantLen {
					t.Errorf("signature is %d bytes, want %d", len(sig), wantLen)
				}
				if !stdVerify(t, k.Public(), alg, digest, sig) {
					t.Fatal("independent verification of Sign output failed")
				}
				for name, v := range map[string]*keys.Key{"private": k, "public-only": pubOnly} {
					if ok, err := v.Verify(alg, digest, sig); !ok || err != nil {
						t.Errorf("%s Verify(valid) = %v, %v", name, ok, err)
					}
				}
				if spec.Curve == keys.CurveP256K {
					var s secp256k1.ModNScalar
					s.SetByteSlice(sig[32:])
					if s.IsOverHalfOrder() {
						t.Error("ES256K signature is not low-S")
					}
				}

				// Tampered signatures, digests and lengths are false, not errors.
				bad := map[string][2][]byte{
					"flipped first bit": {digest, flip(sig, 0)},
					"flipped last bit":  {digest, flip(sig, 8*len(sig)-1)},
					"other digest":      {flip(digest, 3), sig},
					"truncated":         {digest, sig[:len(sig)-1]},
					"extended":          {digest, append(bytes.Clone(sig), 0)},
					"empty":             {digest, nil},
					"zero":              {digest, make([]byte, len(sig))},
				}
				for name, c := range bad {
					ok, err := k.Verify(alg, c[0], c[1])
					if ok || err != nil {
						t.Errorf("Verify(%s) = %v, %v; want false, nil", name, ok, err)
					}
					if stdVerify(t, k.Public(), alg, c[0], c[1]) {
						t.Errorf("independent Verify(%s) accepted it: test case is wrong", name)
					}
				}

				// Wrong digest length is a bad request.
				for _, n := range []int{0, h.Size() - 1, h.Size() + 1, 20} {
					if _, err := k.Sign(alg, make([]byte, n)); !errors.Is(err, keys.ErrBadParameter) {
						t.Errorf("Sign(%d-byte digest): got %v, want ErrBadParameter", n, err)
					}
					if _, err := k.Verify(alg, make([]byte, n), sig); !errors.Is(err, keys.ErrBadParameter) {
						t.Errorf("Verify(%d-byte digest): got %v, want ErrBadParameter", n, err)
					}
				}
				if _, err := pubOnly.Sign(alg, digest); !errors.Is(err, keys.ErrNoPrivateKey) {
					t.Errorf("public-only Sign: got %v, want ErrNoPrivateKey", err)
				}
			})
		}
	}
}

func flip(b []byte, bit int) []byte {
	c := bytes.Clone(b)
	c[bit/8] ^= 0x80 >> (bit % 8)
	return c
}

func TestUnknownAlgorithms(t *testing.T) {
	for _, spec := range allSpecs[:4] {
		k := testKey(t, spec)
		for _, alg := range []string{"", "rs256", "HS256", "A256GCM", "EdDSA", "RSA-OAEP-384", "ES256 "} {
			if _, err := k.Sign(alg, make([]byte, 32)); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s Sign(%q): %v", specName(spec), alg, err)
			}
			if _, err := k.Verify(alg, make([]byte, 32), nil); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s Verify(%q): %v", specName(spec), alg, err)
			}
			if _, err := k.Encrypt(alg, []byte("x")); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s Encrypt(%q): %v", specName(spec), alg, err)
			}
			if _, err := k.UnwrapKey(alg, []byte("x")); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s UnwrapKey(%q): %v", specName(spec), alg, err)
			}
		}
	}
	// EC keys do not encrypt; RSA algorithms are not signature algorithms.
	for _, spec := range allSpecs[3:] {
		k := testKey(t, spec)
		for _, alg := range encAlgs {
			if _, err := k.Encrypt(alg, []byte("x")); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s Encrypt(%s): %v", specName(spec), alg, err)
			}
			if _, err := k.WrapKey(alg, []byte("x")); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s WrapKey(%s): %v", specName(spec), alg, err)
			}
			if _, err := k.Decrypt(alg, []byte("x")); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s Decrypt(%s): %v", specName(spec), alg, err)
			}
		}
	}
	if _, err := testKey(t, allSpecs[0]).Sign("RSA-OAEP", make([]byte, 32)); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
		t.Errorf("Sign(RSA-OAEP): %v", err)
	}
}

// encParams: hash (nil for RSA1_5) and padding overhead, from RFC 8017.
var encHash = map[string]func() hash.Hash{"RSA1_5": nil, "RSA-OAEP": sha1.New, "RSA-OAEP-256": sha256.New}

func stdEncrypt(t testing.TB, pub *rsa.PublicKey, alg string, msg []byte) []byte {
	t.Helper()
	var ct []byte
	var err error
	if h := encHash[alg]; h == nil {
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, pub, msg)
	} else {
		ct, err = rsa.EncryptOAEP(h(), rand.Reader, pub, msg, nil)
	}
	if err != nil {
		t.Fatalf("stdlib %s encrypt: %v", alg, err)
	}
	return ct
}

func stdDecrypt(t testing.TB, priv *rsa.PrivateKey, alg string, ct []byte) []byte {
	t.Helper()
	var pt []byte
	var err error
	if h := encHash[alg]; h == nil {
		pt, err = rsa.DecryptPKCS1v15(nil, priv, ct)
	} else {
		pt, err = rsa.DecryptOAEP(h(), nil, priv, ct, nil)
	}
	if err != nil {
		t.Fatalf("stdlib %s decrypt: %v", alg, err)
	}
	return pt
}

// rawRSA computes m^e mod n: a ciphertext whose padding we choose.
func rawRSA(pub *rsa.PublicKey, em []byte) []byte {
	c := new(big.Int).Exp(new(big.Int).SetBytes(em), big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, pub.Size()))
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	for _, spec := range allSpecs[:3] {
		k := testKey(t, spec)
		pub := stdRSAPublic(t, k.Public())
		priv := stdPrivate(t, k).(*rsa.PrivateKey)
		pubOnly, err := keys.FromJWK(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		size := pub.Size()
		for _, alg := range encAlgs {
			t.Run(specName(spec)+"/"+alg, func(t *testing.T) {
				t.Parallel()
				overhead := 11
				if h := encHash[alg]; h != nil {
					overhead = 2*h().Size() + 2
				}
				for _, n := range []int{0, 1, 32, size - overhead} {
					msg := randBytes(t, n)
					// stdlib encrypts from Public(), Key decrypts.
					for _, d := range []func(string, []byte) ([]byte, error){k.Decrypt, k.UnwrapKey} {
						got, err := d(alg, stdEncrypt(t, pub, alg, msg))
						if err != nil || !bytes.Equal(got, msg) {
							t.Fatalf("%d bytes: decrypt of stdlib ciphertext: err %v, equal %v", n, err, bytes.Equal(got, msg))
						}
					}
					// Key (also public-only) encrypts, stdlib decrypts.
					for _, e := range []func(string, []byte) ([]byte, error){k.Encrypt, k.WrapKey, pubOnly.Encrypt, pubOnly.WrapKey} {
						ct, err := e(alg, msg)
						if err != nil {
							t.Fatalf("%d bytes: encrypt: %v", n, err)
						}
						if len(ct) != size {
							t.Fatalf("ciphertext is %d bytes, want %d", len(ct), size)
						}
						if got := stdDecrypt(t, priv, alg, ct); !bytes.Equal(got, msg) {
							t.Fatalf("%d bytes: stdlib decrypt of Key ciphertext differs", n)
						}
					}
				}
				for _, n := range []int{size - overhead + 1, size, 4096} {
					if _, err := k.Encrypt(alg, make([]byte, n)); !errors.Is(err, keys.ErrBadParameter) {
						t.Errorf("Encrypt(%d bytes): got %v, want ErrBadParameter", n, err)
					}
				}
				if _, err := pubOnly.Decrypt(alg, stdEncrypt(t, pub, alg, []byte("x"))); !errors.Is(err, keys.ErrNoPrivateKey) {
					t.Errorf("public-only Decrypt: got %v, want ErrNoPrivateKey", err)
				}

				// Every ciphertext failure is exactly ErrDecryption.
				good := stdEncrypt(t, pub, alg, []byte("secret key bytes"))
				badEM := make([]byte, size)
				badEM[1] = 0x03 // neither 00 02 (PKCS #1 v1.5) nor a leading 00 … (OAEP: em[0] must be 0)
				badEM[0] = 0x01
				copy(badEM[2:], randBytes(t, size-2))
				garbage := map[string][]byte{
					"empty":       nil,
					"one byte":    {1},
					"short":       good[:size-1],
					"long":        append(bytes.Clone(good), 0),
					"all ones":    bytes.Repeat([]byte{0xff}, size), // ≥ n
					"modulus":     pub.N.FillBytes(make([]byte, size)),
					"bad padding": rawRSA(pub, badEM),
					"zero":        make([]byte, size),
				}
				if alg != "RSA1_5" {
					// Random garbage has valid PKCS #1 v1.5 padding with
					// probability ~2^-16, valid OAEP padding never in practice.
					garbage["random"] = randBytes(t, size)
					garbage["tampered"] = flip(good, 8*size-1)
					garbage["tampered high"] = flip(good, 9)
					other := "RSA-OAEP-256"
					if alg == other {
						other = "RSA-OAEP"
					}
					garbage["other OAEP hash"] = stdEncrypt(t, pub, other, []byte("x"))
					ct, err := rsa.EncryptOAEP(encHash[alg](), rand.Reader, pub, []byte("x"), []byte("label"))
					if err != nil {
						t.Fatal(err)
					}
					garbage["with label"] = ct
				}
				for name, ct := range garbage {
					for _, d := range []func(string, []byte) ([]byte, error){k.Decrypt, k.UnwrapKey} {
						pt, err := d(alg, ct)
						if err != keys.ErrDecryption || pt != nil {
							t.Errorf("decrypt(%s) = %d bytes, %v; want exactly ErrDecryption", name, len(pt), err)
						}
					}
				}
			})
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for _, spec := range []keys.Spec{allSpecs[0], allSpecs[3], allSpecs[4]} {
		k := testKey(t, spec)
		alg := map[string]string{"": "PS256", keys.CurveP256: "ES256", keys.CurveP256K: "ES256K"}[spec.Curve]
		for range 4 {
			wg.Go(func() {
				for range 5 {
					d := randBytes(t, 32)
					sig, err := k.Sign(alg, d)
					if err != nil {
						t.Error(err)
						return
					}
					if ok, err := k.Verify(alg, d, sig); !ok || err != nil {
						t.Errorf("%s: concurrent verify = %v, %v", alg, ok, err)
					}
					if spec.Kty == keys.KtyRSA {
						ct, err := k.Encrypt("RSA-OAEP-256", d)
						if err != nil {
							t.Error(err)
							return
						}
						if pt, err := k.Decrypt("RSA-OAEP-256", ct); err != nil || !bytes.Equal(pt, d) {
							t.Errorf("concurrent decrypt: %v", err)
						}
					}
					_ = k.Public()
				}
			})
		}
	}
	wg.Wait()
}
