package keys

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"log/slog"
)

// Symmetric (oct) keys: AES-128/192/256, the key type of managed HSM pools
// (AZURE-API.md §4, CRYPTO.md §3). They are a separate type from [Key] so
// that the asymmetric API (FromJWK, Generate, ParsePrivate) keeps refusing
// oct, as Key Vault vaults do.

// KtyOct is the JWK key type of a symmetric key.
const KtyOct = "oct"

// AES algorithm names, as Key Vault spells them.
const (
	AlgA128GCM       = "A128GCM"
	AlgA192GCM       = "A192GCM"
	AlgA256GCM       = "A256GCM"
	AlgA128CBC       = "A128CBC"
	AlgA192CBC       = "A192CBC"
	AlgA256CBC       = "A256CBC"
	AlgA128CBCPAD    = "A128CBCPAD"
	AlgA192CBCPAD    = "A192CBCPAD"
	AlgA256CBCPAD    = "A256CBCPAD"
	AlgA128KW        = "A128KW"
	AlgA192KW        = "A192KW"
	AlgA256KW        = "A256KW"
	AlgAESKeyWrap    = "CKM_AES_KEY_WRAP"
	AlgAESKeyWrapPad = "CKM_AES_KEY_WRAP_PAD"
	AlgHS256         = "HS256"
	AlgHS384         = "HS384"
	AlgHS512         = "HS512"
)

type aesMode int

const (
	modeGCM aesMode = iota
	modeCBC
	modeCBCPad
	modeKW
	modeKWP
)

type aesAlg struct {
	mode    aesMode
	keySize int // bytes; 0: any AES key size
}

var aesAlgs = map[string]aesAlg{
	AlgA128GCM: {modeGCM, 16}, AlgA192GCM: {modeGCM, 24}, AlgA256GCM: {modeGCM, 32},
	AlgA128CBC: {modeCBC, 16}, AlgA192CBC: {modeCBC, 24}, AlgA256CBC: {modeCBC, 32},
	AlgA128CBCPAD: {modeCBCPad, 16}, AlgA192CBCPAD: {modeCBCPad, 24}, AlgA256CBCPAD: {modeCBCPad, 32},
	AlgA128KW: {modeKW, 16}, AlgA192KW: {modeKW, 24}, AlgA256KW: {modeKW, 32},
	AlgAESKeyWrap: {modeKW, 0}, AlgAESKeyWrapPad: {modeKWP, 0},
}

var hmacAlgs = map[string]func() hash.Hash{AlgHS256: sha256.New, AlgHS384: sha512.New384, AlgHS512: sha512.New}

// IsAESAlgorithm reports whether alg is one of the AES algorithms above.
func IsAESAlgorithm(alg string) bool { _, ok := aesAlgs[alg]; return ok }

// AESKey is an immutable AES key. Printing it shows only its size.
type AESKey struct {
	_ [0]func()
	k []byte
	b cipher.Block
}

// GenerateAES returns a new random AES key of bits 128, 192 or 256.
func GenerateAES(bits int) (*AESKey, error) {
	if bits != 128 && bits != 192 && bits != 256 {
		return nil, fmt.Errorf("%w: AES key size %d, want 128, 192 or 256", ErrBadParameter, bits)
	}
	k := make([]byte, bits/8)
	if _, err := io.ReadFull(rand.Reader, k); err != nil {
		return nil, fmt.Errorf("keys: generating AES key: %w", err)
	}
	return NewAES(k)
}

// NewAES makes a key of the 16, 24 or 32 bytes k (copied).
func NewAES(k []byte) (*AESKey, error) {
	if len(k) != 16 && len(k) != 24 && len(k) != 32 {
		return nil, fmt.Errorf("%w: an AES key is 16, 24 or 32 bytes, got %d", ErrBadKey, len(k))
	}
	k = bytes.Clone(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("%w: AES key", ErrBadKey)
	}
	return &AESKey{k: k, b: b}, nil
}

// Size is the key size in bits.
func (k *AESKey) Size() int { return len(k.k) * 8 }

// Public is the JWK without the secret: kty oct only.
func (k *AESKey) Public() JWK { return JWK{Kty: KtyOct} }

func (k *AESKey) describe() string { return fmt.Sprintf("[keys.AESKey %d]", k.Size()) }

// Format redacts the key for every verb.
func (k AESKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.describe()) }

// LogValue redacts the key in structured logs.
func (k AESKey) LogValue() slog.Value { return slog.StringValue(k.describe()) }

// aesHandlePrefix marks a stored AES key handle (PKCS #8 has no AES form;
// a PKCS #8 handle starts with 0x30).
var aesHandlePrefix = []byte("KWAES1:")

// MarshalPrivate returns the storage handle (secret): only the storage layer
// may call it, to seal the result at once.
func (k *AESKey) MarshalPrivate() []byte {
	return append(bytes.Clone(aesHandlePrefix), k.k...)
}

// ParseAES parses what MarshalPrivate returned.
func ParseAES(h []byte) (*AESKey, error) {
	rest, ok := bytes.CutPrefix(h, aesHandlePrefix)
	if !ok {
		return nil, fmt.Errorf("%w: not an AES key handle", ErrBadKey)
	}
	return NewAES(rest)
}

func (k *AESKey) params(alg string) (aesAlg, error) {
	a, ok := aesAlgs[alg]
	if !ok {
		return a, fmt.Errorf("%w: %.24q with %s", ErrUnsupportedAlgorithm, alg, k.describe())
	}
	if a.keySize != 0 && a.keySize != len(k.k) {
		return a, fmt.Errorf("%w: %s needs a %d-bit key, this is %s", ErrUnsupportedAlgorithm, alg, a.keySize*8, k.describe())
	}
	return a, nil
}

// EncryptAES encrypts with a GCM or CBC algorithm (a key-wrap algorithm
// wraps). GCM: iv must be empty (the 12-byte IV is generated and returned
// with the 16-byte tag); aad is authenticated. CBC: iv is 16 bytes, or empty
// for a random one, which is returned; without PAD the plaintext is a
// multiple of 16 bytes. It returns ciphertext, iv and tag.
func (k *AESKey) EncryptAES(alg string, plaintext, iv, aad []byte) ([]byte, []byte, []byte, error) {
	a, err := k.params(alg)
	if err != nil {
		return nil, nil, nil, err
	}
	if a.mode != modeGCM && len(aad) > 0 {
		return nil, nil, nil, fmt.Errorf("%w: aad applies to GCM only", ErrBadParameter)
	}
	switch a.mode {
	case modeGCM:
		if len(iv) > 0 {
			return nil, nil, nil, fmt.Errorf("%w: %s generates its IV; do not send one", ErrBadParameter, alg)
		}
		g, err := cipher.NewGCM(k.b)
		if err != nil {
			return nil, nil, nil, err
		}
		iv = make([]byte, g.NonceSize())
		if _, err := io.ReadFull(rand.Reader, iv); err != nil {
			return nil, nil, nil, err
		}
		out := g.Seal(nil, iv, plaintext, aad)
		n := len(out) - g.Overhead()
		return out[:n:n], iv, out[n:], nil
	case modeCBC, modeCBCPad:
		switch len(iv) {
		case 0:
			iv = make([]byte, aes.BlockSize)
			if _, err := io.ReadFull(rand.Reader, iv); err != nil {
				return nil, nil, nil, err
			}
		case aes.BlockSize:
			iv = bytes.Clone(iv)
		default:
			return nil, nil, nil, fmt.Errorf("%w: %s needs a 16-byte iv", ErrBadParameter, alg)
		}
		in := plaintext
		if a.mode == modeCBCPad {
			p := aes.BlockSize - len(plaintext)%aes.BlockSize
			in = append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(p)}, p)...)
		} else if len(in)%aes.BlockSize != 0 || len(in) == 0 {
			return nil, nil, nil, fmt.Errorf("%w: %s needs a plaintext that is a non-empty multiple of 16 bytes", ErrBadParameter, alg)
		}
		out := make([]byte, len(in))
		cipher.NewCBCEncrypter(k.b, iv).CryptBlocks(out, in)
		if a.mode == modeCBCPad {
			clear(in)
		}
		return out, iv, nil, nil
	default:
		if len(iv) > 0 {
			return nil, nil, nil, fmt.Errorf("%w: %s takes no iv", ErrBadParameter, alg)
		}
		out, err := k.wrap(a, plaintext)
		return out, nil, nil, err
	}
}

// DecryptAES reverses EncryptAES. Every failure that depends on the
// ciphertext (tag, padding, integrity check) is exactly [ErrDecryption].
func (k *AESKey) DecryptAES(alg string, ciphertext, iv, aad, tag []byte) ([]byte, error) {
	a, err := k.params(alg)
	if err != nil {
		return nil, err
	}
	if a.mode != modeGCM && (len(aad) > 0 || len(tag) > 0) {
		return nil, fmt.Errorf("%w: aad and tag apply to GCM only", ErrBadParameter)
	}
	switch a.mode {
	case modeGCM:
		if len(iv) != 12 || len(tag) != 16 {
			return nil, fmt.Errorf("%w: %s needs the 12-byte iv and 16-byte tag", ErrBadParameter, alg)
		}
		g, err := cipher.NewGCM(k.b)
		if err != nil {
			return nil, err
		}
		in := append(bytes.Clone(ciphertext), tag...)
		pt, err := g.Open(nil, iv, in, aad)
		if err != nil {
			return nil, ErrDecryption
		}
		return pt, nil
	case modeCBC, modeCBCPad:
		if len(iv) != aes.BlockSize {
			return nil, fmt.Errorf("%w: %s needs a 16-byte iv", ErrBadParameter, alg)
		}
		if len(ciphertext) == 0 || len(ciphertext)%aes.BlockSize != 0 {
			return nil, ErrDecryption
		}
		out := make([]byte, len(ciphertext))
		cipher.NewCBCDecrypter(k.b, iv).CryptBlocks(out, ciphertext)
		if a.mode == modeCBC {
			return out, nil
		}
		n, ok := unpad(out)
		if !ok {
			clear(out)
			return nil, ErrDecryption
		}
		return out[:n:n], nil
	default:
		if len(iv) > 0 {
			return nil, fmt.Errorf("%w: %s takes no iv", ErrBadParameter, alg)
		}
		return k.unwrap(a, ciphertext)
	}
}

// unpad checks PKCS #7 padding of a non-empty multiple of 16 bytes in time
// that depends only on the length and returns the unpadded length.
func unpad(b []byte) (int, bool) {
	p := b[len(b)-1]
	good := subtle.ConstantTimeLessOrEq(1, int(p)) & subtle.ConstantTimeLessOrEq(int(p), aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		// byte i from the end must equal p when i <= p
		in := subtle.ConstantTimeLessOrEq(i, int(p))
		eq := subtle.ConstantTimeByteEq(b[len(b)-i], p)
		good &= eq | (in ^ 1)
	}
	return len(b) - int(p)*good, good == 1
}

// WrapKey wraps key material with A128KW..A256KW or CKM_AES_KEY_WRAP
// (RFC 3394: a multiple of 8 bytes, at least 16) or CKM_AES_KEY_WRAP_PAD
// (RFC 5649: 1 byte or more).
func (k *AESKey) WrapKey(alg string, key []byte) ([]byte, error) {
	a, err := k.params(alg)
	if err != nil {
		return nil, err
	}
	if a.mode != modeKW && a.mode != modeKWP {
		return nil, fmt.Errorf("%w: %s is not a key-wrap algorithm", ErrUnsupportedAlgorithm, alg)
	}
	return k.wrap(a, key)
}

// UnwrapKey reverses WrapKey; every integrity failure is [ErrDecryption].
func (k *AESKey) UnwrapKey(alg string, wrapped []byte) ([]byte, error) {
	a, err := k.params(alg)
	if err != nil {
		return nil, err
	}
	if a.mode != modeKW && a.mode != modeKWP {
		return nil, fmt.Errorf("%w: %s is not a key-wrap algorithm", ErrUnsupportedAlgorithm, alg)
	}
	return k.unwrap(a, wrapped)
}

const maxWrapInput = 1 << 20

func (k *AESKey) wrap(a aesAlg, in []byte) ([]byte, error) {
	if len(in) > maxWrapInput {
		return nil, fmt.Errorf("%w: key to wrap is too long", ErrBadParameter)
	}
	if a.mode == modeKWP {
		if len(in) == 0 {
			return nil, fmt.Errorf("%w: nothing to wrap", ErrBadParameter)
		}
		var aiv [8]byte
		binary.BigEndian.PutUint32(aiv[:4], 0xA65959A6)
		binary.BigEndian.PutUint32(aiv[4:], uint32(len(in)))
		padded := make([]byte, (len(in)+7)/8*8)
		copy(padded, in)
		defer clear(padded)
		if len(padded) == 8 { // one block: a single AES encryption (RFC 5649 §4.1)
			out := make([]byte, 16)
			k.b.Encrypt(out, append(aiv[:], padded...))
			return out, nil
		}
		return kwWrap(k.b, aiv, padded), nil
	}
	if len(in) < 16 || len(in)%8 != 0 {
		return nil, fmt.Errorf("%w: AES key wrap needs a multiple of 8 bytes, at least 16", ErrBadParameter)
	}
	return kwWrap(k.b, defaultIV, in), nil
}

func (k *AESKey) unwrap(a aesAlg, in []byte) ([]byte, error) {
	if len(in) > maxWrapInput+16 || len(in) < 16 || len(in)%8 != 0 {
		return nil, ErrDecryption
	}
	if a.mode == modeKWP {
		var aiv [8]byte
		var out []byte
		if len(in) == 16 {
			buf := make([]byte, 16)
			k.b.Decrypt(buf, in)
			copy(aiv[:], buf[:8])
			out = buf[8:]
		} else {
			var ok bool
			aiv, out, ok = kwUnwrap(k.b, in)
			if !ok {
				return nil, ErrDecryption
			}
		}
		n := int(binary.BigEndian.Uint32(aiv[4:]))
		bad := binary.BigEndian.Uint32(aiv[:4]) != 0xA65959A6 || n > len(out) || n <= len(out)-8
		if !bad {
			for _, b := range out[n:] {
				bad = bad || b != 0
			}
		}
		if bad {
			clear(out)
			return nil, ErrDecryption
		}
		return out[:n:n], nil
	}
	aiv, out, ok := kwUnwrap(k.b, in)
	if !ok || subtle.ConstantTimeCompare(aiv[:], defaultIV[:]) != 1 {
		clear(out)
		return nil, ErrDecryption
	}
	return out, nil
}

var defaultIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// kwWrap is RFC 3394 §2.2.1 with initial value iv over a multiple of 8
// bytes (at least 16).
func kwWrap(b cipher.Block, iv [8]byte, p []byte) []byte {
	n := len(p) / 8
	out := make([]byte, 8+len(p))
	copy(out[8:], p)
	a := iv
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], out[8*i:8*i+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(out[8*i:8*i+8], buf[8:])
		}
	}
	copy(out[:8], a[:])
	clear(buf[:])
	return out
}

// kwUnwrap is RFC 3394 §2.2.2; it returns the recovered initial value for
// the caller to check, and the plaintext.
func kwUnwrap(b cipher.Block, c []byte) ([8]byte, []byte, bool) {
	n := len(c)/8 - 1
	if n < 2 {
		return [8]byte{}, nil, false
	}
	out := make([]byte, 8*n)
	copy(out, c[8:])
	var a [8]byte
	copy(a[:], c[:8])
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
			copy(buf[8:], out[8*(i-1):8*i])
			b.Decrypt(buf[:], buf[:])
			copy(a[:], buf[:8])
			copy(out[8*(i-1):8*i], buf[8:])
		}
	}
	clear(buf[:])
	return a, out, true
}

// Sign computes an HMAC (HS256, HS384, HS512) of value with the key.
func (k *AESKey) Sign(alg string, value []byte) ([]byte, error) {
	h, ok := hmacAlgs[alg]
	if !ok {
		return nil, fmt.Errorf("%w: %.24q with %s", ErrUnsupportedAlgorithm, alg, k.describe())
	}
	m := hmac.New(h, k.k)
	m.Write(value)
	return m.Sum(nil), nil
}

// Verify checks an HMAC made by Sign.
func (k *AESKey) Verify(alg string, value, sig []byte) (bool, error) {
	want, err := k.Sign(alg, value)
	if err != nil {
		return false, err
	}
	return hmac.Equal(want, sig), nil
}

// aesOperator adapts an *AESKey to Operator and AESOperator.
type aesOperator struct{ k *AESKey }

// AESOperator is implemented by operators of symmetric keys: encryption
// with the iv, aad and tag that AES modes need. Operator.Encrypt and
// Decrypt on such a key fail with ErrBadParameter.
type AESOperator interface {
	EncryptAES(ctx context.Context, alg string, plaintext, iv, aad []byte) (ct, ivOut, tag []byte, err error)
	DecryptAES(ctx context.Context, alg string, ciphertext, iv, aad, tag []byte) ([]byte, error)
}

func (o aesOperator) Public() JWK { return o.k.Public() }

func (o aesOperator) Sign(ctx context.Context, alg string, v []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.Sign(alg, v)
}

func (o aesOperator) Verify(ctx context.Context, alg string, v, sig []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return o.k.Verify(alg, v, sig)
}

func (o aesOperator) Encrypt(ctx context.Context, alg string, pt []byte) ([]byte, error) {
	ct, iv, tag, err := o.EncryptAES(ctx, alg, pt, nil, nil)
	if err == nil && (len(iv) > 0 || len(tag) > 0) {
		return nil, fmt.Errorf("%w: %s returns an iv and tag; use EncryptAES", ErrBadParameter, alg)
	}
	return ct, err
}

func (o aesOperator) Decrypt(ctx context.Context, alg string, ct []byte) ([]byte, error) {
	return o.DecryptAES(ctx, alg, ct, nil, nil, nil)
}

func (o aesOperator) WrapKey(ctx context.Context, alg string, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.WrapKey(alg, key)
}

func (o aesOperator) UnwrapKey(ctx context.Context, alg string, w []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.UnwrapKey(alg, w)
}

func (o aesOperator) EncryptAES(ctx context.Context, alg string, pt, iv, aad []byte) ([]byte, []byte, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	return o.k.EncryptAES(alg, pt, iv, aad)
}

func (o aesOperator) DecryptAES(ctx context.Context, alg string, ct, iv, aad, tag []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.DecryptAES(alg, ct, iv, aad, tag)
}

// Format redacts like AESKey.Format.
func (o aesOperator) Format(f fmt.State, verb rune) { o.k.Format(f, verb) }
