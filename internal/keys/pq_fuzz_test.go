package keys_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

// FuzzPQFromJWK: an AKP JWK from outside never panics; every failure is
// ErrBadKey (or a FIPS refusal); what is accepted has kty AKP, a known alg
// and no foreign fields, keeps a given pub, re-imports from its public
// JWK, round-trips through MarshalPrivate/ParsePQ, and works: a signature
// verifies, an encapsulation decapsulates, a wrap unwraps, each across the
// public-only and the private key.
//
//	go test -run '^$' -fuzz FuzzPQFromJWK -fuzztime 30s ./internal/keys/
func FuzzPQFromJWK(f *testing.F) {
	for _, alg := range keys.AKPAlgorithms() {
		k, err := keys.GeneratePQ(alg)
		if err != nil {
			f.Fatal(err)
		}
		h, _ := k.MarshalPrivate()
		seed := h[len("KWAKP1:"+alg+":"):]
		f.Add("AKP", alg, k.Public().Pub, seed, []byte(nil))
		f.Add("AKP", alg, []byte(nil), seed, []byte(nil))
		f.Add("AKP", alg, k.Public().Pub, []byte(nil), []byte(nil))
	}
	f.Add("AKP", "ML-DSA-44", []byte{1, 2}, make([]byte, 32), []byte{3})
	f.Add("RSA", "", []byte(nil), []byte(nil), []byte{0xc5})

	f.Fuzz(func(t *testing.T, kty, alg string, pub, priv, n []byte) {
		k, err := keys.PQFromJWK(keys.JWK{Kty: kty, Alg: alg, Pub: pub, Priv: priv, N: n})
		if err != nil {
			if !errors.Is(err, keys.ErrBadKey) && !errors.Is(err, keys.ErrNotAllowedInFIPSMode) {
				t.Fatalf("error does not wrap ErrBadKey: %v", err)
			}
			return
		}
		if kty != keys.KtyAKP || !keys.IsAKPAlgorithm(alg) || len(n) != 0 || k.Alg() != alg {
			t.Fatalf("accepted kty %q alg %q with %d foreign bytes", kty, alg, len(n))
		}
		if k.HasPrivate() != (len(priv) != 0) {
			t.Fatalf("HasPrivate %v with %d priv bytes", k.HasPrivate(), len(priv))
		}
		pj := k.Public()
		if pj.Kty != keys.KtyAKP || pj.Alg != alg || len(pj.Priv) != 0 || len(pj.Pub) == 0 {
			t.Fatal("Public() is not a public AKP JWK")
		}
		if len(pub) != 0 && !bytes.Equal(pj.Pub, pub) {
			t.Fatal("Public() pub differs from the given one")
		}
		pk, err := keys.PQFromJWK(pj)
		if err != nil || pk.HasPrivate() || !bytes.Equal(pk.Public().Pub, pj.Pub) {
			t.Fatalf("Public() does not re-import: %v", err)
		}
		if !k.HasPrivate() {
			return
		}
		h, err := k.MarshalPrivate()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := keys.ParsePQ(h)
		if err != nil || !bytes.Equal(k2.Public().Pub, pj.Pub) {
			t.Fatalf("MarshalPrivate does not round-trip: %v", err)
		}
		switch {
		case keys.IsMLDSA(alg):
			sig, err := k2.Sign(alg, pub)
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := pk.Verify(alg, pub, sig); !ok || err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
		case keys.IsMLKEM(alg):
			ss, ct, err := pk.Encapsulate(alg)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := k2.Decapsulate(alg, ct); err != nil || !bytes.Equal(got, ss) {
				t.Fatalf("decapsulation differs: %v", err)
			}
		default:
			dek := bytes.Repeat([]byte{9}, 24)
			w, err := pk.WrapKey(alg, dek)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := k2.UnwrapKey(alg, w); err != nil || !bytes.Equal(got, dek) {
				t.Fatalf("unwrap differs: %v", err)
			}
		}
	})
}

// FuzzHybridUnwrap: unwrapping arbitrary bytes never panics and fails with
// exactly ErrDecryption, unless the bytes are the genuine wrap, which gives
// the data key back (any change to ct_m, ct_x or the KWP block changes the
// KEK or fails the KWP integrity check).
//
//	go test -run '^$' -fuzz FuzzHybridUnwrap -fuzztime 30s ./internal/keys/
func FuzzHybridUnwrap(f *testing.F) {
	k, err := keys.GeneratePQ(keys.AlgX25519MLKEM768)
	if err != nil {
		f.Fatal(err)
	}
	dek := bytes.Repeat([]byte{0x42}, 32)
	w, err := k.WrapKey(keys.AlgX25519MLKEM768, dek)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w)
	f.Add(w[:1120])
	f.Add(append(bytes.Clone(w[:1120]), make([]byte, 40)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := k.UnwrapKey(keys.AlgX25519MLKEM768, in)
		if err != nil {
			if err != keys.ErrDecryption {
				t.Fatalf("error %v, want ErrDecryption", err)
			}
			return
		}
		if !bytes.Equal(in, w) || !bytes.Equal(got, dek) {
			t.Fatalf("unwrapped %d bytes from a forged input", len(got))
		}
	})
}
