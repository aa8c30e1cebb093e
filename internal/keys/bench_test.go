package keys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/keyward/keyward/internal/keys"
)

// Each benchmark runs the raw primitive ("stdlib", or decred for ES256K) and
// the same operation through *Key, so this layer's overhead is visible.

func BenchmarkRS256Sign(b *testing.B) {
	k := testKey(b, allSpecs[0])
	priv := stdPrivate(b, k).(*rsa.PrivateKey)
	d := sha256.Sum256([]byte("bench"))
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if _, err := rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Key", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Sign("RS256", d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRSAOAEP256Decrypt(b *testing.B) {
	k := testKey(b, allSpecs[0])
	priv := stdPrivate(b, k).(*rsa.PrivateKey)
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, make([]byte, 32), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if _, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ct, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Key", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.UnwrapKey("RSA-OAEP-256", ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRSAOAEP256Encrypt(b *testing.B) {
	k := testKey(b, allSpecs[0])
	pub := stdRSAPublic(b, k.Public())
	dek := make([]byte, 32)
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if _, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Key", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.WrapKey("RSA-OAEP-256", dek); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkES256Sign(b *testing.B) {
	k := testKey(b, allSpecs[3])
	priv := stdPrivate(b, k).(*ecdsa.PrivateKey)
	d := sha256.Sum256([]byte("bench"))
	b.Run("stdlib", func(b *testing.B) {
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, priv, d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Key", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Sign("ES256", d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkES256KSign(b *testing.B) {
	k := testKey(b, allSpecs[4])
	priv := stdPrivate(b, k).(*secp256k1.PrivateKey)
	d := sha256.Sum256([]byte("bench"))
	b.Run("decred", func(b *testing.B) {
		for b.Loop() {
			_ = k1ecdsa.Sign(priv, d[:])
		}
	})
	b.Run("Key", func(b *testing.B) {
		for b.Loop() {
			if _, err := k.Sign("ES256K", d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParsePrivate is the cost of Software.Load per handle: the vault
// layer should cache loaded keys rather than parse one per request.
func BenchmarkParsePrivate(b *testing.B) {
	for _, spec := range []keys.Spec{allSpecs[0], allSpecs[3]} {
		der := mustMarshal(b, testKey(b, spec))
		b.Run(specName(spec), func(b *testing.B) {
			for b.Loop() {
				if _, err := keys.ParsePrivate(der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
