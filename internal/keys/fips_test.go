package keys_test

import (
	"bytes"
	"crypto"
	"crypto/fips140"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

const fipsMarker = "fips140-only checks completed"

// TestFIPS140Only re-runs itself in a child process with GODEBUG=fips140=only
// (the setting is read once at start-up) and checks there that approved
// algorithms work, non-approved ones fail with ErrNotAllowedInFIPSMode, and
// nothing panics: a panic kills the child and fails this test.
func TestFIPS140Only(t *testing.T) {
	if !fips140.Enforced() {
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestFIPS140Only$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140=only")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(fipsMarker)) {
			t.Fatalf("child with GODEBUG=fips140=only: %v\n%s", err, out)
		}
		t.Logf("child with GODEBUG=fips140=only passed:\n%s", out)
		return
	}

	if p := (keys.Software{}).Platform(); !strings.HasSuffix(p, " enforced") || !strings.HasPrefix(p, "go-fips140/") {
		t.Errorf("Platform() = %q", p)
	}
	digest := sha256.Sum256([]byte("fips"))
	notAllowed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, keys.ErrNotAllowedInFIPSMode) {
			t.Errorf("%s: got %v, want ErrNotAllowedInFIPSMode", what, err)
		}
	}

	// Approved: RS256, PS256, ES256, RSA-OAEP-256.
	rsaKey, err := keys.Generate(keys.Spec{Kty: keys.KtyRSA, Size: 2048})
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := keys.Generate(keys.Spec{Kty: keys.KtyEC, Curve: keys.CurveP256})
	if err != nil {
		t.Fatal(err)
	}
	for k, algs := range map[*keys.Key][]string{rsaKey: {"RS256", "PS256", "RS512", "PS384"}, ecKey: {"ES256"}} {
		for _, alg := range algs {
			d := digest[:]
			if h := sigHash[alg]; h != crypto.SHA256 {
				hh := h.New()
				hh.Write([]byte("fips"))
				d = hh.Sum(nil)
			}
			sig, err := k.Sign(alg, d)
			if err != nil {
				t.Errorf("%s Sign: %v", alg, err)
				continue
			}
			if !stdVerify(t, k.Public(), alg, d, sig) {
				t.Errorf("%s: independent verify failed", alg)
			}
			if ok, err := k.Verify(alg, d, sig); !ok || err != nil {
				t.Errorf("%s Verify = %v, %v", alg, ok, err)
			}
			if ok, err := k.Verify(alg, d, flip(sig, 5)); ok || err != nil {
				t.Errorf("%s Verify(tampered) = %v, %v", alg, ok, err)
			}
		}
	}
	ct, err := rsaKey.WrapKey("RSA-OAEP-256", []byte("dek"))
	if err != nil {
		t.Fatalf("RSA-OAEP-256 wrap: %v", err)
	}
	if pt, err := rsaKey.UnwrapKey("RSA-OAEP-256", ct); err != nil || string(pt) != "dek" {
		t.Errorf("RSA-OAEP-256 unwrap: %q, %v", pt, err)
	}
	if _, err := rsaKey.Decrypt("RSA-OAEP-256", flip(ct, 77)); err != keys.ErrDecryption {
		t.Errorf("RSA-OAEP-256 decrypt of tampered ciphertext: %v", err)
	}
	if _, err := keys.FromJWK(privateJWK(t, rsaKey)); err != nil {
		t.Errorf("FromJWK of an approved RSA key: %v", err)
	}

	// Refused before any crypto runs (crypto/sha1 would panic in this mode).
	for _, alg := range []string{"RSA1_5", "RSA-OAEP"} {
		_, err := rsaKey.Encrypt(alg, []byte("x"))
		notAllowed(alg+" Encrypt", err)
		_, err = rsaKey.WrapKey(alg, []byte("x"))
		notAllowed(alg+" WrapKey", err)
		_, err = rsaKey.Decrypt(alg, make([]byte, 256))
		notAllowed(alg+" Decrypt", err)
		_, err = rsaKey.UnwrapKey(alg, make([]byte, 256))
		notAllowed(alg+" UnwrapKey", err)
	}
	_, err = keys.Generate(keys.Spec{Kty: keys.KtyEC, Curve: keys.CurveP256K})
	notAllowed("Generate P-256K", err)
	_, _, err = keys.Software{}.Generate(t.Context(), keys.Spec{Kty: keys.KtyEC, Curve: keys.CurveP256K})
	notAllowed("Software.Generate P-256K", err)

	// A stored P-256K key still parses, but cannot be used or re-imported.
	k1, err := keys.ParsePrivate(mustHex(t, "308184020100301006072a8648ce3d020106052b8104000a046d306b020101042091465794e503ac92"+
		"317c2e576c762ad9d908f027a8ea559c6a1d176e3c7d717ba144034200046b13b7ffee56a1f4f383a8e1690c665c927d5c1e"+
		"648987ee77b6273cd9a96b3325b4f6aba7997163c45c33fc9edcc4eb430c9b98d9d4647f61dd55aa2b59cf9f"))
	if err != nil {
		t.Fatalf("ParsePrivate(P-256K): %v", err)
	}
	_, err = k1.Sign("ES256K", digest[:])
	notAllowed("ES256K Sign", err)
	_, err = k1.Verify("ES256K", digest[:], make([]byte, 64))
	notAllowed("ES256K Verify", err)
	_, err = keys.FromJWK(k1.Public())
	notAllowed("FromJWK P-256K", err)

	// RSA keys the module does not approve (e ≤ 2^16) are refused on import.
	e3 := loadWycheproof(t, "rsa_signature_2048_sha256")
	var found bool
	for _, raw := range e3.TestGroups {
		if bytes.Contains(raw, []byte(`"publicExponent":"03"`)) {
			found = true
			var g struct {
				PublicKey struct{ Modulus hexBytes } `json:"publicKey"`
			}
			if err := json.Unmarshal(raw, &g); err != nil {
				t.Fatal(err)
			}
			_, err := keys.FromJWK(keys.JWK{Kty: "RSA", N: g.PublicKey.Modulus, E: []byte{3}})
			notAllowed("FromJWK with e = 3", err)
			break
		}
	}
	if !found {
		t.Error("no e = 3 key in the vectors")
	}

	// Post-quantum (docs/POST-QUANTUM.md): ML-KEM (crypto/mlkem, inside the
	// module) works; ML-DSA (circl, outside it) and the X25519 hybrid are
	// refused, on generation, import and loading of a stored key.
	for _, alg := range []string{keys.AlgMLKEM768, keys.AlgMLKEM1024} {
		kem, err := keys.GeneratePQ(alg)
		if err != nil {
			t.Fatalf("GeneratePQ(%s): %v", alg, err)
		}
		ss, ct, err := kem.Encapsulate(alg)
		if err != nil {
			t.Fatalf("%s Encapsulate: %v", alg, err)
		}
		if ss2, err := kem.Decapsulate(alg, ct); err != nil || !bytes.Equal(ss, ss2) {
			t.Errorf("%s Decapsulate: %v, same secret %v", alg, err, bytes.Equal(ss, ss2))
		}
	}
	for _, alg := range []string{keys.AlgMLDSA44, keys.AlgMLDSA65, keys.AlgMLDSA87, keys.AlgX25519MLKEM768} {
		_, err := keys.GeneratePQ(alg)
		notAllowed("GeneratePQ "+alg, err)
		_, _, err = keys.Software{}.Generate(t.Context(), keys.Spec{Kty: keys.KtyAKP, Alg: alg})
		notAllowed("Software.Generate "+alg, err)
		_, err = keys.PQFromJWK(keys.JWK{Kty: keys.KtyAKP, Alg: alg, Priv: make([]byte, 32)})
		notAllowed("PQFromJWK "+alg, err)
		_, err = keys.Software{}.Load(t.Context(), append([]byte("KWAKP1:"+alg+":"), make([]byte, 32)...))
		notAllowed("Software.Load "+alg, err)
	}

	// Sanity: the stdlib itself refuses these here, so the mode is really on.
	if _, err := rsa.EncryptPKCS1v15(nil, stdRSAPublic(t, rsaKey.Public()), []byte("x")); err == nil {
		t.Error("crypto/rsa allowed PKCS #1 v1.5 encryption: fips140=only is not in effect")
	}
	t.Log(fipsMarker)
}
