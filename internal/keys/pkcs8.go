package keys

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// MarshalPrivate serializes the private key as unencrypted PKCS #8 DER
// (RFC 5208) for the vault layer to seal. RSA keys hold an RFC 8017
// RSAPrivateKey; EC keys an RFC 5915 ECPrivateKey with the public key, the
// curve named in the algorithm parameters. P-256K uses the same layout with
// the curve OID secp256k1 (1.3.132.0.10), as OpenSSL writes it and as a BYOK
// transfer blob carries it (CRYPTO.md §4.2); crypto/x509 cannot, so this
// package encodes and parses that case itself.
//
// The result is the whole private key: only the storage layer may call this,
// and only to seal the result at once.
func (k *Key) MarshalPrivate() ([]byte, error) {
	switch {
	case k.rsaPriv != nil:
		return x509.MarshalPKCS8PrivateKey(k.rsaPriv)
	case k.ecPriv != nil:
		return x509.MarshalPKCS8PrivateKey(k.ecPriv)
	case k.k1Priv != nil:
		return marshalK1(k)
	default:
		return nil, fmt.Errorf("%w: nothing to marshal", ErrNoPrivateKey)
	}
}

// ParsePrivate parses what MarshalPrivate produced (or any unencrypted
// PKCS #8 RSA, P-256, P-384, P-521 or secp256k1 key) and validates it as
// FromJWK does. It does not refuse keys in FIPS 140-only mode, so stored keys
// stay readable; their operations are refused instead. Errors wrap
// [ErrBadKey].
func ParsePrivate(b []byte) (*Key, error) {
	var p pkcs8
	if rest, err := asn1.Unmarshal(b, &p); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("%w: malformed PKCS #8", ErrBadKey)
	}
	if p.Algo.Algorithm.Equal(oidPublicKeyECDSA) {
		var crv asn1.ObjectIdentifier
		if rest, err := asn1.Unmarshal(p.Algo.Parameters.FullBytes, &crv); err == nil && len(rest) == 0 && crv.Equal(oidSecp256k1) {
			return parseK1(p.PrivateKey)
		}
	}

	key, err := x509.ParsePKCS8PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err) // x509 messages carry no material
	}
	switch key := key.(type) {
	case *rsa.PrivateKey:
		return newRSA(key, &key.PublicKey)
	case *ecdsa.PrivateKey:
		for crv, ci := range curves {
			if ci.curve != nil && ci.curve == key.Curve {
				return newECDSA(crv, key, &key.PublicKey)
			}
		}
		return nil, fmt.Errorf("%w: unsupported EC curve %s", ErrBadKey, key.Curve.Params().Name)
	default:
		return nil, fmt.Errorf("%w: unsupported PKCS #8 key type %T", ErrBadKey, key)
	}
}

var (
	oidPublicKeyECDSA = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1      = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

// pkcs8 is RFC 5208 PrivateKeyInfo without the optional attributes.
type pkcs8 struct {
	Version    int
	Algo       pkix.AlgorithmIdentifier
	PrivateKey []byte
}

// ecPrivateKey is RFC 5915 ECPrivateKey.
type ecPrivateKey struct {
	Version       int
	PrivateKey    []byte
	NamedCurveOID asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
	PublicKey     asn1.BitString        `asn1:"optional,explicit,tag:1"`
}

func marshalK1(k *Key) ([]byte, error) {
	d := k.k1Priv.Serialize()
	defer clear(d)
	inner, err := asn1.Marshal(ecPrivateKey{
		Version:    1,
		PrivateKey: d,
		PublicKey:  asn1.BitString{Bytes: k.point, BitLength: 8 * len(k.point)},
	})
	if err != nil {
		return nil, fmt.Errorf("keys: marshalling P-256K key: %w", err)
	}
	defer clear(inner)
	params, err := asn1.Marshal(oidSecp256k1)
	if err != nil {
		return nil, fmt.Errorf("keys: marshalling P-256K key: %w", err)
	}
	return asn1.Marshal(pkcs8{
		Algo:       pkix.AlgorithmIdentifier{Algorithm: oidPublicKeyECDSA, Parameters: asn1.RawValue{FullBytes: params}},
		PrivateKey: inner,
	})
}

func parseK1(der []byte) (*Key, error) {
	var ec ecPrivateKey
	rest, err := asn1.Unmarshal(der, &ec)
	switch {
	case err != nil || len(rest) != 0:
		return nil, fmt.Errorf("%w: malformed P-256K ECPrivateKey", ErrBadKey)
	case ec.Version != 1:
		return nil, fmt.Errorf("%w: P-256K ECPrivateKey version %d", ErrBadKey, ec.Version)
	case ec.NamedCurveOID != nil && !ec.NamedCurveOID.Equal(oidSecp256k1):
		return nil, fmt.Errorf("%w: P-256K ECPrivateKey names another curve", ErrBadKey)
	}
	priv, err := k1Private(ec.PrivateKey)
	if err != nil {
		return nil, err
	}
	k := newK1(priv, priv.PubKey())
	if ec.PublicKey.BitLength != 0 {
		pub, err := secp256k1.ParsePubKey(ec.PublicKey.RightAlign())
		if err != nil || !pub.IsEqual(k.k1Pub) {
			return nil, fmt.Errorf("%w: P-256K public key does not match the private key", ErrBadKey)
		}
	}
	return k, nil
}
