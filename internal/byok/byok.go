// Package byok is Azure Key Vault's BYOK transfer format (CRYPTO.md §4.2):
// the .byok file a customer's tool makes to import a key into an HSM, and
// the same wrapping that secure key release uses to hand a key to an
// attested runtime (§4.5).
//
//	aes        = 32 random bytes (ephemeral)
//	ek         = RSA-OAEP(KEK public key, aes)   hash per enc, MGF1 same hash, empty label
//	wk         = AES-KWP(aes, target)             RFC 5649
//	target     = PKCS #8 DER (RSA, EC) or the raw key bytes (oct)
//	ciphertext = ek ‖ wk                          len(ek) = KEK modulus size
//
// enc names the OAEP hash: CKM_RSA_AES_KEY_WRAP (SHA-1),
// RSA_AES_KEY_WRAP_256 (SHA-256), RSA_AES_KEY_WRAP_384 (SHA-384).
//
// The service side unwraps inside the HSM (internal/hsm); this package
// parses the file, and makes (Wrap, Seal) and opens (Unwrap) ciphertexts
// in Go for the client tool `keyward byok`, for software keys' release,
// and for tests. No error of this package contains key material, and every
// failure that depends on the ciphertext is [ErrUnwrap].
package byok

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math/big"
	"strings"

	"github.com/keyward/keyward/internal/keys"
)

// Key encryption algorithms (the header's enc; the release request's enc).
const (
	EncRSAAESKeyWrap    = "CKM_RSA_AES_KEY_WRAP"
	EncRSAAESKeyWrap256 = "RSA_AES_KEY_WRAP_256"
	EncRSAAESKeyWrap384 = "RSA_AES_KEY_WRAP_384"
)

// Schema versions: .byok files say "1.0.0", release responses "1.0".
const (
	SchemaFile    = "1.0.0"
	SchemaRelease = "1.0"
)

// MaxFileSize bounds a .byok file (a 4096-bit KEK and an RSA-4096 target
// make about 4 KiB).
const MaxFileSize = 64 << 10

var (
	// ErrFormat means the file or its header is malformed; the message says
	// which field.
	ErrFormat = errors.New("byok: malformed transfer blob")
	// ErrUnwrap is every failure that depends on the ciphertext bytes.
	ErrUnwrap = errors.New("byok: the transfer blob cannot be unwrapped with this key exchange key")
)

// OAEPHash returns the OAEP hash of an enc value.
func OAEPHash(enc string) (crypto.Hash, bool) {
	switch enc {
	case EncRSAAESKeyWrap:
		return crypto.SHA1, true
	case EncRSAAESKeyWrap256:
		return crypto.SHA256, true
	case EncRSAAESKeyWrap384:
		return crypto.SHA384, true
	}
	return 0, false
}

func newHash(h crypto.Hash) hash.Hash {
	switch h {
	case crypto.SHA1:
		return sha1.New()
	case crypto.SHA256:
		return sha256.New()
	default:
		return sha512.New384()
	}
}

// Header is the file's header.
type Header struct {
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Enc string `json:"enc"`
}

// fileWire is the JSON of a .byok file.
type fileWire struct {
	SchemaVersion string `json:"schema_version"`
	Header        Header `json:"header"`
	Ciphertext    string `json:"ciphertext"`
	Generator     string `json:"generator,omitempty"`
}

// Blob is a parsed transfer blob.
type Blob struct {
	SchemaVersion string
	Header        Header
	Hash          crypto.Hash // OAEP hash of Header.Enc
	Ciphertext    []byte      // ek ‖ wk
	Generator     string
}

// Parse reads a .byok file (or a release response's key_hsm): JSON with
// schema_version "1.0.0" or "1.0", header.alg "dir", a known header.enc, a
// header.kid, and a base64url ciphertext (padding tolerated) of at least
// one RSA block and one KWP block. It checks the form only; whether the
// kid names a usable key exchange key is the caller's question.
func Parse(b []byte) (*Blob, error) {
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxFileSize)
	}
	var w fileWire
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object with schema_version, header and ciphertext", ErrFormat)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrFormat)
	}
	if w.SchemaVersion != SchemaFile && w.SchemaVersion != SchemaRelease {
		return nil, fmt.Errorf("%w: schema_version %.20q, want %q", ErrFormat, w.SchemaVersion, SchemaFile)
	}
	if w.Header.Alg != "dir" {
		return nil, fmt.Errorf("%w: header.alg %.20q, want \"dir\"", ErrFormat, w.Header.Alg)
	}
	h, ok := OAEPHash(w.Header.Enc)
	if !ok {
		return nil, fmt.Errorf("%w: header.enc %.40q, want %s, %s or %s", ErrFormat, w.Header.Enc,
			EncRSAAESKeyWrap, EncRSAAESKeyWrap256, EncRSAAESKeyWrap384)
	}
	if w.Header.Kid == "" {
		return nil, fmt.Errorf("%w: header.kid is missing", ErrFormat)
	}
	ct, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(w.Ciphertext, "="))
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext is not base64url", ErrFormat)
	}
	// 2048-bit KEK block + the smallest KWP output (16 bytes).
	if len(ct) < 256+16 {
		return nil, fmt.Errorf("%w: ciphertext too short", ErrFormat)
	}
	return &Blob{SchemaVersion: w.SchemaVersion, Header: w.Header, Hash: h, Ciphertext: ct, Generator: w.Generator}, nil
}

// Marshal returns the JSON of b (the ciphertext unpadded base64url).
func (b *Blob) Marshal() ([]byte, error) {
	return json.Marshal(fileWire{SchemaVersion: b.SchemaVersion, Header: b.Header,
		Ciphertext: base64.RawURLEncoding.EncodeToString(b.Ciphertext), Generator: b.Generator})
}

// Split cuts a ciphertext into the RSA block (k bytes, the KEK modulus
// size) and the KWP blob, which must be a multiple of 8 and at least 16.
func Split(ct []byte, k int) (ek, wk []byte, err error) {
	if k <= 0 || len(ct) < k+16 || (len(ct)-k)%8 != 0 {
		return nil, nil, ErrUnwrap
	}
	return ct[:k], ct[k:], nil
}

// Wrap makes ek ‖ wk for target under the RSA public key pub with the
// OAEP hash h.
func Wrap(pub *rsa.PublicKey, h crypto.Hash, target []byte) ([]byte, error) {
	if h != crypto.SHA1 && h != crypto.SHA256 && h != crypto.SHA384 {
		return nil, fmt.Errorf("%w: OAEP hash %v", ErrFormat, h)
	}
	if len(target) == 0 {
		return nil, fmt.Errorf("%w: nothing to wrap", ErrFormat)
	}
	secret := make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, secret); err != nil {
		return nil, err
	}
	defer clear(secret)
	aesKey, err := keys.NewAES(secret)
	if err != nil {
		return nil, err
	}
	ek, err := rsa.EncryptOAEP(newHash(h), rand.Reader, pub, secret, nil)
	if err != nil {
		return nil, fmt.Errorf("byok: RSA-OAEP under the key exchange key: %w", err)
	}
	wk, err := aesKey.WrapKey(keys.AlgAESKeyWrapPad, target)
	if err != nil {
		return nil, fmt.Errorf("byok: AES key wrap: %w", err)
	}
	return append(ek, wk...), nil
}

// Unwrap opens ek ‖ wk with the RSA private key priv: the software side of
// an import, and what a released key's recipient does.
func Unwrap(priv *rsa.PrivateKey, h crypto.Hash, ct []byte) ([]byte, error) {
	ek, wk, err := Split(ct, priv.Size())
	if err != nil {
		return nil, err
	}
	secret, err := rsa.DecryptOAEP(newHash(h), nil, priv, ek, nil)
	if err != nil {
		return nil, ErrUnwrap
	}
	defer clear(secret)
	aesKey, err := keys.NewAES(secret)
	if err != nil {
		return nil, ErrUnwrap
	}
	out, err := aesKey.UnwrapKey(keys.AlgAESKeyWrapPad, wk)
	if err != nil {
		return nil, ErrUnwrap
	}
	return out, nil
}

// Seal makes a .byok file: target wrapped for the key exchange key pub
// whose Key Vault ID is kid.
func Seal(pub *rsa.PublicKey, kid, enc string, target []byte, generator string) ([]byte, error) {
	h, ok := OAEPHash(enc)
	if !ok {
		return nil, fmt.Errorf("%w: enc %.40q", ErrFormat, enc)
	}
	ct, err := Wrap(pub, h, target)
	if err != nil {
		return nil, err
	}
	b := &Blob{SchemaVersion: SchemaFile, Header: Header{Kid: kid, Alg: "dir", Enc: enc}, Ciphertext: ct, Generator: generator}
	return b.Marshal()
}

// Target describes a key prepared for wrapping.
type Target struct {
	Kty   string // RSA, EC or oct
	Curve string // EC only
	Bits  int
	DER   []byte // PKCS #8 (RSA, EC) or the raw key (oct)
}

// TargetFromFile reads a private key in PEM ("PRIVATE KEY", "RSA PRIVATE
// KEY", "EC PRIVATE KEY") or DER (PKCS #8, PKCS #1, SEC 1) and returns it
// as PKCS #8, validated by the keys package. oct reads the raw bytes of a
// 16, 24 or 32-byte AES key instead.
func TargetFromFile(b []byte, oct bool) (*Target, error) {
	if oct {
		if len(b) != 16 && len(b) != 24 && len(b) != 32 {
			return nil, errors.New("byok: an AES key file holds exactly 16, 24 or 32 bytes")
		}
		return &Target{Kty: keys.KtyOct, Bits: len(b) * 8, DER: bytes.Clone(b)}, nil
	}
	der := b
	if p, _ := pem.Decode(b); p != nil {
		if p.Headers["Proc-Type"] != "" {
			return nil, errors.New("byok: encrypted PEM keys are not supported; decrypt the key first (openssl pkey)")
		}
		der = p.Bytes
	}
	pk8 := der
	if k, err := keys.ParsePrivate(der); err == nil {
		return &Target{Kty: k.Kty(), Curve: k.Curve(), Bits: k.Size(), DER: bytes.Clone(pk8)}, nil
	}
	var priv any
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		priv = k
	} else if k, err := x509.ParseECPrivateKey(der); err == nil {
		priv = k
	} else {
		return nil, errors.New("byok: not a PKCS #8, PKCS #1 or SEC 1 private key (PEM or DER)")
	}
	pk8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("byok: %w", err)
	}
	k, err := keys.ParsePrivate(pk8)
	if err != nil {
		return nil, err
	}
	return &Target{Kty: k.Kty(), Curve: k.Curve(), Bits: k.Size(), DER: pk8}, nil
}

// KEKFromFile reads the key exchange key's public key: PEM or DER
// SubjectPublicKeyInfo or PKCS #1, or a JWK (as `az keyvault key download
// -e JWK` or GET /keys/{kek} give it, key bundle or bare key). It returns
// the key and the kid found in a JWK ("" otherwise).
func KEKFromFile(b []byte) (*rsa.PublicKey, string, error) {
	trim := bytes.TrimSpace(b)
	if len(trim) > 0 && trim[0] == '{' {
		var w struct {
			Key *struct {
				Kid, Kty string
				N, E     string
			} `json:"key"`
			Kid, Kty string
			N, E     string
		}
		if err := json.Unmarshal(trim, &w); err != nil {
			return nil, "", errors.New("byok: the key exchange key JSON is not a JWK")
		}
		kid, kty, n, e := w.Kid, w.Kty, w.N, w.E
		if w.Key != nil {
			kid, kty, n, e = w.Key.Kid, w.Key.Kty, w.Key.N, w.Key.E
		}
		if kty != "RSA" && kty != "RSA-HSM" {
			return nil, "", errors.New("byok: the key exchange key must be an RSA key")
		}
		nb, err1 := base64.RawURLEncoding.DecodeString(strings.TrimRight(n, "="))
		eb, err2 := base64.RawURLEncoding.DecodeString(strings.TrimRight(e, "="))
		if err1 != nil || err2 != nil {
			return nil, "", errors.New("byok: the key exchange key's n or e is not base64url")
		}
		k, err := keys.FromJWK(keys.JWK{Kty: keys.KtyRSA, N: nb, E: eb})
		if err != nil {
			return nil, "", err
		}
		j := k.Public()
		return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(new(big.Int).SetBytes(j.E).Int64())}, kid, nil
	}
	der := b
	if p, _ := pem.Decode(b); p != nil {
		der = p.Bytes
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, "", errors.New("byok: the key exchange key must be an RSA key")
		}
		return pub, "", nil
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, "", nil
	}
	return nil, "", errors.New("byok: the key exchange key is not a PEM/DER RSA public key or a JWK")
}
