// Package securitydomain is the managed HSM security domain file in Azure's
// shape (CRYPTO.md §5.1), used by the server (download, upload) and by
// `keyward hsm security-domain` (the custodians' side):
//
//	{"EncData":{"data":[{"compact_jwe","tag"}],"kdf":"sp108_kdf"},
//	 "SharedKeys":{"enc_shares":[{"enc_key","x5t_256"}],"required":M}}
//
// The pool's domain secret is sealed in EncData (a "dir" JWE, A256CBC-HS512,
// under SP 800-108 KDF(master key, label = tag)); the master key is split
// M-of-N per byte over GF(257) (each share value v at point x serialized as
// the uint16 (x<<9)|v) and each share is a JWE (RSA-OAEP-256,
// A256CBC-HS512) to one custodian's certificate. An upload document
// replaces SharedKeys by WrappedKey: the new master key as a JWE to the
// receiving pool's transfer key. Keyward never sees a custodian's private
// key: Recover runs on the custodians' machine.
package securitydomain

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrInvalid is the one error for a document, share or key that does not
// open (wrong custodian keys, too few shares, damaged file).
var ErrInvalid = errors.New("securitydomain: the security domain does not open with these keys")

// Document is the security domain file.
type Document struct {
	EncData    EncData     `json:"EncData"`
	SharedKeys *SharedKeys `json:"SharedKeys,omitempty"`
	WrappedKey *EncKey     `json:"WrappedKey,omitempty"`
}

// EncData holds the sealed domain secret.
type EncData struct {
	Data []EncItem `json:"data"`
	KDF  string    `json:"kdf"`
}

// EncItem is one sealed item.
type EncItem struct {
	CompactJWE string `json:"compact_jwe"`
	Tag        string `json:"tag"`
}

// SharedKeys are the master key's shares, one per custodian.
type SharedKeys struct {
	EncShares []EncKey `json:"enc_shares"`
	Required  int      `json:"required"`
}

// EncKey is a JWE to one RSA key, named by its certificate's SHA-256
// thumbprint (base64url).
type EncKey struct {
	EncKey string `json:"enc_key"`
	X5t256 string `json:"x5t_256"`
}

// Custodian is one wrapping key: its RSA public key and thumbprint.
type Custodian struct {
	Key    *rsa.PublicKey
	X5t256 string
}

// Thumbprint is the x5t#S256 of a DER certificate.
func Thumbprint(der []byte) string {
	s := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(s[:])
}

const secretTag = "domain-secret"

// KDF is SP 800-108 in counter mode with HMAC-SHA-256: 64 bytes (the
// A256CBC-HS512 key) from master, label and an empty context.
func KDF(master []byte, label string) []byte {
	out := make([]byte, 0, 64)
	for i := uint32(1); len(out) < 64; i++ {
		m := hmac.New(sha256.New, master)
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], i)
		m.Write(c[:])
		m.Write([]byte(label))
		m.Write([]byte{0})
		m.Write([]byte{0, 0, 2, 0}) // L = 512 bits
		out = m.Sum(out)
	}
	return out[:64]
}

func sealDir(master, plaintext []byte, tag string) (string, error) {
	enc, err := jose.NewEncrypter(jose.A256CBC_HS512, jose.Recipient{Algorithm: jose.DIRECT, Key: KDF(master, tag)}, nil)
	if err != nil {
		return "", err
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

func openDir(master []byte, compact, tag string) ([]byte, error) {
	obj, err := jose.ParseEncryptedCompact(compact, []jose.KeyAlgorithm{jose.DIRECT}, []jose.ContentEncryption{jose.A256CBC_HS512})
	if err != nil {
		return nil, ErrInvalid
	}
	pt, err := obj.Decrypt(KDF(master, tag))
	if err != nil {
		return nil, ErrInvalid
	}
	return pt, nil
}

// EncryptTo is a JWE (RSA-OAEP-256, A256CBC-HS512) of plaintext to pub.
func EncryptTo(pub *rsa.PublicKey, plaintext []byte) (string, error) {
	enc, err := jose.NewEncrypter(jose.A256CBC_HS512, jose.Recipient{Algorithm: jose.RSA_OAEP_256, Key: pub}, nil)
	if err != nil {
		return "", err
	}
	obj, err := enc.Encrypt(plaintext)
	if err != nil {
		return "", err
	}
	return obj.CompactSerialize()
}

// DecryptWith opens a JWE made by EncryptTo.
func DecryptWith(priv *rsa.PrivateKey, compact string) ([]byte, error) {
	obj, err := jose.ParseEncryptedCompact(compact, []jose.KeyAlgorithm{jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256CBC_HS512})
	if err != nil {
		return nil, ErrInvalid
	}
	pt, err := obj.Decrypt(priv)
	if err != nil {
		return nil, ErrInvalid
	}
	return pt, nil
}

// New makes the security domain of secret for custodians, required of
// them (2 ≤ required ≤ len, 3 to 10 custodians) needed to recover it.
func New(secret []byte, custodians []Custodian, required int) (*Document, error) {
	n := len(custodians)
	if n < 3 || n > 10 || required < 2 || required > n {
		return nil, fmt.Errorf("securitydomain: 3 to 10 custodians and a quorum of 2 to their number, got %d and %d", n, required)
	}
	master := make([]byte, 32)
	rand.Read(master)
	defer clear(master)
	jwe, err := sealDir(master, secret, secretTag)
	if err != nil {
		return nil, err
	}
	shares, err := Split(master, n, required)
	if err != nil {
		return nil, err
	}
	doc := &Document{EncData: EncData{Data: []EncItem{{CompactJWE: jwe, Tag: secretTag}}, KDF: "sp108_kdf"},
		SharedKeys: &SharedKeys{Required: required}}
	for i, c := range custodians {
		e, err := EncryptTo(c.Key, shares[i])
		clear(shares[i])
		if err != nil {
			return nil, err
		}
		doc.SharedKeys.EncShares = append(doc.SharedKeys.EncShares, EncKey{EncKey: e, X5t256: c.X5t256})
	}
	return doc, nil
}

// Recover opens a downloaded document with custodians' private keys (at
// least its quorum) and returns the domain secret. Keys that open no share
// are ignored.
func Recover(doc *Document, privs []*rsa.PrivateKey) ([]byte, error) {
	if doc.SharedKeys == nil || len(doc.EncData.Data) != 1 {
		return nil, ErrInvalid
	}
	var shares [][]byte
	for _, es := range doc.SharedKeys.EncShares {
		for _, k := range privs {
			if s, err := DecryptWith(k, es.EncKey); err == nil {
				shares = append(shares, s)
				break
			}
		}
	}
	if len(shares) < doc.SharedKeys.Required {
		return nil, fmt.Errorf("%w: %d shares opened, %d required", ErrInvalid, len(shares), doc.SharedKeys.Required)
	}
	master, err := Combine(shares[:doc.SharedKeys.Required])
	if err != nil {
		return nil, err
	}
	defer clear(master)
	return openDir(master, doc.EncData.Data[0].CompactJWE, doc.EncData.Data[0].Tag)
}

// ForUpload re-seals secret under a fresh master key wrapped to the
// receiving pool's transfer key: the document POST /securitydomain/upload
// takes.
func ForUpload(secret []byte, transfer *rsa.PublicKey, x5t string) (*Document, error) {
	master := make([]byte, 32)
	rand.Read(master)
	defer clear(master)
	jwe, err := sealDir(master, secret, secretTag)
	if err != nil {
		return nil, err
	}
	wk, err := EncryptTo(transfer, master)
	if err != nil {
		return nil, err
	}
	return &Document{EncData: EncData{Data: []EncItem{{CompactJWE: jwe, Tag: secretTag}}, KDF: "sp108_kdf"},
		WrappedKey: &EncKey{EncKey: wk, X5t256: x5t}}, nil
}

// OpenUpload is the receiving pool's side of ForUpload.
func OpenUpload(doc *Document, transfer *rsa.PrivateKey) ([]byte, error) {
	if doc.WrappedKey == nil || len(doc.EncData.Data) != 1 {
		return nil, ErrInvalid
	}
	master, err := DecryptWith(transfer, doc.WrappedKey.EncKey)
	if err != nil || len(master) != 32 {
		return nil, ErrInvalid
	}
	defer clear(master)
	return openDir(master, doc.EncData.Data[0].CompactJWE, doc.EncData.Data[0].Tag)
}

// Parse reads a document; anything else is ErrInvalid.
func Parse(raw []byte) (*Document, error) {
	var d Document
	if err := json.Unmarshal(raw, &d); err != nil || len(d.EncData.Data) == 0 {
		return nil, ErrInvalid
	}
	return &d, nil
}

const prime = 257

// Split shares secret n ways, any m of which recover it: per byte, a random
// polynomial of degree m-1 over GF(257); share i holds, per byte, the
// uint16 (x<<9)|p(x) at x = i+1, big-endian.
func Split(secret []byte, n, m int) ([][]byte, error) {
	if m < 2 || m > n || n > 127 {
		return nil, fmt.Errorf("securitydomain: cannot split %d ways with quorum %d", n, m)
	}
	shares := make([][]byte, n)
	for i := range shares {
		shares[i] = make([]byte, 2*len(secret))
	}
	coef := make([]int, m)
	for b, s := range secret {
		coef[0] = int(s)
		for j := 1; j < m; j++ {
			r, err := rand.Int(rand.Reader, big.NewInt(prime))
			if err != nil {
				return nil, err
			}
			coef[j] = int(r.Int64())
		}
		for i := 0; i < n; i++ {
			x, y := i+1, 0
			for j := m - 1; j >= 0; j-- {
				y = (y*x + coef[j]) % prime
			}
			binary.BigEndian.PutUint16(shares[i][2*b:], uint16(x<<9|y))
		}
	}
	clear(coef)
	return shares, nil
}

// Combine recovers the secret from shares made by Split (at least the
// quorum, each from a distinct point).
func Combine(shares [][]byte) ([]byte, error) {
	if len(shares) < 2 {
		return nil, ErrInvalid
	}
	l := len(shares[0])
	if l == 0 || l%2 != 0 {
		return nil, ErrInvalid
	}
	for _, s := range shares {
		if len(s) != l {
			return nil, ErrInvalid
		}
	}
	out := make([]byte, l/2)
	xs := make([]int, len(shares))
	for b := range out {
		acc := 0
		for i, s := range shares {
			xs[i] = int(binary.BigEndian.Uint16(s[2*b:]) >> 9)
		}
		for i, s := range shares {
			xi, yi := xs[i], int(binary.BigEndian.Uint16(s[2*b:])&0x1ff)
			if xi == 0 || yi >= prime {
				return nil, ErrInvalid
			}
			num, den := 1, 1
			for j, xj := range xs {
				if j == i {
					continue
				}
				if xj == xi {
					return nil, ErrInvalid
				}
				num = num * (prime - xj) % prime
				den = den * ((xi - xj + prime) % prime) % prime
			}
			acc = (acc + yi*num%prime*inv(den)) % prime
		}
		if acc > 255 {
			return nil, ErrInvalid
		}
		out[b] = byte(acc)
	}
	return out, nil
}

// inv is the inverse in GF(257): a^(p-2).
func inv(a int) int {
	r, e := 1, prime-2
	for a %= prime; e > 0; e >>= 1 {
		if e&1 == 1 {
			r = r * a % prime
		}
		a = a * a % prime
	}
	return r
}
