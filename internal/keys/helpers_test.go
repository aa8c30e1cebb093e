package keys_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"sync"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/keyward/keyward/internal/keys"
)

// Every key shape the package generates.
var allSpecs = []keys.Spec{
	{Kty: keys.KtyRSA, Size: 2048},
	{Kty: keys.KtyRSA, Size: 3072},
	{Kty: keys.KtyRSA, Size: 4096},
	{Kty: keys.KtyEC, Curve: keys.CurveP256},
	{Kty: keys.KtyEC, Curve: keys.CurveP256K},
	{Kty: keys.KtyEC, Curve: keys.CurveP384},
	{Kty: keys.KtyEC, Curve: keys.CurveP521},
}

var (
	sigAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512"}
	encAlgs = []string{"RSA1_5", "RSA-OAEP", "RSA-OAEP-256"}
)

// sigHash is the hash of each signature algorithm, per RFC 7518 §3.
var sigHash = map[string]crypto.Hash{
	"RS256": crypto.SHA256, "RS384": crypto.SHA384, "RS512": crypto.SHA512,
	"PS256": crypto.SHA256, "PS384": crypto.SHA384, "PS512": crypto.SHA512,
	"ES256": crypto.SHA256, "ES256K": crypto.SHA256, "ES384": crypto.SHA384, "ES512": crypto.SHA512,
}

// sigFits reports whether alg may be used with a key of spec (AZURE-API.md §4).
func sigFits(alg string, s keys.Spec) bool {
	switch alg {
	case "ES256":
		return s.Curve == keys.CurveP256
	case "ES256K":
		return s.Curve == keys.CurveP256K
	case "ES384":
		return s.Curve == keys.CurveP384
	case "ES512":
		return s.Curve == keys.CurveP521
	default:
		return s.Kty == keys.KtyRSA
	}
}

func specName(s keys.Spec) string {
	if s.Kty == keys.KtyRSA {
		return "RSA-" + big.NewInt(int64(s.Size)).String()
	}
	return s.Curve
}

var (
	keyCacheMu sync.Mutex
	keyCache   = map[keys.Spec]*keys.Key{}
)

// testKey returns a generated key of spec, shared by all tests (RSA-4096
// generation takes about a second).
func testKey(t testing.TB, s keys.Spec) *keys.Key {
	t.Helper()
	keyCacheMu.Lock()
	defer keyCacheMu.Unlock()
	if k, ok := keyCache[s]; ok {
		return k
	}
	k, err := keys.Generate(s)
	if err != nil {
		t.Fatalf("Generate(%+v): %v", s, err)
	}
	keyCache[s] = k
	return k
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// ---- Independent implementations, built only from Public() or PKCS #8 ----

var stdCurves = map[string]elliptic.Curve{
	keys.CurveP256: elliptic.P256(), keys.CurveP384: elliptic.P384(), keys.CurveP521: elliptic.P521(),
}

func stdRSAPublic(t testing.TB, j keys.JWK) *rsa.PublicKey {
	t.Helper()
	e := new(big.Int).SetBytes(j.E)
	if j.Kty != "RSA" || !e.IsInt64() {
		t.Fatalf("not an RSA public JWK: kty %q", j.Kty)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())}
}

func point(j keys.JWK) []byte { return append(append([]byte{4}, j.X...), j.Y...) }

// stdVerify verifies with crypto/rsa, crypto/ecdsa or decred directly.
func stdVerify(t testing.TB, j keys.JWK, alg string, digest, sig []byte) bool {
	t.Helper()
	h := sigHash[alg]
	switch alg[:2] {
	case "RS":
		return rsa.VerifyPKCS1v15(stdRSAPublic(t, j), h, digest, sig) == nil
	case "PS":
		return rsa.VerifyPSS(stdRSAPublic(t, j), h, digest, sig, &rsa.PSSOptions{SaltLength: h.Size()}) == nil
	}
	if j.Crv == keys.CurveP256K {
		pub, err := secp256k1.ParsePubKey(point(j))
		if err != nil {
			t.Fatalf("decred rejects Public(): %v", err)
		}
		var r, s secp256k1.ModNScalar
		if len(sig) != 64 || r.SetByteSlice(sig[:32]) || s.SetByteSlice(sig[32:]) {
			return false
		}
		return k1ecdsa.NewSignature(&r, &s).Verify(digest, pub)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(stdCurves[j.Crv], point(j))
	if err != nil {
		t.Fatalf("crypto/ecdsa rejects Public(): %v", err)
	}
	n := len(j.X)
	if len(sig) != 2*n {
		return false
	}
	return ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:]))
}

// stdPrivate parses MarshalPrivate output with crypto/x509 (NIST and RSA)
// or decred (P-256K), independently of ParsePrivate.
func stdPrivate(t testing.TB, k *keys.Key) any {
	t.Helper()
	der, err := k.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	if k.Curve() == keys.CurveP256K {
		// The PKCS #8 layout for secp256k1 has fixed lengths (OpenSSL writes
		// the same bytes, see TestSecp256k1OpenSSLInterop): 30 81 84 | 02 01 00 |
		// 30 10 (id-ecPublicKey, secp256k1) | 04 6d | 30 6b 02 01 01 04 20 d(32) | a1 44 03 42 00 point.
		const off = 3 + 3 + 18 + 2 + 2 + 3 + 2
		if len(der) != 135 || der[off-2] != 0x04 || der[off-1] != 0x20 {
			t.Fatalf("unexpected secp256k1 PKCS #8 layout: %d bytes", len(der))
		}
		return secp256k1.PrivKeyFromBytes(der[off : off+32])
	}
	p, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("crypto/x509 rejects MarshalPrivate: %v", err)
	}
	return p
}

// privateJWK builds a full private JWK from a key, independently of the
// package's parsers.
func privateJWK(t testing.TB, k *keys.Key) keys.JWK {
	t.Helper()
	j := k.Public()
	switch p := stdPrivate(t, k).(type) {
	case *rsa.PrivateKey:
		j.D, j.P, j.Q = p.D.Bytes(), p.Primes[0].Bytes(), p.Primes[1].Bytes()
		j.DP, j.DQ, j.QI = p.Precomputed.Dp.Bytes(), p.Precomputed.Dq.Bytes(), p.Precomputed.Qinv.Bytes()
	case *ecdsa.PrivateKey:
		d, err := p.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		j.D = d
	case *secp256k1.PrivateKey:
		j.D = p.Serialize()
	default:
		t.Fatalf("unexpected private key %T", p)
	}
	return j
}
