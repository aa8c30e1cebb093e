package hsm

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"testing"
)

// refDecode is RFC 8017 §7.1.2 step 3 written plainly (not constant
// time): the oracle of the fuzz target.
func refDecode(k int, em []byte) ([]byte, bool) {
	h := sha256.New()
	hLen := h.Size()
	if len(em) != k || k < 2*hLen+2 || em[0] != 0 {
		return nil, false
	}
	seed := append([]byte(nil), em[1:hLen+1]...)
	db := append([]byte(nil), em[hLen+1:]...)
	mgf1XOR(seed, h, db)
	mgf1XOR(db, h, seed)
	lHash := sha256.Sum256(nil)
	if !bytes.Equal(db[:hLen], lHash[:]) {
		return nil, false
	}
	for i := hLen; i < len(db); i++ {
		switch db[i] {
		case 0:
			continue
		case 1:
			return db[i+1:], true
		default:
			return nil, false
		}
	}
	return nil, false
}

// TestOAEPDecodeMatchesGo: raw RSA decryption of Go's RSA-OAEP-256
// ciphertexts, decoded here, gives the plaintext back.
func TestOAEPDecodeMatchesGo(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, n := range []int{0, 1, 32, 190} {
		msg := make([]byte, n)
		rand.Read(msg)
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, &key.PublicKey, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := new(big.Int).Exp(new(big.Int).SetBytes(ct), key.D, key.N)
		em := m.FillBytes(make([]byte, 256))
		got, err := oaepDecode(sha256.New(), 256, em)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("len %d: %v", n, err)
		}
	}
}

func FuzzOAEPDecode(f *testing.F) {
	f.Add(make([]byte, 256))
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, em []byte) {
		k := len(em)
		want, ok := refDecode(k, append([]byte(nil), em...))
		got, err := oaepDecode(sha256.New(), k, append([]byte(nil), em...))
		if ok != (err == nil) || !bytes.Equal(got, want) {
			t.Fatalf("decode(%x) = %x, %v; reference %x, %v", em, got, err, want, ok)
		}
	})
}
