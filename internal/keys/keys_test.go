package keys_test

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/keyward/keyward/internal/keys"
)

func TestGenerate(t *testing.T) {
	for _, spec := range allSpecs {
		k := testKey(t, spec)
		wantBits := spec.Size
		if spec.Kty == keys.KtyEC {
			wantBits = map[string]int{"P-256": 256, "P-256K": 256, "P-384": 384, "P-521": 521}[spec.Curve]
		}
		if k.Kty() != spec.Kty || k.Curve() != spec.Curve || k.Size() != wantBits || !k.HasPrivate() {
			t.Errorf("%+v: got kty %q curve %q size %d private %v", spec, k.Kty(), k.Curve(), k.Size(), k.HasPrivate())
		}
		pub := k.Public()
		if pub.D != nil || pub.P != nil || pub.Q != nil || pub.DP != nil || pub.DQ != nil || pub.QI != nil || pub.K != nil {
			t.Errorf("%+v: Public() has private fields", spec)
		}
		if spec.Kty == keys.KtyRSA {
			if !bytes.Equal(pub.E, []byte{1, 0, 1}) || len(pub.N) != spec.Size/8 || pub.X != nil || pub.Crv != "" {
				t.Errorf("%+v: Public() = e %x, %d-byte n", spec, pub.E, len(pub.N))
			}
		} else if n := (wantBits + 7) / 8; len(pub.X) != n || len(pub.Y) != n || pub.N != nil || pub.Crv != spec.Curve {
			t.Errorf("%+v: Public() x %d, y %d bytes, want %d", spec, len(pub.X), len(pub.Y), n)
		}
	}

	// Defaults.
	for _, c := range []struct {
		spec keys.Spec
		want string
	}{
		{keys.Spec{Kty: "RSA"}, "[keys.Key RSA-2048]"},
		{keys.Spec{Kty: "RSA", PublicExponent: 65537}, "[keys.Key RSA-2048]"},
		{keys.Spec{Kty: "EC"}, "[keys.Key EC P-256]"},
	} {
		k, err := keys.Generate(c.spec)
		if err != nil || fmt.Sprint(k) != c.want {
			t.Errorf("Generate(%+v) = %v, %v; want %s", c.spec, k, err, c.want)
		}
	}

	for _, spec := range []keys.Spec{
		{}, {Kty: "oct"}, {Kty: "RSA-HSM"}, {Kty: "rsa"}, {Kty: "EC-HSM"},
		{Kty: "RSA", Size: 1024}, {Kty: "RSA", Size: 2047}, {Kty: "RSA", Size: 2049}, {Kty: "RSA", Size: 8192}, {Kty: "RSA", Size: -1},
		{Kty: "RSA", PublicExponent: 3}, {Kty: "RSA", PublicExponent: 65539}, {Kty: "RSA", Curve: "P-256"},
		{Kty: "EC", Curve: "P-224"}, {Kty: "EC", Curve: "secp256k1"}, {Kty: "EC", Curve: "p-256"},
		{Kty: "EC", Curve: "P-256", Size: 256}, {Kty: "EC", PublicExponent: 65537},
	} {
		if k, err := keys.Generate(spec); !errors.Is(err, keys.ErrBadParameter) {
			t.Errorf("Generate(%+v) = %v, %v; want ErrBadParameter", spec, k, err)
		}
	}
}

func TestFromJWKValid(t *testing.T) {
	for _, spec := range allSpecs {
		k := testKey(t, spec)
		priv := privateJWK(t, k)
		k2, err := keys.FromJWK(priv)
		if err != nil {
			t.Fatalf("%s: FromJWK(private): %v", specName(spec), err)
		}
		if !k2.HasPrivate() || !reflect.DeepEqual(k2.Public(), k.Public()) || !samePrivate(t, k, k2) {
			t.Errorf("%s: imported key differs", specName(spec))
		}
		if spec.Kty == keys.KtyRSA {
			// Without CRT values they are computed, to the same key.
			noCRT := priv
			noCRT.DP, noCRT.DQ, noCRT.QI = nil, nil, nil
			k3, err := keys.FromJWK(noCRT)
			if err != nil || !samePrivate(t, k, k3) {
				t.Errorf("%s: FromJWK without dp, dq, qi: %v", specName(spec), err)
			}
			// A leading zero byte on n (seen in the wild) is tolerated.
			lz := priv
			lz.N = append([]byte{0}, priv.N...)
			if _, err := keys.FromJWK(lz); err != nil {
				t.Errorf("%s: FromJWK with 00-prefixed n: %v", specName(spec), err)
			}
		}

		pub, err := keys.FromJWK(k.Public())
		if err != nil {
			t.Fatalf("%s: FromJWK(public): %v", specName(spec), err)
		}
		// Empty fields count as absent (a wire layer may decode "" to []byte{}).
		empty := k.Public()
		empty.D, empty.P, empty.Q, empty.DP, empty.DQ, empty.QI, empty.K = []byte{}, []byte{}, []byte{}, []byte{}, []byte{}, []byte{}, []byte{}
		if spec.Kty == keys.KtyRSA {
			empty.X, empty.Y = []byte{}, []byte{}
		} else {
			empty.N, empty.E = []byte{}, []byte{}
		}
		if e, err := keys.FromJWK(empty); err != nil || e.HasPrivate() {
			t.Errorf("%s: FromJWK with empty private fields: %v", specName(spec), err)
		}
		if pub.HasPrivate() || !reflect.DeepEqual(pub.Public(), k.Public()) || pub.Size() != k.Size() {
			t.Errorf("%s: public-only import differs", specName(spec))
		}
		if _, err := pub.MarshalPrivate(); !errors.Is(err, keys.ErrNoPrivateKey) {
			t.Errorf("%s: public-only MarshalPrivate: %v", specName(spec), err)
		}
		if got := fmt.Sprint(pub); !strings.HasSuffix(got, " public]") {
			t.Errorf("public-only key prints as %s", got)
		}
	}
}

func samePrivate(t testing.TB, a, b *keys.Key) bool {
	t.Helper()
	ma, err := a.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ma, mb)
}

// TestECPublicPadding checks x and y are left-padded to the curve size and
// that short coordinates are refused on import.
func TestECPublicPadding(t *testing.T) {
	found := false
	for i := 0; i < 5000 && !found; i++ {
		k, err := keys.Generate(keys.Spec{Kty: "EC", Curve: keys.CurveP256})
		if err != nil {
			t.Fatal(err)
		}
		j := k.Public()
		if len(j.X) != 32 || len(j.Y) != 32 {
			t.Fatalf("x %d, y %d bytes", len(j.X), len(j.Y))
		}
		if j.X[0] != 0 && j.Y[0] != 0 {
			continue
		}
		found = true
		if _, err := keys.FromJWK(j); err != nil {
			t.Errorf("FromJWK of a padded key: %v", err)
		}
		short := j
		if j.X[0] == 0 {
			short.X = j.X[1:]
		} else {
			short.Y = j.Y[1:]
		}
		if _, err := keys.FromJWK(short); !errors.Is(err, keys.ErrBadKey) {
			t.Errorf("FromJWK with unpadded coordinate: %v", err)
		}
	}
	if !found {
		t.Error("no P-256 key with a leading zero coordinate byte in 5000 tries")
	}
	// P-521 coordinates are 521 bits: the first of 66 bytes is 0 or 1.
	for range 4 {
		j := testKey(t, keys.Spec{Kty: "EC", Curve: keys.CurveP521}).Public()
		if len(j.X) != 66 || len(j.Y) != 66 || j.X[0] > 1 || j.Y[0] > 1 {
			t.Errorf("P-521 x %d, y %d bytes", len(j.X), len(j.Y))
		}
	}
}

func TestFromJWKInvalid(t *testing.T) {
	inc := func(b []byte, d int64) []byte {
		return new(big.Int).Add(new(big.Int).SetBytes(b), big.NewInt(d)).Bytes()
	}

	rsaKey := testKey(t, allSpecs[0])
	r := privateJWK(t, rsaKey)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small.Precompute()
	otherRSA := privateJWK(t, testKey(t, allSpecs[1]))

	cases := map[string]func(j *keys.JWK){
		"wrong d":            func(j *keys.JWK) { j.D = inc(j.D, 2) },
		"wrong q":            func(j *keys.JWK) { j.Q = inc(j.Q, 2) },
		"wrong p":            func(j *keys.JWK) { j.P = inc(j.P, -2) },
		"p and q of another": func(j *keys.JWK) { j.P, j.Q = otherRSA.P, otherRSA.Q },
		"wrong dp":           func(j *keys.JWK) { j.DP = inc(j.DP, 2) },
		"wrong dq":           func(j *keys.JWK) { j.DQ = inc(j.DQ, 2) },
		"wrong qi":           func(j *keys.JWK) { j.QI = inc(j.QI, 1) },
		"wrong n":            func(j *keys.JWK) { j.N = inc(j.N, 2) },
		"wrong e":            func(j *keys.JWK) { j.E = []byte{1, 0, 3} },
		"e = 1":              func(j *keys.JWK) { j.E = []byte{1} },
		"e = 0":              func(j *keys.JWK) { j.E = []byte{0} },
		"e missing":          func(j *keys.JWK) { j.E = nil },
		"e even":             func(j *keys.JWK) { j.E = []byte{1, 0, 0} },
		"e too large":        func(j *keys.JWK) { j.E = []byte{1, 0, 0, 0, 1} },
		"e = 2^32-1":         func(j *keys.JWK) { j.E = []byte{0xff, 0xff, 0xff, 0xff} },
		"n missing":          func(j *keys.JWK) { j.N = nil },
		"n even":             func(j *keys.JWK) { j.N = inc(j.N, 1) },
		"n too long":         func(j *keys.JWK) { j.N = append(bytes.Repeat([]byte{1}, 513), j.N...) },
		"n 4097 bits":        func(j *keys.JWK) { j.N = append([]byte{1}, bytes.Repeat([]byte{0xff}, 512)...) },
		"only d":             func(j *keys.JWK) { j.P, j.Q, j.DP, j.DQ, j.QI = nil, nil, nil, nil, nil },
		"q missing":          func(j *keys.JWK) { j.Q = nil },
		"qi missing":         func(j *keys.JWK) { j.QI = nil },
		"p without d":        func(j *keys.JWK) { j.D = nil },
		"p = 1":              func(j *keys.JWK) { j.P = []byte{1} },
		"q = 0":              func(j *keys.JWK) { j.Q = []byte{} },
		"p = n":              func(j *keys.JWK) { j.P = j.N },
		"EC fields":          func(j *keys.JWK) { j.X = []byte{1} },
		"crv":                func(j *keys.JWK) { j.Crv = "P-256" },
		"oct k":              func(j *keys.JWK) { j.K = []byte{1} },
		"kty RSA-HSM":        func(j *keys.JWK) { j.Kty = "RSA-HSM" },
		"kty lower case":     func(j *keys.JWK) { j.Kty = "rsa" },
		"1024-bit key": func(j *keys.JWK) {
			*j = keys.JWK{Kty: "RSA", N: small.N.Bytes(), E: []byte{1, 0, 1}, D: small.D.Bytes(),
				P: small.Primes[0].Bytes(), Q: small.Primes[1].Bytes(),
				DP: small.Precomputed.Dp.Bytes(), DQ: small.Precomputed.Dq.Bytes(), QI: small.Precomputed.Qinv.Bytes()}
		},
		"1024-bit public": func(j *keys.JWK) { *j = keys.JWK{Kty: "RSA", N: small.N.Bytes(), E: []byte{1, 0, 1}} },
	}
	for name, mutate := range cases {
		j := r
		mutate(&j)
		if k, err := keys.FromJWK(j); !errors.Is(err, keys.ErrBadKey) {
			t.Errorf("RSA %s: FromJWK = %v, %v; want ErrBadKey", name, k, err)
		} else if s := err.Error(); strings.Contains(s, fmt.Sprintf("%x", r.D[:8])) || strings.Contains(s, fmt.Sprintf("%x", r.P[:8])) {
			t.Errorf("RSA %s: error %q contains material", name, s)
		}
	}

	for _, spec := range allSpecs[3:] {
		e := privateJWK(t, testKey(t, spec))
		otherKey, err := keys.Generate(spec)
		if err != nil {
			t.Fatal(err)
		}
		other := privateJWK(t, otherKey)
		n := len(e.X)
		order := map[string]*big.Int{
			keys.CurveP256:  elliptic.P256().Params().N,
			keys.CurveP384:  elliptic.P384().Params().N,
			keys.CurveP521:  elliptic.P521().Params().N,
			keys.CurveP256K: secp256k1.Params().N,
		}[spec.Curve]
		prime := map[string]*big.Int{
			keys.CurveP256:  elliptic.P256().Params().P,
			keys.CurveP384:  elliptic.P384().Params().P,
			keys.CurveP521:  elliptic.P521().Params().P,
			keys.CurveP256K: secp256k1.Params().P,
		}[spec.Curve]
		pad := func(b []byte) []byte { return append(make([]byte, max(0, n-len(b))), b...) }
		cases := map[string]func(j *keys.JWK){
			"y+1 (not on curve)": func(j *keys.JWK) { j.Y = pad(inc(j.Y, 1)) },
			"x+1 (not on curve)": func(j *keys.JWK) { j.X = pad(inc(j.X, 1)) },
			"x, y = 0":           func(j *keys.JWK) { j.X, j.Y = make([]byte, n), make([]byte, n) },
			"x = p":              func(j *keys.JWK) { j.X = pad(prime.Bytes()) },
			"y = p":              func(j *keys.JWK) { j.Y = pad(prime.Bytes()) },
			"x short":            func(j *keys.JWK) { j.X = j.X[1:] },
			"x long":             func(j *keys.JWK) { j.X = append([]byte{0}, j.X...) },
			"y missing":          func(j *keys.JWK) { j.Y = nil },
			"d short":            func(j *keys.JWK) { j.D = j.D[1:] },
			"d long":             func(j *keys.JWK) { j.D = append([]byte{0}, j.D...) },
			"d = 0":              func(j *keys.JWK) { j.D = make([]byte, n) },
			"d = order":          func(j *keys.JWK) { j.D = pad(order.Bytes()) },
			"d = order + 1":      func(j *keys.JWK) { j.D = pad(inc(order.Bytes(), 1)) },
			"d all ones":         func(j *keys.JWK) { j.D = bytes.Repeat([]byte{0xff}, n) },
			"d of another key":   func(j *keys.JWK) { j.D = other.D },
			"d+1":                func(j *keys.JWK) { j.D = pad(inc(j.D, 1)) },
			"unknown curve":      func(j *keys.JWK) { j.Crv = "P-224" },
			"wycheproof name":    func(j *keys.JWK) { j.Crv = "secp256k1" },
			"no curve":           func(j *keys.JWK) { j.Crv = "" },
			"RSA fields":         func(j *keys.JWK) { j.N = []byte{1} },
			"kty EC-HSM":         func(j *keys.JWK) { j.Kty = "EC-HSM" },
			"oct":                func(j *keys.JWK) { *j = keys.JWK{Kty: "oct", K: bytes.Repeat([]byte{1}, 32)} },
		}
		for name, mutate := range cases {
			j := e
			mutate(&j)
			if k, err := keys.FromJWK(j); !errors.Is(err, keys.ErrBadKey) {
				t.Errorf("%s %s: FromJWK = %v, %v; want ErrBadKey", spec.Curve, name, k, err)
			}
		}
	}
}

func TestMarshalPrivateRoundTrip(t *testing.T) {
	for _, spec := range allSpecs {
		k := testKey(t, spec)
		der, err := k.MarshalPrivate()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := keys.ParsePrivate(der)
		if err != nil {
			t.Fatalf("%s: ParsePrivate: %v", specName(spec), err)
		}
		der2, err := k2.MarshalPrivate()
		if err != nil || !bytes.Equal(der, der2) || !reflect.DeepEqual(k.Public(), k2.Public()) {
			t.Errorf("%s: MarshalPrivate/ParsePrivate round trip differs", specName(spec))
		}
		alg := map[string]string{"": "RS256", "P-256": "ES256", "P-256K": "ES256K", "P-384": "ES384", "P-521": "ES512"}[spec.Curve]
		d := randBytes(t, sigHash[alg].Size())
		sig, err := k2.Sign(alg, d)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := k.Verify(alg, d, sig); !ok || err != nil {
			t.Errorf("%s: parsed key's signature does not verify with the original", specName(spec))
		}
		// Truncations and bit flips never panic and are ErrBadKey or a valid key.
		for _, n := range []int{0, 1, len(der) / 2, len(der) - 1} {
			if _, err := keys.ParsePrivate(der[:n]); !errors.Is(err, keys.ErrBadKey) {
				t.Errorf("%s: ParsePrivate(truncated to %d): %v", specName(spec), n, err)
			}
		}
		if _, err := keys.ParsePrivate(append(bytes.Clone(der), 0)); !errors.Is(err, keys.ErrBadKey) {
			t.Errorf("%s: ParsePrivate(trailing byte): %v", specName(spec), err)
		}
	}

	// PKCS #8 keys we do not support.
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	for name, key := range map[string]any{"Ed25519": edPriv, "P-224": p224, "X25519": x25519, "RSA-1024": rsa1024} {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if k, err := keys.ParsePrivate(der); !errors.Is(err, keys.ErrBadKey) {
			t.Errorf("ParsePrivate(%s) = %v, %v; want ErrBadKey", name, k, err)
		}
	}
}

// TestSecp256k1OpenSSLInterop: a P-256K key and signature made by OpenSSL
// 3.0.19 for this test only (TEST KEY, never used elsewhere):
//
//	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -out k1.pem
//	openssl pkcs8 -topk8 -nocrypt -in k1.pem -outform DER | xxd -p
//	printf keyward | openssl dgst -sha256 -binary | openssl pkeyutl -sign -inkey k1.pem | xxd -p
func TestSecp256k1OpenSSLInterop(t *testing.T) {
	der := mustHex(t, "308184020100301006072a8648ce3d020106052b8104000a046d306b020101042091465794e503ac92"+
		"317c2e576c762ad9d908f027a8ea559c6a1d176e3c7d717ba144034200046b13b7ffee56a1f4f383a8e1690c665c927d5c1e"+
		"648987ee77b6273cd9a96b3325b4f6aba7997163c45c33fc9edcc4eb430c9b98d9d4647f61dd55aa2b59cf9f")
	derSig := mustHex(t, "304402204ed4b177f3365ff186ab8d15ab13d459caaa66d3ff84bb920e1b888921ad8d340220641a5b8825e6c4"+
		"230c4a565b18cbc706953127caa57fe66640af7c36280de40a")
	k, err := keys.ParsePrivate(der)
	if err != nil {
		t.Fatal(err)
	}
	if k.Curve() != keys.CurveP256K || !bytes.Equal(k.Public().X, der[len(der)-64:len(der)-32]) {
		t.Fatalf("parsed %v with x %x", k, k.Public().X)
	}
	if out, err := k.MarshalPrivate(); err != nil || !bytes.Equal(out, der) {
		t.Errorf("MarshalPrivate differs from OpenSSL's PKCS #8:\n got %x\nwant %x", out, der)
	}
	digest := sha256.Sum256([]byte("keyward"))
	// DER 30 44 02 20 r 02 20 s (both 32 bytes here) → r‖s.
	sig := append(bytes.Clone(derSig[4:36]), derSig[38:70]...)
	if ok, err := k.Verify("ES256K", digest[:], sig); !ok || err != nil {
		t.Errorf("OpenSSL ES256K signature: %v, %v", ok, err)
	}
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRedaction(t *testing.T) {
	k := testKey(t, allSpecs[0])
	priv := privateJWK(t, k)
	secrets := []string{
		fmt.Sprintf("%x", priv.D[:6]), fmt.Sprintf("%X", priv.D[:6]), fmt.Sprintf("%x", priv.P[:6]),
		new(big.Int).SetBytes(priv.D).String()[:12], fmt.Sprintf("%x", priv.N[:6]), new(big.Int).SetBytes(priv.N).String()[:12],
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q", "%T %v"} {
		for _, v := range []any{k, *k, []*keys.Key{k}, struct{ K *keys.Key }{k}} {
			got := fmt.Sprintf(format, v)
			for _, s := range secrets {
				if strings.Contains(got, s) {
					t.Errorf("Sprintf(%q, %T) = %q leaks key material", format, v, got)
				}
			}
		}
	}
	if got := fmt.Sprint(k); got != "[keys.Key RSA-2048]" {
		t.Errorf("Sprint = %q", got)
	}
	if b, err := json.Marshal(k); err == nil {
		t.Errorf("json.Marshal(key) = %s, want an error", b)
	}
	if b, err := json.Marshal(map[string]any{"key": k}); err == nil {
		t.Errorf("json.Marshal(nested key) = %s, want an error", b)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("msg", "key", k)
	if !strings.Contains(buf.String(), `"key":"[keys.Key RSA-2048]"`) {
		t.Errorf("slog output %s", buf.String())
	}

	// Errors never echo plaintext or key material.
	secret := bytes.Repeat([]byte("TOPSECRET"), 100)
	_, err := k.Encrypt("RSA-OAEP-256", secret)
	if err == nil || strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), fmt.Sprintf("%x", secret[:8])) {
		t.Errorf("Encrypt error %v", err)
	}
	bad := priv
	bad.D = append(bytes.Clone(priv.D[:len(priv.D)-1]), priv.D[len(priv.D)-1]^1)
	_, err = keys.FromJWK(bad)
	for _, s := range secrets {
		if err == nil || strings.Contains(err.Error(), s) {
			t.Errorf("FromJWK error %v", err)
		}
	}
}

func TestSoftwareProtector(t *testing.T) {
	ctx := context.Background()
	var p keys.Protector = keys.Software{}
	if p.Name() != "software" {
		t.Errorf("Name = %q", p.Name())
	}
	want := "go-crypto (not FIPS mode)"
	if fips140.Enabled() {
		want = "go-fips140/" + fips140.Version()
	}
	if fips140.Enforced() {
		want += " enforced"
	}
	if got := p.Platform(); got != want {
		t.Errorf("Platform = %q, want %q", got, want)
	}

	for _, spec := range []keys.Spec{allSpecs[0], allSpecs[3], allSpecs[4]} {
		handle, pub, err := p.Generate(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		op, err := p.Load(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(op.Public(), pub) {
			t.Errorf("%s: Load(handle).Public() differs from Generate's", specName(spec))
		}
		alg := map[string]string{"": "PS256", "P-256": "ES256", "P-256K": "ES256K"}[spec.Curve]
		d := randBytes(t, 32)
		sig, err := op.Sign(ctx, alg, d)
		if err != nil || !stdVerify(t, pub, alg, d, sig) {
			t.Errorf("%s: operator signature does not verify: %v", specName(spec), err)
		}
		if ok, err := op.Verify(ctx, alg, d, sig); !ok || err != nil {
			t.Errorf("%s: operator Verify = %v, %v", specName(spec), ok, err)
		}
		if strings.Contains(fmt.Sprintf("%+v", op), fmt.Sprintf("%x", handle[len(handle)-8:])) {
			t.Errorf("operator prints key material")
		}

		// Import of the same material gives the same public key.
		j := privateJWK(t, testKey(t, spec))
		h2, pub2, err := p.Import(ctx, j)
		if err != nil || !reflect.DeepEqual(pub2, testKey(t, spec).Public()) || len(h2) == 0 {
			t.Errorf("%s: Import: %v", specName(spec), err)
		}
		if _, _, err := p.Import(ctx, testKey(t, spec).Public()); !errors.Is(err, keys.ErrNoPrivateKey) {
			t.Errorf("%s: Import(public JWK): %v, want ErrNoPrivateKey", specName(spec), err)
		}
	}

	rsaOp, err := p.Load(ctx, mustMarshal(t, testKey(t, allSpecs[0])))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := rsaOp.WrapKey(ctx, "RSA-OAEP-256", []byte("dek"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := rsaOp.UnwrapKey(ctx, "RSA-OAEP-256", ct); err != nil || string(pt) != "dek" {
		t.Errorf("operator wrap/unwrap: %q, %v", pt, err)
	}
	if ct, err = rsaOp.Encrypt(ctx, "RSA-OAEP-256", []byte("data")); err != nil {
		t.Fatal(err)
	}
	if pt, err := rsaOp.Decrypt(ctx, "RSA-OAEP-256", ct); err != nil || string(pt) != "data" {
		t.Errorf("operator encrypt/decrypt: %q, %v", pt, err)
	}
	if _, err := rsaOp.Decrypt(ctx, "RSA-OAEP-256", flip(ct, 100)); err != keys.ErrDecryption {
		t.Errorf("operator decrypt of tampered ciphertext: %v", err)
	}
	if _, err := p.Load(ctx, []byte("not a key")); !errors.Is(err, keys.ErrBadKey) {
		t.Errorf("Load(garbage): %v", err)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := p.Generate(canceled, allSpecs[3]); !errors.Is(err, context.Canceled) {
		t.Errorf("Generate(canceled): %v", err)
	}
	if _, err := rsaOp.Sign(canceled, "RS256", make([]byte, 32)); !errors.Is(err, context.Canceled) {
		t.Errorf("Sign(canceled): %v", err)
	}
}

func mustMarshal(t testing.TB, k *keys.Key) []byte {
	t.Helper()
	b, err := k.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
