package keys

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Errors returned by this package, usable with errors.Is. Returned errors
// wrap one of them and add context that never includes key material.
var (
	// ErrBadKey means key material or key parameters are invalid or
	// unsupported (import, parse).
	ErrBadKey = errors.New("keys: invalid key")
	// ErrBadParameter means a request is malformed: bad spec, wrong digest
	// length, plaintext too long.
	ErrBadParameter = errors.New("keys: invalid parameter")
	// ErrUnsupportedAlgorithm means the algorithm is unknown or not valid for
	// the key's type or curve.
	ErrUnsupportedAlgorithm = errors.New("keys: algorithm not supported by this key")
	// ErrDecryption is the one error for every decrypt or unwrap failure that
	// depends on the ciphertext (see the package doc on padding oracles).
	ErrDecryption = errors.New("keys: decryption failed")
	// ErrNotAllowedInFIPSMode means the operation is refused because
	// crypto/fips140.Enforced() reports true (GODEBUG=fips140=only).
	ErrNotAllowedInFIPSMode = errors.New("keys: not allowed in FIPS 140-only mode")
	// ErrNoPrivateKey means the operation needs a private key and the key is
	// public-only.
	ErrNoPrivateKey = errors.New("keys: key has no private part")
)

// Key types and curve names, as Key Vault spells them (AZURE-API.md §4).
// The vault layer strips the "-HSM" suffix before calling this package.
const (
	KtyRSA = "RSA"
	KtyEC  = "EC"

	CurveP256  = "P-256"
	CurveP256K = "P-256K" // secp256k1
	CurveP384  = "P-384"
	CurveP521  = "P-521"
)

// Spec describes a key to generate.
type Spec struct {
	Kty            string // KtyRSA, KtyEC, or KtyOct (Software protector only; Size in bits 128, 192, 256)
	Size           int    // RSA: 2048 (default when 0), 3072 or 4096; EC: 0
	PublicExponent int    // RSA: 65537 (default when 0); the only value Go generates
	Curve          string // EC: CurveP256 (default when ""), CurveP256K, CurveP384 or CurveP521
	Alg            string // AKP: the parameter set (AlgMLDSA44 ... AlgX25519MLKEM768; pq.go)

	// The fields below are for protectors that keep keys outside this
	// process (an HSM); Generate and [Software] ignore them.

	// ID names the key's objects in the protector: the key version ID
	// (an HSM stores its ASCII bytes as CKA_ID).
	ID string
	// Usage holds the key_ops the key is created with; an HSM sets its
	// objects' usage flags from them (zero: every operation of the type).
	Usage Usage
	// Exportable makes an HSM key extractable (CKA_EXTRACTABLE), for
	// secure key release; it is never extractable otherwise.
	Exportable bool
}

// Usage is a set of key operations (key_ops), comparable so a Spec is.
type Usage uint16

// The key operations of a Usage. UsageGiven marks a set made from a
// key_ops list, so an empty list differs from none given.
const (
	UsageGiven Usage = 1 << iota
	UsageSign
	UsageVerify
	UsageEncrypt
	UsageDecrypt
	UsageWrapKey
	UsageUnwrapKey
	UsageImport
	UsageExport
)

var usageNames = map[string]Usage{"sign": UsageSign, "verify": UsageVerify, "encrypt": UsageEncrypt,
	"decrypt": UsageDecrypt, "wrapKey": UsageWrapKey, "unwrapKey": UsageUnwrapKey, "import": UsageImport, "export": UsageExport}

// UsageOf returns the Usage of a key_ops list (unknown names are ignored;
// nil gives the zero Usage).
func UsageOf(ops []string) Usage {
	if ops == nil {
		return 0
	}
	u := UsageGiven
	for _, op := range ops {
		u |= usageNames[op]
	}
	return u
}

// Has reports whether the operation named op is in u.
func (u Usage) Has(op string) bool { return u&usageNames[op] != 0 }

// JWK is a JSON Web Key (RFC 7517/7518) with raw big-endian byte fields; the
// wire layer base64url-encodes them. KeyOps is carried for the caller's
// convenience: this package ignores it and [Key.Public] leaves it nil.
type JWK struct {
	Kty, Crv string
	KeyOps   []string

	N, E, D, DP, DQ, QI, P, Q []byte // RSA
	K                         []byte // oct: never accepted here
	X, Y                      []byte // EC (D is shared with RSA)

	Alg       string // AKP: the parameter set (RFC 9964 "alg")
	Pub, Priv []byte // AKP: public key, private seed
}

// Key is an immutable parsed key, private or public-only. It is safe for
// concurrent use. Printing it with any fmt verb or slog shows only its type
// and size, and json.Marshal refuses it.
type Key struct {
	_ [0]func() // not comparable: == on key material is not constant time

	kty  string
	crv  string // EC only
	bits int

	// Exactly one public key is set; the matching private key may be nil.
	rsaPub  *rsa.PublicKey
	rsaPriv *rsa.PrivateKey
	ecPub   *ecdsa.PublicKey
	ecPriv  *ecdsa.PrivateKey
	k1Pub   *secp256k1.PublicKey
	k1Priv  *secp256k1.PrivateKey
	point   []byte // EC: uncompressed public point 04‖x‖y, fixed length

	// approved reports whether the key's parameters are FIPS 186-5 approved
	// (not secp256k1, RSA e > 2^16, even modulus size).
	approved bool
}

type curveInfo struct {
	curve elliptic.Curve // nil for P-256K
	bits  int
	size  int // bytes per coordinate, scalar and signature half
}

var curves = map[string]curveInfo{
	CurveP256:  {elliptic.P256(), 256, 32},
	CurveP256K: {nil, 256, 32},
	CurveP384:  {elliptic.P384(), 384, 48},
	CurveP521:  {elliptic.P521(), 521, 66},
}

// RSA import bounds. Generation only produces 2048, 3072 and 4096 bits.
const (
	minRSABits = 2048
	maxRSABits = 4096
	maxRSALen  = maxRSABits/8 + 1 // one leading zero byte tolerated
)

// Generate creates a new key. Randomness always comes from crypto/rand.
func Generate(spec Spec) (*Key, error) {
	switch spec.Kty {
	case KtyRSA:
		if spec.Curve != "" {
			return nil, fmt.Errorf("%w: curve given for an RSA key", ErrBadParameter)
		}
		size := spec.Size
		if size == 0 {
			size = 2048
		}
		if size != 2048 && size != 3072 && size != 4096 {
			return nil, fmt.Errorf("%w: RSA key size %d, want 2048, 3072 or 4096", ErrBadParameter, spec.Size)
		}
		if spec.PublicExponent != 0 && spec.PublicExponent != 65537 {
			return nil, fmt.Errorf("%w: RSA public exponent %d, only 65537 is supported", ErrBadParameter, spec.PublicExponent)
		}
		priv, err := rsa.GenerateKey(rand.Reader, size)
		if err != nil {
			return nil, fmt.Errorf("keys: generating RSA key: %w", err)
		}
		return newRSA(priv, &priv.PublicKey)
	case KtyEC:
		if spec.Size != 0 || spec.PublicExponent != 0 {
			return nil, fmt.Errorf("%w: size or public exponent given for an EC key", ErrBadParameter)
		}
		crv := spec.Curve
		if crv == "" {
			crv = CurveP256
		}
		ci, ok := curves[crv]
		if !ok {
			return nil, fmt.Errorf("%w: unknown curve %.20q", ErrBadParameter, spec.Curve)
		}
		if ci.curve == nil {
			if fips140.Enforced() {
				return nil, fmt.Errorf("%w: P-256K keys", ErrNotAllowedInFIPSMode)
			}
			priv, err := secp256k1.GeneratePrivateKey()
			if err != nil {
				return nil, fmt.Errorf("keys: generating P-256K key: %w", err)
			}
			return newK1(priv, priv.PubKey()), nil
		}
		priv, err := ecdsa.GenerateKey(ci.curve, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("keys: generating %s key: %w", crv, err)
		}
		return newECDSA(crv, priv, &priv.PublicKey)
	default:
		return nil, fmt.Errorf("%w: unsupported key type %.20q", ErrBadParameter, spec.Kty)
	}
}

// FromJWK imports a key. Every parameter is validated: RSA sizes (2048 to
// 4096 bits), exponent (odd, 3 to 2^31-1), and for private keys the full CRT
// consistency (p·q = n, d, dp, dq, qi); EC coordinate and scalar lengths
// (exactly the curve size), that the point is on the curve, and that d is in
// range and matches x, y. Empty fields count as absent. A JWK without d
// imports as a public-only key. A private RSA JWK must carry p and q, of
// about half the modulus size each (dp, dq, qi are computed if all three are
// absent). Fields of another key type are refused. KeyOps is ignored. Errors
// wrap [ErrBadKey], or [ErrNotAllowedInFIPSMode] for keys refused in FIPS
// 140-only mode.
func FromJWK(j JWK) (*Key, error) {
	var (
		k   *Key
		err error
	)
	switch j.Kty {
	case KtyRSA:
		k, err = rsaFromJWK(j)
	case KtyEC:
		k, err = ecFromJWK(j)
	default:
		return nil, fmt.Errorf("%w: unsupported key type %.20q", ErrBadKey, j.Kty)
	}
	if err != nil {
		return nil, err
	}
	if fips140.Enforced() && !k.approved {
		return nil, fmt.Errorf("%w: %s key parameters are not approved", ErrNotAllowedInFIPSMode, k.describe())
	}
	return k, nil
}

func rsaFromJWK(j JWK) (*Key, error) {
	if j.Crv != "" || len(j.X) != 0 || len(j.Y) != 0 || len(j.K) != 0 || len(j.Pub)+len(j.Priv) != 0 {
		return nil, fmt.Errorf("%w: RSA JWK with EC, oct or AKP fields", ErrBadKey)
	}
	for _, f := range [][]byte{j.N, j.E, j.D, j.P, j.Q, j.DP, j.DQ, j.QI} {
		if len(f) > maxRSALen {
			return nil, fmt.Errorf("%w: RSA parameter too long", ErrBadKey)
		}
	}
	if len(j.E) > 4 {
		return nil, fmt.Errorf("%w: RSA public exponent too large", ErrBadKey)
	}
	var e uint64
	for _, b := range j.E {
		e = e<<8 | uint64(b)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e)}
	if err := checkRSAPublic(pub); err != nil {
		return nil, err
	}
	hasCRT := len(j.DP) != 0 || len(j.DQ) != 0 || len(j.QI) != 0
	if len(j.D) == 0 && len(j.P) == 0 && len(j.Q) == 0 && !hasCRT {
		return newRSA(nil, pub)
	}
	if len(j.D) == 0 || len(j.P) == 0 || len(j.Q) == 0 {
		return nil, fmt.Errorf("%w: RSA private key needs d, p and q", ErrBadKey)
	}
	if hasCRT && (len(j.DP) == 0 || len(j.DQ) == 0 || len(j.QI) == 0) {
		return nil, fmt.Errorf("%w: RSA private key has some but not all of dp, dq, qi", ErrBadKey)
	}
	priv := &rsa.PrivateKey{
		PublicKey: *pub,
		D:         new(big.Int).SetBytes(j.D),
		Primes:    []*big.Int{new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)},
	}
	// p·q = n needs bitlen(p) + bitlen(q) ∈ {bits, bits+1}. Also require
	// roughly balanced primes: computing qi for a huge p costs up to 8× a
	// real key's import, and every sane key generator balances them.
	bits, pb, qb := pub.N.BitLen(), priv.Primes[0].BitLen(), priv.Primes[1].BitLen()
	if pb+qb != bits && pb+qb != bits+1 || pb-qb > 64 || qb-pb > 64 {
		return nil, fmt.Errorf("%w: RSA primes do not fit the modulus size", ErrBadKey)
	}
	// The CRT values are derived from d, p, q (which checks d) and the given
	// ones must equal them. Handing them to crypto/rsa instead would depend
	// on the FIPS module version: v1.0.0 (GOFIPS140=v1.0.0) does not check d
	// against dp, dq, and would store a d that later Go versions reject.
	k, err := newRSA(priv, &priv.PublicKey)
	if err != nil {
		return nil, err
	}
	if hasCRT {
		pc := k.rsaPriv.Precomputed
		if !equalSecret(pc.Dp, j.DP) || !equalSecret(pc.Dq, j.DQ) || !equalSecret(pc.Qinv, j.QI) {
			return nil, fmt.Errorf("%w: RSA dp, dq or qi does not match d, p, q", ErrBadKey)
		}
	}
	return k, nil
}

// equalSecret compares a secret integer with a big-endian encoding in time
// that depends only on the lengths; leading zero bytes of b are ignored.
func equalSecret(a *big.Int, b []byte) bool {
	b = bytes.TrimLeft(b, "\x00")
	if a == nil || (a.BitLen()+7)/8 != len(b) {
		return false
	}
	return subtle.ConstantTimeCompare(a.FillBytes(make([]byte, len(b))), b) == 1
}

// checkRSAPublic enforces the import bounds on n and e.
func checkRSAPublic(pub *rsa.PublicKey) error {
	bits := pub.N.BitLen()
	if bits < minRSABits || bits > maxRSABits {
		return fmt.Errorf("%w: RSA modulus of %d bits, want %d to %d", ErrBadKey, bits, minRSABits, maxRSABits)
	}
	if pub.N.Bit(0) == 0 {
		return fmt.Errorf("%w: RSA modulus is even", ErrBadKey)
	}
	if pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
		return fmt.Errorf("%w: RSA public exponent must be odd, 3 to 2^31-1", ErrBadKey)
	}
	return nil
}

// newRSA builds a Key from a public key and an optional private key, which
// it validates and precomputes.
func newRSA(priv *rsa.PrivateKey, pub *rsa.PublicKey) (*Key, error) {
	if err := checkRSAPublic(pub); err != nil {
		return nil, err
	}
	if priv != nil {
		if len(priv.Primes) != 2 {
			return nil, fmt.Errorf("%w: RSA key with %d primes, want 2", ErrBadKey, len(priv.Primes))
		}
		priv.Precompute()
		if err := priv.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err) // crypto/rsa messages carry no material
		}
	}
	bits := pub.N.BitLen()
	return &Key{
		kty: KtyRSA, bits: bits, rsaPub: pub, rsaPriv: priv,
		approved: bits%2 == 0 && pub.E > 1<<16,
	}, nil
}

func ecFromJWK(j JWK) (*Key, error) {
	if len(j.N)+len(j.E)+len(j.P)+len(j.Q)+len(j.DP)+len(j.DQ)+len(j.QI)+len(j.K)+len(j.Pub)+len(j.Priv) != 0 {
		return nil, fmt.Errorf("%w: EC JWK with RSA, oct or AKP fields", ErrBadKey)
	}
	ci, ok := curves[j.Crv]
	if !ok {
		return nil, fmt.Errorf("%w: unknown curve %.20q", ErrBadKey, j.Crv)
	}
	if len(j.X) != ci.size || len(j.Y) != ci.size {
		return nil, fmt.Errorf("%w: %s x and y must be %d bytes each", ErrBadKey, j.Crv, ci.size)
	}
	if len(j.D) != 0 && len(j.D) != ci.size {
		return nil, fmt.Errorf("%w: %s d must be %d bytes", ErrBadKey, j.Crv, ci.size)
	}
	point := make([]byte, 0, 1+2*ci.size)
	point = append(append(append(point, 4), j.X...), j.Y...)

	if ci.curve == nil { // P-256K
		pub, err := secp256k1.ParsePubKey(point)
		if err != nil {
			// decred's message prints the coordinates; don't pass it on.
			return nil, fmt.Errorf("%w: P-256K point is not on the curve", ErrBadKey)
		}
		if len(j.D) == 0 {
			return newK1(nil, pub), nil
		}
		priv, err := k1Private(j.D)
		if err != nil {
			return nil, err
		}
		if !priv.PubKey().IsEqual(pub) {
			return nil, fmt.Errorf("%w: P-256K d does not match x, y", ErrBadKey)
		}
		return newK1(priv, pub), nil
	}

	pub, err := ecdsa.ParseUncompressedPublicKey(ci.curve, point)
	if err != nil {
		return nil, fmt.Errorf("%w: %s point is not on the curve", ErrBadKey, j.Crv)
	}
	if len(j.D) == 0 {
		return newECDSA(j.Crv, nil, pub)
	}
	priv, err := ecdsa.ParseRawPrivateKey(ci.curve, j.D)
	if err != nil {
		return nil, fmt.Errorf("%w: %s d out of range", ErrBadKey, j.Crv)
	}
	if !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("%w: %s d does not match x, y", ErrBadKey, j.Crv)
	}
	return newECDSA(j.Crv, priv, &priv.PublicKey)
}

// k1Private parses a 32-byte secp256k1 scalar, which must be in [1, n-1].
func k1Private(d []byte) (*secp256k1.PrivateKey, error) {
	var s secp256k1.ModNScalar
	if len(d) != 32 {
		return nil, fmt.Errorf("%w: P-256K d must be 32 bytes", ErrBadKey)
	}
	if overflow := s.SetByteSlice(d); overflow || s.IsZero() {
		return nil, fmt.Errorf("%w: P-256K d out of range", ErrBadKey)
	}
	return secp256k1.NewPrivateKey(&s), nil
}

// newK1 builds a P-256K Key from a valid public key and an optional private
// key whose public half it is.
func newK1(priv *secp256k1.PrivateKey, pub *secp256k1.PublicKey) *Key {
	return &Key{kty: KtyEC, crv: CurveP256K, bits: 256, k1Pub: pub, k1Priv: priv, point: pub.SerializeUncompressed()}
}

// newECDSA builds a Key on a NIST curve from a valid public key and an
// optional private key whose public half it is.
func newECDSA(crv string, priv *ecdsa.PrivateKey, pub *ecdsa.PublicKey) (*Key, error) {
	point, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %s public key", ErrBadKey, crv)
	}
	return &Key{kty: KtyEC, crv: crv, bits: curves[crv].bits, ecPub: pub, ecPriv: priv, point: point, approved: true}, nil
}

// Public returns the public JWK: n, e for RSA; crv, x, y for EC, with x and y
// left-padded to the curve size. It never contains private fields.
func (k *Key) Public() JWK {
	if k.rsaPub != nil {
		e := big.NewInt(int64(k.rsaPub.E))
		return JWK{Kty: KtyRSA, N: k.rsaPub.N.Bytes(), E: e.Bytes()}
	}
	n := (len(k.point) - 1) / 2
	return JWK{Kty: KtyEC, Crv: k.crv, X: bytes.Clone(k.point[1 : 1+n]), Y: bytes.Clone(k.point[1+n:])}
}

// Kty returns KtyRSA or KtyEC.
func (k *Key) Kty() string { return k.kty }

// Curve returns the curve name of an EC key, "" for RSA.
func (k *Key) Curve() string { return k.crv }

// Size returns the RSA modulus size or the EC curve size in bits.
func (k *Key) Size() int { return k.bits }

// HasPrivate reports whether the key has its private part.
func (k *Key) HasPrivate() bool { return k.rsaPriv != nil || k.ecPriv != nil || k.k1Priv != nil }

func (k *Key) describe() string {
	s := "[keys.Key " + k.kty
	if k.crv != "" {
		s += " " + k.crv
	} else {
		s += fmt.Sprintf("-%d", k.bits)
	}
	if !k.HasPrivate() {
		s += " public"
	}
	return s + "]"
}

// Format prints "[keys.Key RSA-2048]", "[keys.Key EC P-256 public]" and the
// like for every verb, so key material cannot reach a log through fmt. It
// and LogValue and MarshalJSON have value receivers so that a dereferenced
// Key is redacted too.
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.describe()) }

// LogValue redacts the key in structured logs, as Format does.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.describe()) }

// MarshalJSON always fails: a Key must not be serialized by accident. Use
// Public for the JWK and MarshalPrivate for sealed storage.
func (Key) MarshalJSON() ([]byte, error) {
	return nil, errors.New("keys: a Key cannot be marshalled to JSON; use Public or MarshalPrivate")
}
