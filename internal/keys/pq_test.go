package keys_test

import (
	"bytes"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/keyward/keyward/internal/keys"
)

type acvpHex []byte

func (h *acvpHex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

func readACVP(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile("testdata/acvp/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

var dsaSchemes = map[string]sign.Scheme{
	keys.AlgMLDSA44: mldsa44.Scheme(), keys.AlgMLDSA65: mldsa65.Scheme(), keys.AlgMLDSA87: mldsa87.Scheme(),
}

// TestMLDSAACVP checks the ML-DSA keys against NIST ACVP vectors
// (testdata/acvp/ml-dsa.json names its sources): keyGen through Keyward's
// own path (the seed, an AKP priv, expands to the expected public key);
// sigGen and sigVer of the external, pure interface through the circl
// scheme Keyward signs and verifies with. Those vectors carry a non-empty
// context, and Keyward signs with the empty one (RFC 9964), so their
// signatures must not verify through PQKey.Verify.
func TestMLDSAACVP(t *testing.T) {
	var v struct {
		Source string
		KeyGen []struct {
			TcID         int    `json:"tcId"`
			ParameterSet string `json:"parameterSet"`
			Seed, Pk     acvpHex
		} `json:"keyGen"`
		SigGen []struct {
			TcID                            int    `json:"tcId"`
			ParameterSet                    string `json:"parameterSet"`
			Sk, Message, Context, Signature acvpHex
		} `json:"sigGen"`
		SigVer []struct {
			TcID                            int    `json:"tcId"`
			ParameterSet                    string `json:"parameterSet"`
			Pk, Message, Context, Signature acvpHex
			TestPassed                      bool `json:"testPassed"`
		} `json:"sigVer"`
	}
	readACVP(t, "ml-dsa.json", &v)
	if !strings.Contains(v.Source, "ACVP") || len(v.KeyGen) != 3 || len(v.SigGen) != 3 || len(v.SigVer) != 3 {
		t.Fatalf("unexpected vector file: %d keyGen, %d sigGen, %d sigVer", len(v.KeyGen), len(v.SigGen), len(v.SigVer))
	}
	for _, c := range v.KeyGen {
		k, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: c.ParameterSet, Priv: c.Seed})
		if err != nil {
			t.Fatalf("keyGen %d: %v", c.TcID, err)
		}
		if !bytes.Equal(k.Public().Pub, c.Pk) {
			t.Errorf("keyGen %d (%s): public key differs", c.TcID, c.ParameterSet)
		}
		// pub given with priv must match; the ACVP pk does.
		if _, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: c.ParameterSet, Priv: c.Seed, Pub: c.Pk}); err != nil {
			t.Errorf("keyGen %d with pub: %v", c.TcID, err)
		}
	}
	for _, c := range v.SigGen {
		s := dsaSchemes[c.ParameterSet]
		sk, err := s.UnmarshalBinaryPrivateKey(c.Sk)
		if err != nil {
			t.Fatalf("sigGen %d: %v", c.TcID, err)
		}
		opts := &sign.SignatureOpts{Context: string(c.Context)}
		if sig := s.Sign(sk, c.Message, opts); !bytes.Equal(sig, c.Signature) {
			t.Errorf("sigGen %d (%s): signature differs", c.TcID, c.ParameterSet)
		}
		pub, err := sk.Public().(sign.PublicKey).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if !s.Verify(sk.Public().(sign.PublicKey), c.Message, c.Signature, opts) {
			t.Errorf("sigGen %d: the expected signature does not verify", c.TcID)
		}
		k, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: c.ParameterSet, Pub: pub})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := k.Verify(c.ParameterSet, c.Message, c.Signature); ok || err != nil {
			t.Errorf("sigGen %d: a signature with context %d bytes verifies with the empty context: %v, %v", c.TcID, len(c.Context), ok, err)
		}
	}
	for _, c := range v.SigVer {
		s := dsaSchemes[c.ParameterSet]
		pk, err := s.UnmarshalBinaryPublicKey(c.Pk)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Verify(pk, c.Message, c.Signature, &sign.SignatureOpts{Context: string(c.Context)}); got != c.TestPassed {
			t.Errorf("sigVer %d (%s): Verify = %v, want %v", c.TcID, c.ParameterSet, got, c.TestPassed)
		}
		k, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: c.ParameterSet, Pub: c.Pk})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := k.Verify(c.ParameterSet, c.Message, c.Signature); ok || err != nil {
			t.Errorf("sigVer %d: PQKey.Verify = %v, %v", c.TcID, ok, err)
		}
	}
}

// TestMLDSASignVerify: for each parameter set, a Keyward signature verifies
// with circl's verifier used directly (the ACVP-checked path) over the
// public key alone, a tampered message or signature fails, and an alg
// other than the key's is refused.
func TestMLDSASignVerify(t *testing.T) {
	msg := []byte("post-quantum message")
	for alg, s := range dsaSchemes {
		k, err := keys.GeneratePQ(alg)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := k.Sign(alg, msg)
		if err != nil {
			t.Fatalf("%s Sign: %v", alg, err)
		}
		if len(sig) != s.SignatureSize() {
			t.Errorf("%s signature is %d bytes, want %d", alg, len(sig), s.SignatureSize())
		}
		pk, err := s.UnmarshalBinaryPublicKey(k.Public().Pub)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Verify(pk, msg, sig, nil) {
			t.Errorf("%s: circl does not verify the signature", alg)
		}
		if s.Verify(pk, append(bytes.Clone(msg), '!'), sig, nil) {
			t.Errorf("%s: circl verifies a tampered message", alg)
		}
		if ok, err := k.Verify(alg, msg, sig); !ok || err != nil {
			t.Errorf("%s Verify = %v, %v", alg, ok, err)
		}
		if ok, err := k.Verify(alg, []byte("post-quantum messagE"), sig); ok || err != nil {
			t.Errorf("%s Verify(tampered message) = %v, %v", alg, ok, err)
		}
		if ok, err := k.Verify(alg, msg, flip(sig, 100)); ok || err != nil {
			t.Errorf("%s Verify(tampered signature) = %v, %v", alg, ok, err)
		}
		if ok, err := k.Verify(alg, msg, sig[:10]); ok || err != nil {
			t.Errorf("%s Verify(short signature) = %v, %v", alg, ok, err)
		}
		for _, other := range []string{keys.AlgMLDSA44, keys.AlgMLDSA87, "ES256", keys.AlgMLKEM768} {
			if other == alg {
				continue
			}
			if _, err := k.Sign(other, msg); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
				t.Errorf("%s key, Sign(%s): %v", alg, other, err)
			}
		}
		if _, _, err := k.Encapsulate(alg); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
			t.Errorf("%s Encapsulate: %v", alg, err)
		}
		big := make([]byte, keys.MaxSignMessage+1)
		if _, err := k.Sign(alg, big); !errors.Is(err, keys.ErrBadParameter) {
			t.Errorf("%s Sign of %d bytes: %v", alg, len(big), err)
		}
		if _, err := k.Sign(alg, big[1:]); err != nil {
			t.Errorf("%s Sign of %d bytes: %v", alg, len(big)-1, err)
		}
	}
}

// TestMLKEMACVP: keyGen (the seed d‖z, an AKP priv, gives the expected
// encapsulation key) and encapsulation (crypto/mlkem with the vector's m
// gives the expected c and k; a key with the keyGen seed decapsulates its
// own encapsulation to the same k).
func TestMLKEMACVP(t *testing.T) {
	var v struct {
		Source string
		KeyGen []struct {
			TcID         int    `json:"tcId"`
			ParameterSet string `json:"parameterSet"`
			D, Z, Ek     acvpHex
		} `json:"keyGen"`
		Encap []struct {
			TcID         int    `json:"tcId"`
			ParameterSet string `json:"parameterSet"`
			Ek, M, C, K  acvpHex
		} `json:"encap"`
	}
	readACVP(t, "ml-kem.json", &v)
	if !strings.Contains(v.Source, "ACVP") || len(v.KeyGen) != 4 || len(v.Encap) != 4 {
		t.Fatalf("unexpected vector file: %d keyGen, %d encap", len(v.KeyGen), len(v.Encap))
	}
	for _, c := range v.KeyGen {
		seed := append(bytes.Clone(c.D), c.Z...)
		k, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: c.ParameterSet, Priv: seed})
		if err != nil {
			t.Fatalf("keyGen %d: %v", c.TcID, err)
		}
		if !bytes.Equal(k.Public().Pub, c.Ek) {
			t.Errorf("keyGen %d (%s): encapsulation key differs", c.TcID, c.ParameterSet)
		}
		ss, ct, err := k.Encapsulate(c.ParameterSet)
		if err != nil {
			t.Fatal(err)
		}
		if ss2, err := k.Decapsulate(c.ParameterSet, ct); err != nil || !bytes.Equal(ss, ss2) {
			t.Errorf("keyGen %d: decapsulation differs: %v", c.TcID, err)
		}
	}
	for _, c := range v.Encap {
		var k, ct []byte
		var err error
		if c.ParameterSet == keys.AlgMLKEM768 {
			ek, e := mlkem.NewEncapsulationKey768(c.Ek)
			if e != nil {
				t.Fatal(e)
			}
			k, ct, err = mlkemtest.Encapsulate768(ek, c.M)
		} else {
			ek, e := mlkem.NewEncapsulationKey1024(c.Ek)
			if e != nil {
				t.Fatal(e)
			}
			k, ct, err = mlkemtest.Encapsulate1024(ek, c.M)
		}
		if err != nil || !bytes.Equal(k, c.K) || !bytes.Equal(ct, c.C) {
			t.Errorf("encap %d (%s): wrong k or c (%v)", c.TcID, c.ParameterSet, err)
		}
		// The public-only AKP key of the vector's ek is accepted.
		if _, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: c.ParameterSet, Pub: c.Ek}); err != nil {
			t.Errorf("encap %d: ek as AKP pub: %v", c.TcID, err)
		}
	}
}

// TestMLKEMAgainstCircl: Keyward's ML-KEM (crypto/mlkem) and circl's
// independent implementation agree both ways from the same seed.
func TestMLKEMAgainstCircl(t *testing.T) {
	for _, alg := range []string{keys.AlgMLKEM768, keys.AlgMLKEM1024} {
		seed := bytes.Repeat([]byte{0x5a}, 64)
		seed[0] = byte(len(alg))
		k, err := keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: alg, Priv: seed})
		if err != nil {
			t.Fatal(err)
		}
		ss, ct, err := k.Encapsulate(alg)
		if err != nil {
			t.Fatal(err)
		}
		var cpub, cct, css []byte
		if alg == keys.AlgMLKEM768 {
			pk, sk := mlkem768.NewKeyFromSeed(seed)
			cpub, _ = pk.MarshalBinary()
			got := make([]byte, mlkem768.SharedKeySize)
			sk.DecapsulateTo(got, ct)
			if !bytes.Equal(got, ss) {
				t.Errorf("%s: circl decapsulates Keyward's ciphertext to another secret", alg)
			}
			cct, css = make([]byte, mlkem768.CiphertextSize), make([]byte, mlkem768.SharedKeySize)
			pk.EncapsulateTo(cct, css, nil)
		} else {
			pk, sk := mlkem1024.NewKeyFromSeed(seed)
			cpub, _ = pk.MarshalBinary()
			got := make([]byte, mlkem1024.SharedKeySize)
			sk.DecapsulateTo(got, ct)
			if !bytes.Equal(got, ss) {
				t.Errorf("%s: circl decapsulates Keyward's ciphertext to another secret", alg)
			}
			cct, css = make([]byte, mlkem1024.CiphertextSize), make([]byte, mlkem1024.SharedKeySize)
			pk.EncapsulateTo(cct, css, nil)
		}
		if !bytes.Equal(cpub, k.Public().Pub) {
			t.Errorf("%s: circl derives another public key from the seed", alg)
		}
		if got, err := k.Decapsulate(alg, cct); err != nil || !bytes.Equal(got, css) {
			t.Errorf("%s: Keyward decapsulates circl's ciphertext to another secret (%v)", alg, err)
		}
		// Implicit rejection: a tampered ciphertext gives another secret.
		if got, err := k.Decapsulate(alg, flip(ct, 3)); err != nil || bytes.Equal(got, ss) {
			t.Errorf("%s: tampered ciphertext: %v", alg, err)
		}
		if _, err := k.Decapsulate(alg, ct[1:]); !errors.Is(err, keys.ErrBadParameter) {
			t.Errorf("%s: short ciphertext: %v", alg, err)
		}
	}
}

// TestPQImportErrors: malformed AKP JWKs are ErrBadKey.
func TestPQImportErrors(t *testing.T) {
	good, err := keys.GeneratePQ(keys.AlgMLDSA44)
	if err != nil {
		t.Fatal(err)
	}
	pub := good.Public().Pub
	other, _ := keys.GeneratePQ(keys.AlgMLDSA44)
	for name, j := range map[string]keys.JWK{
		"no alg":        {Kty: "AKP", Priv: make([]byte, 32)},
		"unknown alg":   {Kty: "AKP", Alg: "ML-DSA-99", Priv: make([]byte, 32)},
		"short seed":    {Kty: "AKP", Alg: keys.AlgMLDSA44, Priv: make([]byte, 31)},
		"kem seed 32":   {Kty: "AKP", Alg: keys.AlgMLKEM768, Priv: make([]byte, 32)},
		"nothing":       {Kty: "AKP", Alg: keys.AlgMLDSA44},
		"short pub":     {Kty: "AKP", Alg: keys.AlgMLDSA44, Pub: pub[1:]},
		"pub mismatch":  {Kty: "AKP", Alg: keys.AlgMLDSA44, Priv: make([]byte, 32), Pub: other.Public().Pub},
		"rsa fields":    {Kty: "AKP", Alg: keys.AlgMLDSA44, Priv: make([]byte, 32), N: []byte{1}},
		"crv":           {Kty: "AKP", Alg: keys.AlgMLDSA44, Priv: make([]byte, 32), Crv: "P-256"},
		"bad kem pub":   {Kty: "AKP", Alg: keys.AlgMLKEM768, Pub: bytes.Repeat([]byte{0xff}, mlkem.EncapsulationKeySize768)},
		"wrong kty":     {Kty: "OKP", Alg: keys.AlgMLDSA44, Priv: make([]byte, 32)},
		"hybrid no pub": {Kty: "AKP", Alg: keys.AlgX25519MLKEM768, Pub: make([]byte, 10)},
	} {
		if _, err := keys.PQFromJWK(j); !errors.Is(err, keys.ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", name, err)
		}
	}
	// AKP fields on an RSA, EC or oct JWK are refused too.
	if _, err := keys.FromJWK(keys.JWK{Kty: "EC", Crv: "P-256", X: make([]byte, 32), Y: make([]byte, 32), Priv: []byte{1}}); !errors.Is(err, keys.ErrBadKey) {
		t.Errorf("EC JWK with priv: %v", err)
	}
	if _, _, err := (keys.Software{}).Import(t.Context(), keys.JWK{Kty: "AKP", Alg: keys.AlgMLDSA44, Pub: pub}); !errors.Is(err, keys.ErrNoPrivateKey) {
		t.Errorf("Software.Import of a public AKP key: %v", err)
	}
	// Redaction: the seed never prints.
	if s := strings.ToLower(fmtAll(good)); strings.Contains(s, "priv") || !strings.Contains(s, "ml-dsa-44") {
		t.Errorf("printed key: %s", s)
	}
}

// TestPQSoftwareProtector: Generate, Load and the operator for every alg.
func TestPQSoftwareProtector(t *testing.T) {
	ctx := t.Context()
	for _, alg := range keys.AKPAlgorithms() {
		h, pub, err := keys.Software{}.Generate(ctx, keys.Spec{Kty: keys.KtyAKP, Alg: alg})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if pub.Kty != keys.KtyAKP || pub.Alg != alg || len(pub.Priv) != 0 || len(pub.Pub) == 0 {
			t.Fatalf("%s: public JWK %+v", alg, pub.Alg)
		}
		op, err := keys.Software{}.Load(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(op.Public().Pub, pub.Pub) {
			t.Errorf("%s: loaded key has another public key", alg)
		}
		switch {
		case keys.IsMLDSA(alg):
			sig, err := op.Sign(ctx, alg, []byte("m"))
			if err != nil {
				t.Fatal(err)
			}
			if ok, err := op.Verify(ctx, alg, []byte("m"), sig); !ok || err != nil {
				t.Errorf("%s: verify %v %v", alg, ok, err)
			}
		case keys.IsMLKEM(alg):
			kop := op.(keys.KEMOperator)
			ss, ct, err := kop.Encapsulate(ctx, alg)
			if err != nil {
				t.Fatal(err)
			}
			if ss2, err := kop.Decapsulate(ctx, alg, ct); err != nil || !bytes.Equal(ss, ss2) {
				t.Errorf("%s: decapsulate %v", alg, err)
			}
		default:
			dek := bytes.Repeat([]byte{7}, 32)
			w, err := op.WrapKey(ctx, alg, dek)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := op.UnwrapKey(ctx, alg, w); err != nil || !bytes.Equal(got, dek) {
				t.Errorf("%s: unwrap %v", alg, err)
			}
			if _, err := op.UnwrapKey(ctx, alg, flip(w, len(w)-3)); err != keys.ErrDecryption {
				t.Errorf("%s: unwrap of tampered data: %v", alg, err)
			}
		}
		if _, err := op.Encrypt(ctx, alg, []byte("x")); !errors.Is(err, keys.ErrUnsupportedAlgorithm) {
			t.Errorf("%s Encrypt: %v", alg, err)
		}
	}
}

func fmtAll(k *keys.PQKey) string { return fmt.Sprintf("%v %+v %#v %s %x", k, k, k, k, k) }
