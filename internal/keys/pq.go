package keys

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/fips140"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha3"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// Post-quantum keys (docs/POST-QUANTUM.md). They use the JOSE key type
// "AKP" (Algorithm Key Pair, RFC 9964 = draft-ietf-cose-dilithium-11): the
// parameter set is the JWK's "alg", the public key is "pub" and the private
// key is "priv", always in seed form.
const (
	KtyAKP = "AKP"

	AlgMLDSA44 = "ML-DSA-44"
	AlgMLDSA65 = "ML-DSA-65"
	AlgMLDSA87 = "ML-DSA-87"

	AlgMLKEM768  = "ML-KEM-768"
	AlgMLKEM1024 = "ML-KEM-1024"

	// AlgX25519MLKEM768 is Keyward's hybrid key-wrapping key: ML-KEM-768
	// and X25519 from one seed, the two shared secrets combined by
	// HKDF-SHA256 into an AES-256 key-wrapping key (wrapHybrid).
	AlgX25519MLKEM768 = "X25519MLKEM768"
)

type pqKind int

const (
	pqDSA pqKind = iota
	pqKEM
	pqHybrid
)

type pqParams struct {
	kind     pqKind
	seedSize int
	pubSize  int
	// ML-DSA
	scheme sign.Scheme
	signTo func(sk sign.PrivateKey, msg, sig []byte) error
	// ML-KEM: ciphertext size
	ctSize int
}

var pqAlgs = map[string]pqParams{
	AlgMLDSA44: {kind: pqDSA, seedSize: 32, pubSize: mldsa44.PublicKeySize, scheme: mldsa44.Scheme(),
		signTo: func(sk sign.PrivateKey, msg, sig []byte) error {
			return mldsa44.SignTo(sk.(*mldsa44.PrivateKey), msg, nil, true, sig)
		}},
	AlgMLDSA65: {kind: pqDSA, seedSize: 32, pubSize: mldsa65.PublicKeySize, scheme: mldsa65.Scheme(),
		signTo: func(sk sign.PrivateKey, msg, sig []byte) error {
			return mldsa65.SignTo(sk.(*mldsa65.PrivateKey), msg, nil, true, sig)
		}},
	AlgMLDSA87: {kind: pqDSA, seedSize: 32, pubSize: mldsa87.PublicKeySize, scheme: mldsa87.Scheme(),
		signTo: func(sk sign.PrivateKey, msg, sig []byte) error {
			return mldsa87.SignTo(sk.(*mldsa87.PrivateKey), msg, nil, true, sig)
		}},
	AlgMLKEM768:       {kind: pqKEM, seedSize: mlkem.SeedSize, pubSize: mlkem.EncapsulationKeySize768, ctSize: mlkem.CiphertextSize768},
	AlgMLKEM1024:      {kind: pqKEM, seedSize: mlkem.SeedSize, pubSize: mlkem.EncapsulationKeySize1024, ctSize: mlkem.CiphertextSize1024},
	AlgX25519MLKEM768: {kind: pqHybrid, seedSize: 32, pubSize: mlkem.EncapsulationKeySize768 + 32, ctSize: mlkem.CiphertextSize768 + 32},
}

// IsAKPAlgorithm reports whether alg names one of the AKP parameter sets.
func IsAKPAlgorithm(alg string) bool { _, ok := pqAlgs[alg]; return ok }

// IsMLDSA reports whether alg is an ML-DSA parameter set.
func IsMLDSA(alg string) bool { p, ok := pqAlgs[alg]; return ok && p.kind == pqDSA }

// IsMLKEM reports whether alg is an ML-KEM parameter set (not the hybrid).
func IsMLKEM(alg string) bool { p, ok := pqAlgs[alg]; return ok && p.kind == pqKEM }

// MaxSignMessage bounds the message ML-DSA signs or verifies (the Keys API
// carries the message itself, not a digest).
const MaxSignMessage = 64 << 10

// hybridInfo is the HKDF info label of the hybrid wrap (then ct_x ‖ pk_x).
const hybridInfo = "keyward X25519MLKEM768 wrap v1"

// PQKey is an immutable post-quantum key (AKP), private (seed) or public
// only. Printing it shows only its algorithm.
type PQKey struct {
	_ [0]func()

	alg  string
	p    pqParams
	seed []byte // nil: public only
	pub  []byte

	dsaPub  sign.PublicKey
	dsaPriv sign.PrivateKey

	ek768   *mlkem.EncapsulationKey768
	dk768   *mlkem.DecapsulationKey768
	ek1024  *mlkem.EncapsulationKey1024
	dk1024  *mlkem.DecapsulationKey1024
	xPub    *ecdh.PublicKey
	xPriv   *ecdh.PrivateKey
	xPubRaw []byte
}

// checkPQFIPS refuses what the Go FIPS 140-3 module cannot do in
// fips140=only mode: ML-DSA (implemented by circl, outside the module) and
// the hybrid (X25519 is not approved). ML-KEM (crypto/mlkem) is allowed.
func checkPQFIPS(alg string, p pqParams) error {
	if fips140.Enforced() && p.kind != pqKEM {
		return fmt.Errorf("%w: %s keys", ErrNotAllowedInFIPSMode, alg)
	}
	return nil
}

func pqParamsOf(alg string, errKind error) (pqParams, error) {
	p, ok := pqAlgs[alg]
	if !ok {
		if alg == "" {
			return p, fmt.Errorf("%w: an AKP key needs alg: one of %s", errKind, strings.Join(AKPAlgorithms(), ", "))
		}
		return p, fmt.Errorf("%w: unknown AKP algorithm %.20q", errKind, alg)
	}
	return p, checkPQFIPS(alg, p)
}

// AKPAlgorithms lists the AKP parameter sets, in a fixed order.
func AKPAlgorithms() []string {
	return []string{AlgMLDSA44, AlgMLDSA65, AlgMLDSA87, AlgMLKEM768, AlgMLKEM1024, AlgX25519MLKEM768}
}

// GeneratePQ creates a new AKP key from a fresh crypto/rand seed.
func GeneratePQ(alg string) (*PQKey, error) {
	p, err := pqParamsOf(alg, ErrBadParameter)
	if err != nil {
		return nil, err
	}
	seed := make([]byte, p.seedSize)
	if _, err := io.ReadFull(rand.Reader, seed); err != nil {
		return nil, fmt.Errorf("keys: generating %s key: %w", alg, err)
	}
	defer clear(seed)
	return newPQ(alg, p, seed)
}

// newPQ expands a seed (copied) into a key.
func newPQ(alg string, p pqParams, seed []byte) (*PQKey, error) {
	if len(seed) != p.seedSize {
		return nil, fmt.Errorf("%w: %s priv (seed) must be %d bytes", ErrBadKey, alg, p.seedSize)
	}
	k := &PQKey{alg: alg, p: p, seed: bytes.Clone(seed)}
	switch p.kind {
	case pqDSA:
		k.dsaPub, k.dsaPriv = p.scheme.DeriveKey(seed)
		pub, err := k.dsaPub.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("keys: %s public key: %w", alg, err)
		}
		k.pub = pub
	case pqKEM:
		if err := k.setKEM(seed); err != nil {
			return nil, err
		}
	case pqHybrid:
		x := make([]byte, 96)
		defer clear(x)
		h := sha3.NewSHAKE256()
		h.Write(seed)
		h.Read(x)
		if err := k.setKEM(x[:64]); err != nil {
			return nil, err
		}
		xp, err := ecdh.X25519().NewPrivateKey(x[64:])
		if err != nil {
			return nil, fmt.Errorf("keys: %s X25519 key: %w", alg, err)
		}
		k.xPriv, k.xPub = xp, xp.PublicKey()
		k.xPubRaw = k.xPub.Bytes()
		k.pub = append(k.pub, k.xPubRaw...)
	}
	return k, nil
}

// setKEM sets the ML-KEM part from a 64-byte seed d‖z: ML-KEM-768 for
// ML-KEM-768 and the hybrid, ML-KEM-1024 otherwise.
func (k *PQKey) setKEM(seed []byte) error {
	if k.alg == AlgMLKEM1024 {
		dk, err := mlkem.NewDecapsulationKey1024(seed)
		if err != nil {
			return fmt.Errorf("%w: %s seed", ErrBadKey, k.alg)
		}
		k.dk1024, k.ek1024 = dk, dk.EncapsulationKey()
		k.pub = k.ek1024.Bytes()
		return nil
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return fmt.Errorf("%w: %s seed", ErrBadKey, k.alg)
	}
	k.dk768, k.ek768 = dk, dk.EncapsulationKey()
	k.pub = k.ek768.Bytes()
	return nil
}

// newPQPublic parses a public key of exactly the parameter set's size.
func newPQPublic(alg string, p pqParams, pub []byte) (*PQKey, error) {
	if len(pub) != p.pubSize {
		return nil, fmt.Errorf("%w: %s pub must be %d bytes", ErrBadKey, alg, p.pubSize)
	}
	k := &PQKey{alg: alg, p: p, pub: bytes.Clone(pub)}
	var err error
	switch p.kind {
	case pqDSA:
		k.dsaPub, err = p.scheme.UnmarshalBinaryPublicKey(pub)
	case pqKEM:
		if alg == AlgMLKEM1024 {
			k.ek1024, err = mlkem.NewEncapsulationKey1024(pub)
		} else {
			k.ek768, err = mlkem.NewEncapsulationKey768(pub)
		}
	case pqHybrid:
		n := mlkem.EncapsulationKeySize768
		if k.ek768, err = mlkem.NewEncapsulationKey768(pub[:n]); err == nil {
			k.xPub, err = ecdh.X25519().NewPublicKey(pub[n:])
			k.xPubRaw = k.pub[n:]
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s pub is not a valid public key", ErrBadKey, alg)
	}
	return k, nil
}

// PQFromJWK imports an AKP JWK: alg names the parameter set; priv is the
// seed (32 bytes for ML-DSA and the hybrid, 64 = d‖z for ML-KEM); pub, when
// given with priv, must equal the public key the seed expands to. Without
// priv the key is public-only and pub is required. Fields of other key
// types are refused. Errors wrap [ErrBadKey] or [ErrNotAllowedInFIPSMode].
func PQFromJWK(j JWK) (*PQKey, error) {
	if j.Kty != KtyAKP {
		return nil, fmt.Errorf("%w: unsupported key type %.20q", ErrBadKey, j.Kty)
	}
	if j.Crv != "" || len(j.N)+len(j.E)+len(j.D)+len(j.DP)+len(j.DQ)+len(j.QI)+len(j.P)+len(j.Q)+len(j.K)+len(j.X)+len(j.Y) != 0 {
		return nil, fmt.Errorf("%w: AKP JWK with RSA, EC or oct fields", ErrBadKey)
	}
	p, err := pqParamsOf(j.Alg, ErrBadKey)
	if err != nil {
		return nil, err
	}
	if len(j.Priv) == 0 {
		if len(j.Pub) == 0 {
			return nil, fmt.Errorf("%w: AKP JWK needs pub or priv", ErrBadKey)
		}
		return newPQPublic(j.Alg, p, j.Pub)
	}
	k, err := newPQ(j.Alg, p, j.Priv)
	if err != nil {
		return nil, err
	}
	if len(j.Pub) != 0 && !bytes.Equal(j.Pub, k.pub) {
		k.wipe()
		return nil, fmt.Errorf("%w: %s pub does not match priv", ErrBadKey, j.Alg)
	}
	return k, nil
}

func (k *PQKey) wipe() { clear(k.seed) }

// Alg returns the key's parameter set.
func (k *PQKey) Alg() string { return k.alg }

// HasPrivate reports whether the key has its seed.
func (k *PQKey) HasPrivate() bool { return k.seed != nil }

// Public returns the public JWK: kty AKP, alg, pub.
func (k *PQKey) Public() JWK { return JWK{Kty: KtyAKP, Alg: k.alg, Pub: bytes.Clone(k.pub)} }

func (k *PQKey) describe() string {
	s := "[keys.PQKey " + k.alg
	if !k.HasPrivate() {
		s += " public"
	}
	return s + "]"
}

// Format redacts the key for every verb.
func (k PQKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.describe()) }

// LogValue redacts the key in structured logs.
func (k PQKey) LogValue() slog.Value { return slog.StringValue(k.describe()) }

// MarshalJSON always fails; use Public or MarshalPrivate.
func (PQKey) MarshalJSON() ([]byte, error) {
	return nil, errors.New("keys: a PQKey cannot be marshalled to JSON; use Public or MarshalPrivate")
}

// pqHandlePrefix marks a stored AKP key handle: prefix ‖ alg ‖ ":" ‖ seed.
var pqHandlePrefix = []byte("KWAKP1:")

// MarshalPrivate returns the sealed-storage form (the seed and its alg).
func (k *PQKey) MarshalPrivate() ([]byte, error) {
	if !k.HasPrivate() {
		return nil, fmt.Errorf("%w: cannot marshal a public key", ErrNoPrivateKey)
	}
	out := append(bytes.Clone(pqHandlePrefix), k.alg...)
	out = append(out, ':')
	return append(out, k.seed...), nil
}

// ParsePQ parses what MarshalPrivate returned.
func ParsePQ(h []byte) (*PQKey, error) {
	rest, ok := bytes.CutPrefix(h, pqHandlePrefix)
	if !ok {
		return nil, fmt.Errorf("%w: not an AKP key handle", ErrBadKey)
	}
	alg, seed, ok := bytes.Cut(rest, []byte{':'})
	if !ok {
		return nil, fmt.Errorf("%w: malformed AKP key handle", ErrBadKey)
	}
	p, err := pqParamsOf(string(alg), ErrBadKey)
	if err != nil {
		return nil, err
	}
	return newPQ(string(alg), p, seed)
}

func (k *PQKey) checkAlg(alg string, kind pqKind, op string) error {
	if alg != k.alg || k.p.kind != kind {
		return fmt.Errorf("%w: %.20s %s with %s", ErrUnsupportedAlgorithm, alg, op, k.describe())
	}
	return checkPQFIPS(alg, k.p)
}

// Sign signs a message (not a digest) with ML-DSA as FIPS 204 Algorithm 2
// (ML-DSA.Sign, hedged: fresh randomness from crypto/rand) with an empty
// context string, as RFC 9964 uses it. alg must be the key's alg.
func (k *PQKey) Sign(alg string, msg []byte) ([]byte, error) {
	if err := k.checkAlg(alg, pqDSA, "signature"); err != nil {
		return nil, err
	}
	if len(msg) > MaxSignMessage {
		return nil, fmt.Errorf("%w: %s signs at most %d bytes", ErrBadParameter, alg, MaxSignMessage)
	}
	if !k.HasPrivate() {
		return nil, fmt.Errorf("%w: cannot sign", ErrNoPrivateKey)
	}
	sig := make([]byte, k.p.scheme.SignatureSize())
	if err := k.p.signTo(k.dsaPriv, msg, sig); err != nil {
		return nil, fmt.Errorf("keys: %s signature failed: %w", alg, err)
	}
	return sig, nil
}

// Verify reports whether sig is a valid ML-DSA signature of msg (empty
// context). A wrong signature of any length is (false, nil).
func (k *PQKey) Verify(alg string, msg, sig []byte) (bool, error) {
	if err := k.checkAlg(alg, pqDSA, "signature"); err != nil {
		return false, err
	}
	if len(msg) > MaxSignMessage {
		return false, fmt.Errorf("%w: %s verifies at most %d bytes", ErrBadParameter, alg, MaxSignMessage)
	}
	if len(sig) != k.p.scheme.SignatureSize() {
		return false, nil
	}
	return k.p.scheme.Verify(k.dsaPub, msg, sig, nil), nil
}

// Encapsulate runs ML-KEM.Encaps with the key's encapsulation key and
// returns the 32-byte shared secret and the ciphertext.
func (k *PQKey) Encapsulate(alg string) (sharedSecret, ciphertext []byte, err error) {
	if err := k.checkAlg(alg, pqKEM, "encapsulation"); err != nil {
		return nil, nil, err
	}
	if k.ek1024 != nil {
		ss, ct := k.ek1024.Encapsulate()
		return ss, ct, nil
	}
	ss, ct := k.ek768.Encapsulate()
	return ss, ct, nil
}

// Decapsulate runs ML-KEM.Decaps. A ciphertext of the right length always
// gives a shared secret (ML-KEM's implicit rejection: a tampered one gives
// an unrelated secret); a wrong length is ErrBadParameter.
func (k *PQKey) Decapsulate(alg string, ciphertext []byte) ([]byte, error) {
	if err := k.checkAlg(alg, pqKEM, "decapsulation"); err != nil {
		return nil, err
	}
	if !k.HasPrivate() {
		return nil, fmt.Errorf("%w: cannot decapsulate", ErrNoPrivateKey)
	}
	if len(ciphertext) != k.p.ctSize {
		return nil, fmt.Errorf("%w: %s ciphertext must be %d bytes, got %d", ErrBadParameter, alg, k.p.ctSize, len(ciphertext))
	}
	var (
		ss  []byte
		err error
	)
	if k.dk1024 != nil {
		ss, err = k.dk1024.Decapsulate(ciphertext)
	} else {
		ss, err = k.dk768.Decapsulate(ciphertext)
	}
	if err != nil {
		return nil, ErrDecryption
	}
	return ss, nil
}

// Hybrid wrap bounds: the data key is 16 to 1024 bytes.
const (
	minHybridWrap = 16
	maxHybridWrap = 1024
)

// WrapKey wraps a data key with the hybrid (alg X25519MLKEM768):
//
//	(ss_m, ct_m) = ML-KEM-768.Encaps(ek)                 ct_m 1088 bytes
//	e random X25519 scalar; ct_x = X25519(e, 9)          32 bytes
//	ss_x = X25519(e, pk_x)                               32 bytes
//	kek  = HKDF-SHA256(ikm = ss_m ‖ ss_x, salt = none,
//	                   info = "keyward X25519MLKEM768 wrap v1" ‖ ct_x ‖ pk_x, 32 bytes)
//	out  = ct_m ‖ ct_x ‖ AES-256-KWP(kek, key)           RFC 5649
func (k *PQKey) WrapKey(alg string, key []byte) ([]byte, error) {
	if err := k.checkAlg(alg, pqHybrid, "wrap"); err != nil {
		return nil, err
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("keys: %s ephemeral key: %w", alg, err)
	}
	ssM, ctM := k.ek768.Encapsulate()
	return k.wrapHybrid(key, ssM, ctM, eph)
}

// wrapHybrid is WrapKey with its randomness given (known-answer tests).
func (k *PQKey) wrapHybrid(key, ssM, ctM []byte, eph *ecdh.PrivateKey) ([]byte, error) {
	defer clear(ssM)
	if len(key) < minHybridWrap || len(key) > maxHybridWrap {
		return nil, fmt.Errorf("%w: %s wraps a key of %d to %d bytes", ErrBadParameter, k.alg, minHybridWrap, maxHybridWrap)
	}
	ssX, err := eph.ECDH(k.xPub)
	if err != nil {
		return nil, fmt.Errorf("keys: %s X25519: %w", k.alg, err)
	}
	defer clear(ssX)
	ctX := eph.PublicKey().Bytes()
	kek, err := hybridKEK(ssM, ssX, ctX, k.xPubRaw)
	if err != nil {
		return nil, err
	}
	w, err := kek.wrap(aesAlg{mode: modeKWP}, key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(ctM)+len(ctX)+len(w))
	return append(append(append(out, ctM...), ctX...), w...), nil
}

func hybridKEK(ssM, ssX, ctX, pkX []byte) (*AESKey, error) {
	ikm := append(append(make([]byte, 0, 64), ssM...), ssX...)
	defer clear(ikm)
	info := append(append([]byte(hybridInfo), ctX...), pkX...)
	kb, err := hkdf.Key(sha256.New, ikm, nil, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("keys: hybrid KDF: %w", err)
	}
	defer clear(kb)
	return NewAES(kb)
}

// UnwrapKey reverses WrapKey; every failure that depends on the wrapped
// bytes is ErrDecryption.
func (k *PQKey) UnwrapKey(alg string, wrapped []byte) ([]byte, error) {
	if err := k.checkAlg(alg, pqHybrid, "unwrap"); err != nil {
		return nil, err
	}
	if !k.HasPrivate() {
		return nil, fmt.Errorf("%w: cannot unwrap", ErrNoPrivateKey)
	}
	nm := mlkem.CiphertextSize768
	if len(wrapped) < nm+32+minHybridWrap+8 || len(wrapped) > nm+32+maxHybridWrap+16 {
		return nil, ErrDecryption
	}
	ssM, err := k.dk768.Decapsulate(wrapped[:nm])
	if err != nil {
		return nil, ErrDecryption
	}
	defer clear(ssM)
	ctX := wrapped[nm : nm+32]
	ep, err := ecdh.X25519().NewPublicKey(ctX)
	if err != nil {
		return nil, ErrDecryption
	}
	ssX, err := k.xPriv.ECDH(ep)
	if err != nil {
		return nil, ErrDecryption // an all-zero shared secret (low-order point)
	}
	defer clear(ssX)
	kek, err := hybridKEK(ssM, ssX, ctX, k.xPubRaw)
	if err != nil {
		return nil, err
	}
	out, err := kek.unwrap(aesAlg{mode: modeKWP}, wrapped[nm+32:])
	if err != nil || len(out) < minHybridWrap {
		clear(out)
		return nil, ErrDecryption
	}
	return out, nil
}

// pqOperator adapts a *PQKey to Operator and KEMOperator.
type pqOperator struct{ k *PQKey }

// KEMOperator is implemented by loaded ML-KEM keys.
type KEMOperator interface {
	Encapsulate(ctx context.Context, alg string) (sharedSecret, ciphertext []byte, err error)
	Decapsulate(ctx context.Context, alg string, ciphertext []byte) ([]byte, error)
}

var (
	_ Operator    = pqOperator{}
	_ KEMOperator = pqOperator{}
)

func (o pqOperator) Public() JWK { return o.k.Public() }

func (o pqOperator) Sign(ctx context.Context, alg string, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.Sign(alg, msg)
}

func (o pqOperator) Verify(ctx context.Context, alg string, msg, sig []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return o.k.Verify(alg, msg, sig)
}

func (o pqOperator) Encrypt(_ context.Context, alg string, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("%w: %.20s encryption with %s", ErrUnsupportedAlgorithm, alg, o.k.describe())
}

func (o pqOperator) Decrypt(_ context.Context, alg string, _ []byte) ([]byte, error) {
	return nil, fmt.Errorf("%w: %.20s decryption with %s", ErrUnsupportedAlgorithm, alg, o.k.describe())
}

func (o pqOperator) WrapKey(ctx context.Context, alg string, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.WrapKey(alg, key)
}

func (o pqOperator) UnwrapKey(ctx context.Context, alg string, w []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.UnwrapKey(alg, w)
}

func (o pqOperator) Encapsulate(ctx context.Context, alg string) ([]byte, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return o.k.Encapsulate(alg)
}

func (o pqOperator) Decapsulate(ctx context.Context, alg string, ct []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.Decapsulate(alg, ct)
}

// Format redacts like PQKey.Format.
func (o pqOperator) Format(f fmt.State, verb rune) { o.k.Format(f, verb) }
