package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	_ "crypto/sha512" // registers SHA-384/512 for PS384/PS512
	"fmt"
	"hash"
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// Algorithm names, as Key Vault spells them (AZURE-API.md §4).
const (
	AlgRSA15      = "RSA1_5"
	AlgRSAOAEP    = "RSA-OAEP"
	AlgRSAOAEP256 = "RSA-OAEP-256"

	AlgRS256  = "RS256"
	AlgRS384  = "RS384"
	AlgRS512  = "RS512"
	AlgPS256  = "PS256"
	AlgPS384  = "PS384"
	AlgPS512  = "PS512"
	AlgES256  = "ES256"
	AlgES256K = "ES256K"
	AlgES384  = "ES384"
	AlgES512  = "ES512"
)

type sigKind int

const (
	sigPKCS1 sigKind = iota
	sigPSS
	sigECDSA
)

type sigAlg struct {
	kind  sigKind
	hash  crypto.Hash
	curve string // ECDSA: the only curve the algorithm works with
}

var sigAlgs = map[string]sigAlg{
	AlgRS256:  {sigPKCS1, crypto.SHA256, ""},
	AlgRS384:  {sigPKCS1, crypto.SHA384, ""},
	AlgRS512:  {sigPKCS1, crypto.SHA512, ""},
	AlgPS256:  {sigPSS, crypto.SHA256, ""},
	AlgPS384:  {sigPSS, crypto.SHA384, ""},
	AlgPS512:  {sigPSS, crypto.SHA512, ""},
	AlgES256:  {sigECDSA, crypto.SHA256, CurveP256},
	AlgES256K: {sigECDSA, crypto.SHA256, CurveP256K},
	AlgES384:  {sigECDSA, crypto.SHA384, CurveP384},
	AlgES512:  {sigECDSA, crypto.SHA512, CurveP521},
}

type encAlg struct {
	newHash  func() hash.Hash // nil for RSA1_5
	overhead int              // bytes of padding: plaintext ≤ k - overhead
	approved bool             // FIPS 140-3 approved
}

var encAlgs = map[string]encAlg{
	AlgRSA15:      {nil, 11, false},
	AlgRSAOAEP:    {sha1.New, 2*sha1.Size + 2, false},
	AlgRSAOAEP256: {sha256.New, 2*sha256.Size + 2, true},
}

// checkFIPS refuses non-approved algorithms or keys in FIPS 140-only mode.
// It runs before any call into crypto: some stdlib functions panic there.
func (k *Key) checkFIPS(alg string, approvedAlg bool) error {
	if fips140.Enforced() && (!approvedAlg || !k.approved) {
		return fmt.Errorf("%w: %s with %s", ErrNotAllowedInFIPSMode, alg, k.describe())
	}
	return nil
}

// sigParams validates a sign or verify request up to the digest length.
func (k *Key) sigParams(alg string, digest []byte) (sigAlg, error) {
	a, ok := sigAlgs[alg]
	switch {
	case !ok:
		return a, fmt.Errorf("%w: unknown signature algorithm %.20q", ErrUnsupportedAlgorithm, alg)
	case (a.kind == sigECDSA) != (k.kty == KtyEC), a.kind == sigECDSA && a.curve != k.crv:
		return a, fmt.Errorf("%w: %s with %s", ErrUnsupportedAlgorithm, alg, k.describe())
	}
	if err := k.checkFIPS(alg, a.curve != CurveP256K); err != nil {
		return a, err
	}
	if len(digest) != a.hash.Size() {
		return a, fmt.Errorf("%w: %s needs a %d-byte digest, got %d bytes", ErrBadParameter, alg, a.hash.Size(), len(digest))
	}
	return a, nil
}

// Sign signs a digest (not a message). RS* use PKCS #1 v1.5, PS* use PSS
// with a salt as long as the hash, ES* return r‖s, each left-padded to the
// curve size (64, 96 or 132 bytes; ES256K signatures are low-S).
func (k *Key) Sign(alg string, digest []byte) ([]byte, error) {
	a, err := k.sigParams(alg, digest)
	if err != nil {
		return nil, err
	}
	if !k.HasPrivate() {
		return nil, fmt.Errorf("%w: cannot sign", ErrNoPrivateKey)
	}
	var sig []byte
	switch {
	case a.kind == sigPKCS1:
		sig, err = rsa.SignPKCS1v15(nil, k.rsaPriv, a.hash, digest)
	case a.kind == sigPSS:
		sig, err = rsa.SignPSS(rand.Reader, k.rsaPriv, a.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case k.k1Priv != nil:
		s := k1ecdsa.Sign(k.k1Priv, digest)
		r, ss := s.R(), s.S()
		sig = make([]byte, 64)
		r.PutBytesUnchecked(sig[:32])
		ss.PutBytesUnchecked(sig[32:])
	default:
		var r, s *big.Int
		r, s, err = ecdsa.Sign(rand.Reader, k.ecPriv, digest)
		if err == nil {
			n := curves[k.crv].size
			sig = make([]byte, 2*n)
			r.FillBytes(sig[:n])
			s.FillBytes(sig[n:])
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s signature failed: %w", alg, err)
	}
	return sig, nil
}

// CheckSign returns the error Sign or Verify would return for alg and
// digest before any cryptography (unknown or mismatched alg, wrong digest
// length, FIPS refusal): a backend that signs elsewhere (a PKCS#11 token)
// validates a request exactly as the software path does, for free.
func (k *Key) CheckSign(alg string, digest []byte) error {
	_, err := k.sigParams(alg, digest)
	return err
}

// Verify reports whether sig is a valid alg signature of digest. A wrong
// signature, including one of the wrong length or with out-of-range values,
// is (false, nil); errors are only for requests that cannot be evaluated
// (unknown or mismatched alg, wrong digest length, FIPS refusal).
func (k *Key) Verify(alg string, digest, sig []byte) (bool, error) {
	a, err := k.sigParams(alg, digest)
	if err != nil {
		return false, err
	}
	switch {
	case a.kind == sigPKCS1:
		return rsa.VerifyPKCS1v15(k.rsaPub, a.hash, digest, sig) == nil, nil
	case a.kind == sigPSS:
		return rsa.VerifyPSS(k.rsaPub, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
	case k.k1Pub != nil:
		if len(sig) != 64 {
			return false, nil
		}
		var r, s secp256k1.ModNScalar
		if r.SetByteSlice(sig[:32]) || s.SetByteSlice(sig[32:]) {
			return false, nil // r or s ≥ n
		}
		return k1ecdsa.NewSignature(&r, &s).Verify(digest, k.k1Pub), nil
	default:
		n := curves[k.crv].size
		if len(sig) != 2*n {
			return false, nil
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(k.ecPub, digest, r, s), nil
	}
}

// encParams validates an encrypt or decrypt request.
func (k *Key) encParams(alg string) (encAlg, error) {
	a, ok := encAlgs[alg]
	if !ok {
		return a, fmt.Errorf("%w: unknown encryption algorithm %.20q", ErrUnsupportedAlgorithm, alg)
	}
	if k.kty != KtyRSA {
		return a, fmt.Errorf("%w: %s with %s", ErrUnsupportedAlgorithm, alg, k.describe())
	}
	return a, k.checkFIPS(alg, a.approved)
}

// Encrypt encrypts plaintext with the public key: RSA1_5 (at most k-11
// bytes), RSA-OAEP (SHA-1, k-42) or RSA-OAEP-256 (k-66), empty OAEP label.
func (k *Key) Encrypt(alg string, plaintext []byte) ([]byte, error) {
	a, err := k.encParams(alg)
	if err != nil {
		return nil, err
	}
	if limit := k.rsaPub.Size() - a.overhead; len(plaintext) > limit {
		return nil, fmt.Errorf("%w: %s with %s takes at most %d bytes, got %d", ErrBadParameter, alg, k.describe(), limit, len(plaintext))
	}
	var ct []byte
	if a.newHash == nil {
		ct, err = rsa.EncryptPKCS1v15(rand.Reader, k.rsaPub, plaintext)
	} else {
		ct, err = rsa.EncryptOAEP(a.newHash(), rand.Reader, k.rsaPub, plaintext, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s encryption failed: %w", alg, err) // crypto/rsa errors carry no data
	}
	return ct, nil
}

// Decrypt decrypts ciphertext with the private key. Every failure that
// depends on the ciphertext returns exactly [ErrDecryption]; see the package
// doc for the RSA1_5 padding-oracle decision.
func (k *Key) Decrypt(alg string, ciphertext []byte) ([]byte, error) {
	a, err := k.encParams(alg)
	if err != nil {
		return nil, err
	}
	if k.rsaPriv == nil {
		return nil, fmt.Errorf("%w: cannot decrypt", ErrNoPrivateKey)
	}
	var pt []byte
	if a.newHash == nil {
		pt, err = rsa.DecryptPKCS1v15(nil, k.rsaPriv, ciphertext)
	} else {
		pt, err = rsa.DecryptOAEP(a.newHash(), nil, k.rsaPriv, ciphertext, nil)
	}
	if err != nil {
		return nil, ErrDecryption
	}
	return pt, nil
}

// WrapKey encrypts key material; for RSA keys Key Vault's wrapKey is Encrypt
// with the same algorithms and limits.
func (k *Key) WrapKey(alg string, key []byte) ([]byte, error) { return k.Encrypt(alg, key) }

// UnwrapKey reverses WrapKey; every ciphertext failure is [ErrDecryption].
func (k *Key) UnwrapKey(alg string, wrapped []byte) ([]byte, error) { return k.Decrypt(alg, wrapped) }
