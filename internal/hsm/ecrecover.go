package hsm

import (
	"crypto/elliptic"
	"encoding/asn1"
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"

	"github.com/keyward/keyward/internal/keys"
)

func asn1Octet(b []byte) ([]byte, error) { return asn1.Marshal(b) }

// ecRecover returns the public keys for which sig (r‖s) is a valid ECDSA
// signature of digest (the digest is no longer than the group order, as
// for every Key Vault ES* algorithm). Public data only.
func ecRecover(crv string, digest, sig []byte) []keys.JWK {
	n := len(sig) / 2
	if len(sig) == 0 || len(sig)%2 != 0 {
		return nil
	}
	if crv == keys.CurveP256K {
		var out []keys.JWK
		for code := byte(0); code < 2; code++ {
			compact := append([]byte{27 + code}, sig...)
			pk, _, err := k1ecdsa.RecoverCompact(compact, digest)
			if err != nil {
				continue
			}
			out = append(out, k1JWK(pk))
		}
		return out
	}
	curve := map[string]elliptic.Curve{keys.CurveP256: elliptic.P256(), keys.CurveP384: elliptic.P384(), keys.CurveP521: elliptic.P521()}[crv]
	if curve == nil {
		return nil
	}
	params := curve.Params()
	size := (params.BitSize + 7) / 8
	r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(params.N) >= 0 || s.Cmp(params.N) >= 0 {
		return nil
	}
	e := new(big.Int).SetBytes(digest)
	if excess := len(digest)*8 - params.BitSize; excess > 0 {
		e.Rsh(e, uint(excess))
	}
	rInv := new(big.Int).ModInverse(r, params.N)
	var out []keys.JWK
	for _, prefix := range []byte{2, 3} {
		enc := append([]byte{prefix}, r.FillBytes(make([]byte, size))...)
		rx, ry := elliptic.UnmarshalCompressed(curve, enc)
		if rx == nil {
			continue
		}
		// Q = r⁻¹ (s·R − e·G)
		sRx, sRy := curve.ScalarMult(rx, ry, s.Bytes())
		eGx, eGy := curve.ScalarBaseMult(new(big.Int).Mod(e, params.N).Bytes())
		eGy = new(big.Int).Sub(params.P, eGy) // −e·G
		qx, qy := curve.Add(sRx, sRy, eGx, eGy)
		qx, qy = curve.ScalarMult(qx, qy, rInv.Bytes())
		if qx.Sign() == 0 && qy.Sign() == 0 {
			continue
		}
		out = append(out, keys.JWK{Kty: keys.KtyEC, Crv: crv, X: qx.FillBytes(make([]byte, size)), Y: qy.FillBytes(make([]byte, size))})
	}
	return out
}

func k1JWK(pk *secp256k1.PublicKey) keys.JWK {
	u := pk.SerializeUncompressed()
	return keys.JWK{Kty: keys.KtyEC, Crv: keys.CurveP256K, X: u[1:33], Y: u[33:]}
}

type asn1RawValue = asn1.RawValue

func asn1Unmarshal(b []byte, v any) ([]byte, error) { return asn1.Unmarshal(b, v) }
