package keys

import (
	"bytes"
	"context"
	"crypto/fips140"
	"fmt"
)

// Operator is the cryptographic method set of a loaded key, whatever holds
// the private part. Methods take a context because an HSM implementation
// blocks (session checkout, token calls) and must be cancellable (STYLE.md
// §4). Semantics and errors are those of the same-named [Key] methods.
type Operator interface {
	Public() JWK
	Sign(ctx context.Context, alg string, digest []byte) ([]byte, error)
	Verify(ctx context.Context, alg string, digest, sig []byte) (bool, error)
	Encrypt(ctx context.Context, alg string, plaintext []byte) ([]byte, error)
	Decrypt(ctx context.Context, alg string, ciphertext []byte) ([]byte, error)
	WrapKey(ctx context.Context, alg string, key []byte) ([]byte, error)
	UnwrapKey(ctx context.Context, alg string, wrapped []byte) ([]byte, error)
}

// Protector creates and loads keys on behalf of the vault layer, which
// stores the returned handle sealed and passes it back to Load. For
// [Software] the handle is the PKCS #8 private key; for an HSM it will be a
// reference to a non-extractable token object.
type Protector interface {
	// Name identifies the implementation in configuration and logs.
	Name() string
	// Platform is shown to users as the key attribute hsmPlatform.
	Platform() string
	Generate(ctx context.Context, spec Spec) (handle []byte, pub JWK, err error)
	// Import takes a private JWK; public-only keys fail with ErrNoPrivateKey.
	Import(ctx context.Context, j JWK) (handle []byte, pub JWK, err error)
	Load(ctx context.Context, handle []byte) (Operator, error)
}

// SpecImporter is implemented by protectors whose objects carry the key
// version's identity and usage flags (an HSM): the vault layer calls
// ImportSpec instead of Import, with spec.ID, spec.Usage and
// spec.Exportable set (Kty, Size and Curve are left empty).
type SpecImporter interface {
	ImportSpec(ctx context.Context, j JWK, spec Spec) (handle []byte, pub JWK, err error)
}

// Software is the Protector for keys held in process memory by this
// package, sealed at rest by the vault layer. The zero value is ready to use.
type Software struct{}

var _ Protector = Software{}

// Name returns "software".
func (Software) Name() string { return "software" }

// Platform reports the Go crypto module and FIPS 140 mode:
// "go-fips140/v1.0.0" (GOFIPS140 build, or fips140=on), "go-fips140/v1.0.0
// enforced" (fips140=only), or "go-crypto (not FIPS mode)". fips140.Version
// is "latest" for a build without GOFIPS140.
func (Software) Platform() string {
	switch {
	case fips140.Enforced():
		return "go-fips140/" + fips140.Version() + " enforced"
	case fips140.Enabled():
		return "go-fips140/" + fips140.Version()
	default:
		return "go-crypto (not FIPS mode)"
	}
}

// Generate creates a key and returns its sealed-storage handle.
func (Software) Generate(ctx context.Context, spec Spec) ([]byte, JWK, error) {
	if err := ctx.Err(); err != nil {
		return nil, JWK{}, err
	}
	if spec.Kty == KtyAKP {
		k, err := GeneratePQ(spec.Alg)
		if err != nil {
			return nil, JWK{}, err
		}
		defer k.wipe()
		h, err := k.MarshalPrivate()
		return h, k.Public(), err
	}
	if spec.Kty == KtyOct {
		k, err := GenerateAES(spec.Size)
		if err != nil {
			return nil, JWK{}, err
		}
		return k.MarshalPrivate(), k.Public(), nil
	}
	k, err := Generate(spec)
	if err != nil {
		return nil, JWK{}, err
	}
	return handleOf(k)
}

// Import validates a private JWK and returns its sealed-storage handle.
func (Software) Import(ctx context.Context, j JWK) ([]byte, JWK, error) {
	if err := ctx.Err(); err != nil {
		return nil, JWK{}, err
	}
	if j.Kty == KtyOct {
		if len(j.N)+len(j.E)+len(j.D)+len(j.X)+len(j.Y)+len(j.P)+len(j.Q)+len(j.DP)+len(j.DQ)+len(j.QI)+len(j.Pub)+len(j.Priv) != 0 || j.Crv != "" {
			return nil, JWK{}, fmt.Errorf("%w: oct JWK with RSA or EC fields", ErrBadKey)
		}
		k, err := NewAES(j.K)
		if err != nil {
			return nil, JWK{}, err
		}
		return k.MarshalPrivate(), k.Public(), nil
	}
	if j.Kty == KtyAKP {
		k, err := PQFromJWK(j)
		if err != nil {
			return nil, JWK{}, err
		}
		defer k.wipe()
		if !k.HasPrivate() {
			return nil, JWK{}, fmt.Errorf("%w: import needs the private key (priv)", ErrNoPrivateKey)
		}
		h, err := k.MarshalPrivate()
		return h, k.Public(), err
	}
	k, err := FromJWK(j)
	if err != nil {
		return nil, JWK{}, err
	}
	if !k.HasPrivate() {
		return nil, JWK{}, fmt.Errorf("%w: import needs the private key", ErrNoPrivateKey)
	}
	return handleOf(k)
}

func handleOf(k *Key) ([]byte, JWK, error) {
	h, err := k.MarshalPrivate()
	if err != nil {
		return nil, JWK{}, err
	}
	return h, k.Public(), nil
}

// Load parses a handle made by Generate or Import.
func (Software) Load(ctx context.Context, handle []byte) (Operator, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if bytes.HasPrefix(handle, aesHandlePrefix) {
		k, err := ParseAES(handle)
		if err != nil {
			return nil, err
		}
		return aesOperator{k}, nil
	}
	if bytes.HasPrefix(handle, pqHandlePrefix) {
		k, err := ParsePQ(handle)
		if err != nil {
			return nil, err
		}
		return pqOperator{k}, nil
	}
	k, err := ParsePrivate(handle)
	if err != nil {
		return nil, err
	}
	return keyOperator{k}, nil
}

// keyOperator adapts a *Key to Operator. Software operations never block,
// so the context is only checked before starting.
type keyOperator struct{ k *Key }

func (o keyOperator) Public() JWK { return o.k.Public() }

func (o keyOperator) Sign(ctx context.Context, alg string, digest []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.Sign(alg, digest)
}

func (o keyOperator) Verify(ctx context.Context, alg string, digest, sig []byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return o.k.Verify(alg, digest, sig)
}

func (o keyOperator) Encrypt(ctx context.Context, alg string, plaintext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.Encrypt(alg, plaintext)
}

func (o keyOperator) Decrypt(ctx context.Context, alg string, ciphertext []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.Decrypt(alg, ciphertext)
}

func (o keyOperator) WrapKey(ctx context.Context, alg string, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.WrapKey(alg, key)
}

func (o keyOperator) UnwrapKey(ctx context.Context, alg string, wrapped []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return o.k.UnwrapKey(alg, wrapped)
}

// Format redacts like Key.Format.
func (o keyOperator) Format(f fmt.State, verb rune) { o.k.Format(f, verb) }
