package keys_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func aesKey(t testing.TB, k []byte) *keys.AESKey {
	t.Helper()
	key, err := keys.NewAES(k)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Known-answer vectors of RFC 3394 §4 and RFC 5649 §6.
func TestAESKeyWrapVectors(t *testing.T) {
	for _, c := range []struct{ alg, kek, key, wrapped string }{
		{"A128KW", "000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"A192KW", "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF", "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"A256KW", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF", "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"A256KW", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F", "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
		{"CKM_AES_KEY_WRAP", "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607", "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"CKM_AES_KEY_WRAP_PAD", "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "c37b7e6492584340 bed1220780894115 5068f738", "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{"CKM_AES_KEY_WRAP_PAD", "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	} {
		k := aesKey(t, unhex(t, c.kek))
		got, err := k.WrapKey(c.alg, unhex(t, c.key))
		if err != nil || !bytes.Equal(got, unhex(t, c.wrapped)) {
			t.Errorf("%s wrap %s = %x, %v; want %s", c.alg, c.key, got, err, c.wrapped)
		}
		back, err := k.UnwrapKey(c.alg, unhex(t, c.wrapped))
		if err != nil || !bytes.Equal(back, unhex(t, c.key)) {
			t.Errorf("%s unwrap = %x, %v", c.alg, back, err)
		}
		bad := unhex(t, c.wrapped)
		bad[len(bad)-1] ^= 1
		if _, err := k.UnwrapKey(c.alg, bad); !errors.Is(err, keys.ErrDecryption) {
			t.Errorf("%s unwrap of a modified blob: %v, want ErrDecryption", c.alg, err)
		}
	}
}

// TestAESModesAgainstStdlib: every GCM and CBC algorithm, each key size,
// cross-checked with crypto/aes and crypto/cipher used directly.
func TestAESModesAgainstStdlib(t *testing.T) {
	for _, bits := range []int{128, 192, 256} {
		raw := make([]byte, bits/8)
		rand.Read(raw)
		k := aesKey(t, raw)
		block, _ := aes.NewCipher(raw)
		gcm, _ := cipher.NewGCM(block)
		pt := []byte("attack at dawn, 32 bytes long!!!")
		aad := []byte("header")

		alg := fmt.Sprintf("A%dGCM", bits)
		ct, iv, tag, err := k.EncryptAES(alg, pt, nil, aad)
		if err != nil || len(iv) != 12 || len(tag) != 16 {
			t.Fatalf("%s: %v iv %d tag %d", alg, err, len(iv), len(tag))
		}
		if got, err := gcm.Open(nil, iv, append(bytes.Clone(ct), tag...), aad); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s: stdlib cannot open our ciphertext: %v", alg, err)
		}
		iv2 := make([]byte, 12)
		rand.Read(iv2)
		sealed := gcm.Seal(nil, iv2, pt, aad)
		if got, err := k.DecryptAES(alg, sealed[:len(pt)], iv2, aad, sealed[len(pt):]); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s: cannot open the stdlib's ciphertext: %v", alg, err)
		}
		if _, err := k.DecryptAES(alg, ct, iv, []byte("other"), tag); !errors.Is(err, keys.ErrDecryption) {
			t.Errorf("%s with other aad: %v", alg, err)
		}
		if _, _, _, err := k.EncryptAES(alg, pt, iv, nil); !errors.Is(err, keys.ErrBadParameter) {
			t.Errorf("%s with a caller's iv: %v, want ErrBadParameter", alg, err)
		}

		civ := make([]byte, 16)
		rand.Read(civ)
		alg = fmt.Sprintf("A%dCBC", bits)
		ct, iv, _, err = k.EncryptAES(alg, pt, civ, nil)
		want := make([]byte, len(pt))
		cipher.NewCBCEncrypter(block, civ).CryptBlocks(want, pt)
		if err != nil || !bytes.Equal(ct, want) || !bytes.Equal(iv, civ) {
			t.Errorf("%s = %x, %v; stdlib %x", alg, ct, err, want)
		}
		if got, err := k.DecryptAES(alg, want, civ, nil, nil); err != nil || !bytes.Equal(got, pt) {
			t.Errorf("%s decrypt: %v", alg, err)
		}
		if _, _, _, err := k.EncryptAES(alg, pt[:5], civ, nil); !errors.Is(err, keys.ErrBadParameter) {
			t.Errorf("%s of 5 bytes: %v, want ErrBadParameter", alg, err)
		}

		alg = fmt.Sprintf("A%dCBCPAD", bits)
		for _, n := range []int{0, 1, 15, 16, 17, 32} {
			msg := pt[:n]
			ct, iv, _, err := k.EncryptAES(alg, msg, nil, nil)
			if err != nil || len(iv) != 16 || len(ct) != (n/16+1)*16 {
				t.Fatalf("%s %d bytes: %v len %d", alg, n, err, len(ct))
			}
			plain := make([]byte, len(ct))
			cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, ct)
			p := 16 - n%16
			if !bytes.Equal(plain, append(bytes.Clone(msg), bytes.Repeat([]byte{byte(p)}, p)...)) {
				t.Errorf("%s %d bytes: not PKCS#7 under the stdlib: %x", alg, n, plain)
			}
			if got, err := k.DecryptAES(alg, ct, iv, nil, nil); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("%s %d bytes decrypt: %x, %v", alg, n, got, err)
			}
		}
		// Bad padding is one error.
		junk := make([]byte, 16)
		cipher.NewCBCEncrypter(block, civ).CryptBlocks(junk, bytes.Repeat([]byte{0x11}, 16))
		if _, err := k.DecryptAES(alg, junk, civ, nil, nil); !errors.Is(err, keys.ErrDecryption) {
			t.Errorf("%s bad padding: %v, want ErrDecryption", alg, err)
		}

		// The algorithm's size must be the key's.
		other := map[int]string{128: "A256GCM", 192: "A128CBC", 256: "A192KW"}[bits]
		if _, _, _, err := k.EncryptAES(other, pt, nil, nil); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
			t.Errorf("%d-bit key with %s: %v, want ErrUnsupportedAlgorithm", bits, other, err)
		}
		if _, err := k.WrapKey("RSA-OAEP", raw); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
			t.Errorf("RSA-OAEP on AES key: %v", err)
		}
	}
}

func TestAESHMAC(t *testing.T) {
	raw := make([]byte, 32)
	rand.Read(raw)
	k := aesKey(t, raw)
	for alg, h := range map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New} {
		m := hmac.New(h, raw)
		m.Write([]byte("data"))
		sig, err := k.Sign(alg, []byte("data"))
		if err != nil || !bytes.Equal(sig, m.Sum(nil)) {
			t.Errorf("%s: %v", alg, err)
		}
		if ok, err := k.Verify(alg, []byte("data"), sig); !ok || err != nil {
			t.Errorf("%s verify: %v %v", alg, ok, err)
		}
		sig[0] ^= 1
		if ok, _ := k.Verify(alg, []byte("data"), sig); ok {
			t.Errorf("%s: modified MAC verifies", alg)
		}
	}
}

func TestSoftwareProtectorAES(t *testing.T) {
	ctx := context.Background()
	var p keys.Software
	for _, bits := range []int{128, 192, 256} {
		h, pub, err := p.Generate(ctx, keys.Spec{Kty: keys.KtyOct, Size: bits})
		if err != nil || pub.Kty != "oct" || len(pub.K) != 0 {
			t.Fatalf("Generate oct %d: %v %+v", bits, err, pub.Kty)
		}
		op, err := p.Load(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprintf("%v %+v %#v", op, op, op); strings.Contains(s, hex.EncodeToString(h[7:])) || !strings.Contains(s, fmt.Sprint(bits)) {
			t.Errorf("operator prints %q", s)
		}
		aop := op.(keys.AESOperator)
		alg := fmt.Sprintf("A%dGCM", bits)
		ct, iv, tag, err := aop.EncryptAES(ctx, alg, []byte("x"), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := aop.DecryptAES(ctx, alg, ct, iv, nil, tag); err != nil || string(pt) != "x" {
			t.Errorf("%s round trip: %q %v", alg, pt, err)
		}
		if _, err := op.Encrypt(ctx, alg, []byte("x")); !errors.Is(err, keys.ErrBadParameter) {
			t.Errorf("Operator.Encrypt with GCM: %v, want ErrBadParameter", err)
		}
	}
	if _, _, err := p.Generate(ctx, keys.Spec{Kty: keys.KtyOct, Size: 512}); !errors.Is(err, keys.ErrBadParameter) {
		t.Errorf("oct 512: %v", err)
	}
	raw := bytes.Repeat([]byte{7}, 24)
	h, _, err := p.Import(ctx, keys.JWK{Kty: "oct", K: raw})
	if err != nil {
		t.Fatal(err)
	}
	op, _ := p.Load(ctx, h)
	w, err := op.WrapKey(ctx, "A192KW", bytes.Repeat([]byte{1}, 16))
	if err != nil || len(w) != 24 {
		t.Errorf("imported A192KW wrap: %v", err)
	}
	for _, j := range []keys.JWK{{Kty: "oct", K: raw[:10]}, {Kty: "oct", K: raw, N: []byte{1}}, {Kty: "oct"}} {
		if _, _, err := p.Import(ctx, j); !errors.Is(err, keys.ErrBadKey) {
			t.Errorf("Import bad oct: %v", err)
		}
	}
}

// FuzzAESUnwrap: arbitrary wrapped bytes either fail with ErrDecryption or
// unwrap to a key that wraps back to exactly the same bytes (RFC 3394 and
// 5649 wrapping is deterministic); CBC-PAD decryption likewise re-encrypts
// to the input under the same iv.
func FuzzAESUnwrap(f *testing.F) {
	f.Add([]byte("0123456789abcdef"), []byte{}, byte(0))
	f.Add(bytes.Repeat([]byte{0xa6}, 24), bytes.Repeat([]byte{1}, 16), byte(1))
	f.Add(bytes.Repeat([]byte{3}, 32), bytes.Repeat([]byte{2}, 16), byte(2))
	k := aesKey(f, bytes.Repeat([]byte{9}, 16))
	f.Fuzz(func(t *testing.T, in, iv []byte, which byte) {
		switch which % 3 {
		case 0, 1:
			alg := []string{"A128KW", "CKM_AES_KEY_WRAP_PAD"}[which%3]
			out, err := k.UnwrapKey(alg, in)
			if err != nil {
				if !errors.Is(err, keys.ErrDecryption) {
					t.Fatalf("%s: %v", alg, err)
				}
				return
			}
			again, err := k.WrapKey(alg, out)
			if err != nil || !bytes.Equal(again, in) {
				t.Fatalf("%s: unwrapped %x does not wrap back to %x: %x %v", alg, out, in, again, err)
			}
		default:
			out, err := k.DecryptAES("A128CBCPAD", in, iv, nil, nil)
			if err != nil {
				if !errors.Is(err, keys.ErrDecryption) && !errors.Is(err, keys.ErrBadParameter) {
					t.Fatalf("CBCPAD: %v", err)
				}
				return
			}
			again, _, _, err := k.EncryptAES("A128CBCPAD", out, iv, nil)
			if err != nil || !bytes.Equal(again, in) {
				t.Fatalf("CBCPAD: %x does not re-encrypt to %x", out, in)
			}
		}
	})
}
