package keys_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

// FuzzFromJWK: arbitrary fields never panic, every failure is ErrBadKey (or
// a FIPS refusal), and whatever is accepted round-trips through Public,
// MarshalPrivate and ParsePrivate and still signs and verifies.
//
//	go test -run '^$' -fuzz FuzzFromJWK -fuzztime 30s ./internal/keys/
func FuzzFromJWK(f *testing.F) {
	for _, spec := range []keys.Spec{allSpecs[0], allSpecs[3], allSpecs[4], allSpecs[5], allSpecs[6]} {
		k := testKey(f, spec)
		for _, j := range []keys.JWK{privateJWK(f, k), k.Public()} {
			f.Add(j.Kty, j.Crv, j.N, j.E, j.D, j.DP, j.DQ, j.QI, j.P, j.Q, j.K, j.X, j.Y)
		}
	}
	f.Add("RSA", "", []byte{0xc5}, []byte{3}, []byte{1}, []byte{}, []byte(nil), []byte(nil), []byte{7}, []byte{11}, []byte(nil), []byte(nil), []byte(nil))
	f.Add("EC", "P-521", []byte(nil), []byte(nil), make([]byte, 66), []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil), make([]byte, 66), make([]byte, 66))
	f.Add("oct", "", []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil), []byte(nil), make([]byte, 32), []byte(nil), []byte(nil))

	f.Fuzz(func(t *testing.T, kty, crv string, n, e, d, dp, dq, qi, p, q, kk, x, y []byte) {
		j := keys.JWK{Kty: kty, Crv: crv, N: n, E: e, D: d, DP: dp, DQ: dq, QI: qi, P: p, Q: q, K: kk, X: x, Y: y}
		k, err := keys.FromJWK(j)
		if err != nil {
			if !errors.Is(err, keys.ErrBadKey) && !errors.Is(err, keys.ErrNotAllowedInFIPSMode) {
				t.Fatalf("FromJWK error does not wrap ErrBadKey: %v", err)
			}
			return
		}
		if k.Kty() != kty || k.Curve() != crv || k.HasPrivate() != (len(d) != 0) {
			t.Fatalf("accepted key %v from kty %q crv %q", k, kty, crv)
		}
		pub := k.Public()
		if kty == keys.KtyEC && (!bytes.Equal(pub.X, x) || !bytes.Equal(pub.Y, y)) {
			t.Fatal("Public() x, y differ from the imported ones")
		}
		if kty == keys.KtyRSA && !bytes.Equal(pub.N, bytes.TrimLeft(n, "\x00")) {
			t.Fatal("Public() n differs from the imported one")
		}
		pk, err := keys.FromJWK(pub)
		if err != nil || pk.HasPrivate() || !reflect.DeepEqual(pk.Public(), pub) {
			t.Fatalf("Public() does not re-import: %v", err)
		}
		if !k.HasPrivate() {
			return
		}
		der, err := k.MarshalPrivate()
		if err != nil {
			t.Fatalf("MarshalPrivate: %v", err)
		}
		k2, err := keys.ParsePrivate(der)
		if err != nil {
			t.Fatalf("ParsePrivate(MarshalPrivate()): %v", err)
		}
		der2, err := k2.MarshalPrivate()
		if err != nil || !bytes.Equal(der, der2) || !reflect.DeepEqual(k2.Public(), pub) {
			t.Fatalf("MarshalPrivate/ParsePrivate round trip differs: %v", err)
		}
		alg := map[string]string{"": "PS256", "P-256": "ES256", "P-256K": "ES256K", "P-384": "ES384", "P-521": "ES512"}[crv]
		digest := make([]byte, sigHash[alg].Size())
		sig, err := k2.Sign(alg, digest)
		if err != nil {
			t.Fatalf("Sign with an accepted key: %v", err)
		}
		if ok, err := pk.Verify(alg, digest, sig); !ok || err != nil {
			t.Fatalf("accepted private key does not match its public key: %v, %v", ok, err)
		}
	})
}
