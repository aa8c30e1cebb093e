package byok

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var encs = []string{EncRSAAESKeyWrap, EncRSAAESKeyWrap256, EncRSAAESKeyWrap384}

func targets(t *testing.T) map[string][]byte {
	t.Helper()
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	r8, _ := x509.MarshalPKCS8PrivateKey(rk)
	e8, _ := x509.MarshalPKCS8PrivateKey(ek)
	aes := make([]byte, 32)
	rand.Read(aes)
	return map[string][]byte{"RSA": r8, "EC": e8, "oct": aes}
}

// TestRoundTrip: every enc × {RSA, EC, oct} through the .byok JSON.
func TestRoundTrip(t *testing.T) {
	kek, _ := rsa.GenerateKey(rand.Reader, 3072)
	for name, tgt := range targets(t) {
		for _, enc := range encs {
			f, err := Seal(&kek.PublicKey, "https://v.vault.localhost/keys/kek/0123", enc, tgt, "test")
			if err != nil {
				t.Fatal(err)
			}
			b, err := Parse(f)
			if err != nil {
				t.Fatal(name, enc, err)
			}
			if b.Header.Enc != enc || b.Header.Alg != "dir" || b.SchemaVersion != SchemaFile {
				t.Fatalf("%s %s: header %+v", name, enc, b.Header)
			}
			got, err := Unwrap(kek, b.Hash, b.Ciphertext)
			if err != nil || !bytes.Equal(got, tgt) {
				t.Fatalf("%s %s: unwrap %v", name, enc, err)
			}
			// A flipped byte in wk, in ek, a truncation: ErrUnwrap.
			for _, mut := range []func([]byte) []byte{
				func(c []byte) []byte { c[len(c)-3] ^= 1; return c },
				func(c []byte) []byte { c[10] ^= 1; return c },
				func(c []byte) []byte { return c[:len(c)-8] },
			} {
				c := mut(bytes.Clone(b.Ciphertext))
				if _, err := Unwrap(kek, b.Hash, c); !errors.Is(err, ErrUnwrap) {
					t.Fatalf("%s %s: tampered ciphertext: %v", name, enc, err)
				}
			}
			// The wrong OAEP hash fails.
			other := crypto.SHA256
			if b.Hash == crypto.SHA256 {
				other = crypto.SHA1
			}
			if _, err := Unwrap(kek, other, b.Ciphertext); !errors.Is(err, ErrUnwrap) {
				t.Fatalf("%s %s: wrong hash: %v", name, enc, err)
			}
		}
	}
}

// TestOpenSSLRecipe: the manual recipe of CRYPTO.md §4.4 (OpenSSL wraps)
// unwraps here to the exact PKCS #8 bytes.
func TestOpenSSLRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is missing")
		}
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	kek, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&kek.PublicKey)
	kekPEM := filepath.Join(dir, "kek.pub.pem")
	os.WriteFile(kekPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600)
	for name, tgt := range targets(t) {
		if name == "oct" {
			continue
		}
		for _, enc := range encs {
			tf := filepath.Join(dir, name+".der")
			os.WriteFile(tf, tgt, 0o600)
			out, err := exec.Command("sh", "testdata/openssl-byok.sh", kekPEM, tf, enc, "kid1").Output()
			if err != nil {
				t.Fatal(name, enc, err)
			}
			b, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unwrap(kek, b.Hash, b.Ciphertext)
			if err != nil || !bytes.Equal(got, tgt) {
				t.Fatalf("%s %s: Go cannot unwrap OpenSSL's blob: %v", name, enc, err)
			}
		}
	}
}

func TestParseRefuses(t *testing.T) {
	ct := base64.RawURLEncoding.EncodeToString(make([]byte, 300))
	good := `{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"` + ct + `"}`
	if _, err := Parse([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(good, `"dir"`, `"RSA-OAEP"`, 1),
		strings.Replace(good, `CKM_RSA_AES_KEY_WRAP`, `RSA_AES_KEY_WRAP_512`, 1),
		strings.Replace(good, `"1.0.0"`, `"2.0"`, 1),
		strings.Replace(good, `"kid":"k"`, `"kid":""`, 1),
		strings.Replace(good, ct, ct[:100], 1),
		strings.Replace(good, ct, "!!", 1),
		good + "{}",
		"[]", "", "null",
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Fatalf("%.80s: %v", bad, err)
		}
	}
}

func TestTargetFromFile(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)})
	sec1, _ := x509.MarshalECPrivateKey(ek)
	p8, _ := x509.MarshalPKCS8PrivateKey(ek)
	for _, c := range []struct {
		in       []byte
		kty, crv string
	}{{p1, "RSA", ""}, {sec1, "EC", "P-384"}, {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), "EC", "P-384"}} {
		tg, err := TargetFromFile(c.in, false)
		if err != nil || tg.Kty != c.kty || tg.Curve != c.crv {
			t.Fatalf("%v %+v", err, tg)
		}
		if _, err := x509.ParsePKCS8PrivateKey(tg.DER); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := TargetFromFile([]byte("junk"), false); err == nil {
		t.Fatal("junk accepted")
	}
}

// FuzzParse: Parse never panics; what it accepts marshals back to a file
// that parses to the same blob.
func FuzzParse(f *testing.F) {
	ct := base64.RawURLEncoding.EncodeToString(make([]byte, 300))
	f.Add([]byte(`{"schema_version":"1.0.0","header":{"kid":"k","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"` + ct + `"}`))
	f.Add([]byte(`{"schema_version":"1.0","header":{"kid":"TpmEphemeralEncryptionKey","alg":"dir","enc":"RSA_AES_KEY_WRAP_384"},"ciphertext":"` + ct + `==","generator":"x"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if b2.Header != b.Header || b2.SchemaVersion != b.SchemaVersion || b2.Hash != b.Hash ||
			b2.Generator != b.Generator || !bytes.Equal(b2.Ciphertext, b.Ciphertext) {
			t.Fatal("round trip changed the blob")
		}
	})
}
