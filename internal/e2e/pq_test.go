package e2e

import (
	"bytes"
	"context"
	"crypto/fips140"
	"crypto/mlkem"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/cloudflare/circl/kem/mlkem/mlkem1024"
	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/sign"
	"github.com/cloudflare/circl/sign/mldsa/mldsa44"
	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/kwtest"
)

// Post-quantum keys through the Keys API (docs/POST-QUANTUM.md). The
// server signs with circl (hedged); the test verifies with circl's
// verifier from the public key alone (the path the keys package checks
// against NIST ACVP vectors), and for imported keys from a key pair the
// test derived itself. ML-KEM is checked against circl's independent
// ML-KEM as well as crypto/mlkem.

var pqSchemes = map[string]sign.Scheme{
	keys.AlgMLDSA44: mldsa44.Scheme(), keys.AlgMLDSA65: mldsa65.Scheme(), keys.AlgMLDSA87: mldsa87.Scheme(),
}

type akpWire struct {
	Key struct {
		Kid, Kty, Alg string
		KeyOps        []string `json:"key_ops"`
		Pub, Priv     string
		N, D          string
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64u(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

// pqCall sends a data-plane request with the dev principal's token.
func pqCall(t *testing.T, e *kwtest.Env, method, path, body string) httpResult {
	t.Helper()
	tok := tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0])
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return do(t, e, method, strings.TrimSuffix(e.Info.VaultURL, "/")+path+sep+"api-version=7.5", tok, ct, body)
}

func getAKP(t *testing.T, e *kwtest.Env, name string) akpWire {
	t.Helper()
	r := pqCall(t, e, "GET", "/keys/"+name, "")
	var w akpWire
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &w) != nil {
		t.Fatalf("get %s: %d %s", name, r.Status, r.Body)
	}
	if w.Key.Kty != "AKP" || w.Key.Priv != "" || w.Key.N != "" || w.Key.D != "" {
		t.Fatalf("get %s: not a public AKP JWK: %s", name, r.Body)
	}
	return w
}

// wantBadParameter checks an Azure-shaped 400 BadParameter.
func wantBadParameter(t *testing.T, what string, r httpResult) {
	t.Helper()
	if code, _ := azureError(r.Body); r.Status != http.StatusBadRequest || code != "BadParameter" {
		t.Errorf("%s: %d %s, want 400 BadParameter", what, r.Status, r.Body)
	}
}

func TestPostQuantumKeys(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()
	msg := []byte("a message signed after the quantum computer")
	tampered := []byte("a message signed after the quantum computeR")

	t.Run("ML-DSA create, sign with the SDK, verify independently", func(t *testing.T) {
		for alg, s := range pqSchemes {
			name := "dsa" + strings.TrimPrefix(alg, "ML-DSA-")
			// The official SDK carries the new strings: kty AKP, the
			// parameter set in crv (alias of alg), the alg in Sign.
			kb, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyType("AKP")), Curve: to.Ptr(azkeys.CurveName(alg))}, nil)
			if err != nil {
				t.Fatalf("%s create: %v", alg, err)
			}
			if *kb.Key.Kty != "AKP" || len(kb.Key.KeyOps) != 2 {
				t.Errorf("%s create: kty %s key_ops %v", alg, *kb.Key.Kty, kb.Key.KeyOps)
			}
			w := getAKP(t, e, name)
			if w.Key.Alg != alg || strings.Join(w.Key.KeyOps, ",") != "sign,verify" {
				t.Errorf("%s get: alg %q key_ops %v", alg, w.Key.Alg, w.Key.KeyOps)
			}
			pk, err := s.UnmarshalBinaryPublicKey(unb64u(t, w.Key.Pub))
			if err != nil {
				t.Fatalf("%s pub: %v", alg, err)
			}
			sr, err := c.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(alg)), Value: msg}, nil)
			if err != nil {
				t.Fatalf("%s sign: %v", alg, err)
			}
			if len(sr.Result) != s.SignatureSize() || !s.Verify(pk, msg, sr.Result, nil) {
				t.Errorf("%s: the signature (%d bytes) does not verify locally", alg, len(sr.Result))
			}
			if s.Verify(pk, tampered, sr.Result, nil) {
				t.Errorf("%s: a tampered message verifies locally", alg)
			}
			for _, m := range [][]byte{msg, tampered} {
				vr, err := c.Verify(ctx, name, "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(alg)), Digest: m, Signature: sr.Result}, nil)
				if err != nil || *vr.Value != bytes.Equal(m, msg) {
					t.Errorf("%s: API verify of %q = %v, %v", alg, m, vr.Value, err)
				}
			}
		}
	})

	t.Run("ML-DSA import a local key, sign via API, verify with the local key", func(t *testing.T) {
		for alg, s := range pqSchemes {
			seed := make([]byte, 32)
			rand.Read(seed)
			pk, _ := s.DeriveKey(seed)
			pub, _ := pk.MarshalBinary()
			name := "imp" + strings.TrimPrefix(alg, "ML-DSA-")
			body := `{"key":{"kty":"AKP","alg":"` + alg + `","pub":"` + b64u(pub) + `","priv":"` + b64u(seed) + `"}}`
			if r := pqCall(t, e, "PUT", "/keys/"+name, body); r.Status != http.StatusOK || strings.Contains(r.Body, `"priv"`) {
				t.Fatalf("%s import: %d %s", alg, r.Status, r.Body)
			}
			sr, err := c.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(alg)), Value: msg}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Verify(pk, msg, sr.Result, nil) || s.Verify(pk, tampered, sr.Result, nil) {
				t.Errorf("%s: local verification of the imported key's signature failed", alg)
			}
		}
	})

	t.Run("ML-DSA rotate and backup/restore", func(t *testing.T) {
		before := getAKP(t, e, "dsa65")
		rk, err := c.RotateKey(ctx, "dsa65", nil)
		if err != nil {
			t.Fatalf("rotate: %v", err)
		}
		after := getAKP(t, e, "dsa65")
		if after.Key.Alg != keys.AlgMLDSA65 || after.Key.Pub == before.Key.Pub || after.Key.Kid == before.Key.Kid || *rk.Key.KID != azkeys.ID(after.Key.Kid) {
			t.Errorf("rotate: alg %s, same pub %v", after.Key.Alg, after.Key.Pub == before.Key.Pub)
		}
		bk, err := c.BackupKey(ctx, "dsa65", nil)
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		if _, err := c.DeleteKey(ctx, "dsa65", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PurgeDeletedKey(ctx, "dsa65", nil); err != nil {
			t.Fatalf("purge: %v", err)
		}
		if r := pqCall(t, e, "GET", "/keys/dsa65", ""); r.Status != http.StatusNotFound {
			t.Fatalf("after purge: %d", r.Status)
		}
		if _, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil); err != nil {
			t.Fatalf("restore: %v", err)
		}
		restored := getAKP(t, e, "dsa65")
		if restored.Key.Pub != after.Key.Pub {
			t.Fatal("restored key has another public key")
		}
		pk, _ := mldsa65.Scheme().UnmarshalBinaryPublicKey(unb64u(t, restored.Key.Pub))
		sr, err := c.Sign(ctx, "dsa65", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(keys.AlgMLDSA65)), Value: msg}, nil)
		if err != nil || !mldsa65.Scheme().Verify(pk, msg, sr.Result, nil) {
			t.Errorf("restored key's signature: %v", err)
		}
		// The old version still verifies through the API.
		ver := before.Key.Kid[strings.LastIndex(before.Key.Kid, "/")+1:]
		old, err := c.Sign(ctx, "dsa65", ver, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(keys.AlgMLDSA65)), Value: msg}, nil)
		oldPK, _ := mldsa65.Scheme().UnmarshalBinaryPublicKey(unb64u(t, before.Key.Pub))
		if err != nil || !mldsa65.Scheme().Verify(oldPK, msg, old.Result, nil) {
			t.Errorf("old version after restore: %v", err)
		}
	})

	t.Run("ML-KEM encapsulate and decapsulate via the API and locally", func(t *testing.T) {
		var secretsSeen []string
		for _, alg := range []string{keys.AlgMLKEM768, keys.AlgMLKEM1024} {
			seed := make([]byte, 64)
			rand.Read(seed)
			name := "kem" + strings.TrimPrefix(alg, "ML-KEM-")
			if r := pqCall(t, e, "PUT", "/keys/"+name, `{"key":{"kty":"AKP","alg":"`+alg+`","priv":"`+b64u(seed)+`"}}`); r.Status != http.StatusOK {
				t.Fatalf("%s import: %d %s", alg, r.Status, r.Body)
			}
			w := getAKP(t, e, name)
			if w.Key.Alg != alg || strings.Join(w.Key.KeyOps, ",") != "encapsulate,decapsulate" {
				t.Errorf("%s: alg %s key_ops %v", alg, w.Key.Alg, w.Key.KeyOps)
			}
			r := pqCall(t, e, "POST", "/keys/"+name+"/encapsulate", `{"alg":"`+alg+`"}`)
			var enc struct {
				Kid, Value   string
				SharedSecret string `json:"shared_secret"`
			}
			if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &enc) != nil || !strings.HasSuffix(w.Key.Kid, enc.Kid[strings.LastIndex(enc.Kid, "/"):]) {
				t.Fatalf("%s encapsulate: %d %s", alg, r.Status, r.Body)
			}
			ct, ss := unb64u(t, enc.Value), unb64u(t, enc.SharedSecret)
			secretsSeen = append(secretsSeen, enc.SharedSecret, b64u(seed), base64.StdEncoding.EncodeToString(seed))
			r = pqCall(t, e, "POST", "/keys/"+name+"/decapsulate", `{"alg":"`+alg+`","value":"`+enc.Value+`"}`)
			var dec struct{ Kid, Value string }
			if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &dec) != nil || !bytes.Equal(unb64u(t, dec.Value), ss) || len(ss) != 32 {
				t.Fatalf("%s decapsulate via API: %d %s", alg, r.Status, r.Body)
			}
			// Locally: crypto/mlkem and circl from the seed the test holds.
			var local, circlSS []byte
			var circlCT []byte
			if alg == keys.AlgMLKEM768 {
				dk, _ := mlkem.NewDecapsulationKey768(seed)
				local, _ = dk.Decapsulate(ct)
				pk, sk := mlkem768.NewKeyFromSeed(seed)
				got := make([]byte, 32)
				sk.DecapsulateTo(got, ct)
				if !bytes.Equal(got, ss) {
					t.Errorf("%s: circl decapsulates the API's ciphertext to another secret", alg)
				}
				circlCT, circlSS = make([]byte, mlkem768.CiphertextSize), make([]byte, 32)
				pk.EncapsulateTo(circlCT, circlSS, nil)
			} else {
				dk, _ := mlkem.NewDecapsulationKey1024(seed)
				local, _ = dk.Decapsulate(ct)
				pk, sk := mlkem1024.NewKeyFromSeed(seed)
				got := make([]byte, 32)
				sk.DecapsulateTo(got, ct)
				if !bytes.Equal(got, ss) {
					t.Errorf("%s: circl decapsulates the API's ciphertext to another secret", alg)
				}
				circlCT, circlSS = make([]byte, mlkem1024.CiphertextSize), make([]byte, 32)
				pk.EncapsulateTo(circlCT, circlSS, nil)
			}
			if !bytes.Equal(local, ss) {
				t.Errorf("%s: crypto/mlkem decapsulates the API's ciphertext to another secret", alg)
			}
			// circl encapsulates to the key; the API decapsulates.
			r = pqCall(t, e, "POST", "/keys/"+name+"/decapsulate", `{"alg":"`+alg+`","value":"`+b64u(circlCT)+`"}`)
			if json.Unmarshal([]byte(r.Body), &dec) != nil || r.Status != http.StatusOK || !bytes.Equal(unb64u(t, dec.Value), circlSS) {
				t.Errorf("%s: API decapsulation of circl's ciphertext: %d %s", alg, r.Status, r.Body)
			}
			// Bad input: wrong length, wrong alg, a value on encapsulate.
			wantBadParameter(t, alg+" short ciphertext", pqCall(t, e, "POST", "/keys/"+name+"/decapsulate", `{"alg":"`+alg+`","value":"`+b64u(ct[1:])+`"}`))
			wantBadParameter(t, alg+" wrong alg", pqCall(t, e, "POST", "/keys/"+name+"/encapsulate", `{"alg":"ML-KEM-512"}`))
			wantBadParameter(t, alg+" value on encapsulate", pqCall(t, e, "POST", "/keys/"+name+"/encapsulate", `{"alg":"`+alg+`","value":"AAAA"}`))
			wantBadParameter(t, alg+" not base64url", pqCall(t, e, "POST", "/keys/"+name+"/decapsulate", `{"alg":"`+alg+`","value":"@@"}`))
		}
		// Audited as KeyEncapsulate/KeyDecapsulate on the key version; the
		// audit log never holds a shared secret or the ML-KEM seed.
		findAudit(t, e, "KeyEncapsulate", func(ev audit.Event) bool {
			return ev.Operation == "KeyEncapsulate" && strings.Contains(ev.ObjectID, "/keys/kem768/") && ev.Status == http.StatusOK
		})
		findAudit(t, e, "KeyDecapsulate", func(ev audit.Event) bool {
			return ev.Operation == "KeyDecapsulate" && strings.Contains(ev.ObjectID, "/keys/kem1024/") && ev.Status == http.StatusOK
		})
		logBytes, err := os.ReadFile(filepath.Join(e.DataDir, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secretsSeen {
			if strings.Contains(string(logBytes), s) {
				t.Error("the audit log holds a shared secret or seed")
			}
		}

		// A generated key works the same; an ML-DSA key cannot encapsulate.
		if r := pqCall(t, e, "POST", "/keys/kemgen/create", `{"kty":"AKP","alg":"ML-KEM-768"}`); r.Status != http.StatusOK {
			t.Fatalf("create ML-KEM-768: %d %s", r.Status, r.Body)
		}
		if r := pqCall(t, e, "POST", "/keys/kemgen/encapsulate", `{"alg":"ML-KEM-768"}`); r.Status != http.StatusOK {
			t.Errorf("encapsulate with a generated key: %d %s", r.Status, r.Body)
		}
		r := pqCall(t, e, "POST", "/keys/dsa44/encapsulate", `{"alg":"ML-DSA-44"}`)
		if code, inner := azureError(r.Body); r.Status != http.StatusForbidden || code != "Forbidden" || inner != "KeyOperationNotAllowed" {
			t.Errorf("encapsulate with an ML-DSA key: %d %s", r.Status, r.Body)
		}
		// key_ops without decapsulate: Azure's KeyOperationNotAllowed.
		if r := pqCall(t, e, "POST", "/keys/kemenc/create", `{"kty":"AKP","alg":"ML-KEM-1024","key_ops":["encapsulate"]}`); r.Status != http.StatusOK {
			t.Fatalf("create encapsulate-only: %d %s", r.Status, r.Body)
		}
		r = pqCall(t, e, "POST", "/keys/kemenc/decapsulate", `{"alg":"ML-KEM-1024","value":"`+b64u(make([]byte, mlkem.CiphertextSize1024))+`"}`)
		if _, inner := azureError(r.Body); r.Status != http.StatusForbidden || inner != "KeyOperationNotAllowed" {
			t.Errorf("decapsulate without the key op: %d %s", r.Status, r.Body)
		}
	})

	t.Run("X25519MLKEM768 hybrid wrap through the SDK", func(t *testing.T) {
		seed := make([]byte, 32)
		rand.Read(seed)
		if r := pqCall(t, e, "PUT", "/keys/hybrid", `{"key":{"kty":"AKP","alg":"X25519MLKEM768","priv":"`+b64u(seed)+`"}}`); r.Status != http.StatusOK {
			t.Fatalf("import hybrid: %d %s", r.Status, r.Body)
		}
		alg := azkeys.EncryptionAlgorithm(keys.AlgX25519MLKEM768)
		dek := make([]byte, 32)
		rand.Read(dek)
		wr, err := c.WrapKey(ctx, "hybrid", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: dek}, nil)
		if err != nil || len(wr.Result) != 1088+32+40 {
			t.Fatalf("wrap: %v (%d bytes)", err, len(wr.Result))
		}
		ur, err := c.UnwrapKey(ctx, "hybrid", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: wr.Result}, nil)
		if err != nil || !bytes.Equal(ur.Result, dek) {
			t.Fatalf("unwrap via API: %v", err)
		}
		local, err := keys.PQFromJWK(keys.JWK{Kty: "AKP", Alg: keys.AlgX25519MLKEM768, Priv: seed})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := local.UnwrapKey(keys.AlgX25519MLKEM768, wr.Result); err != nil || !bytes.Equal(got, dek) {
			t.Errorf("local unwrap of the API's wrap: %v", err)
		}
		lw, _ := local.WrapKey(keys.AlgX25519MLKEM768, dek)
		if ur, err := c.UnwrapKey(ctx, "hybrid", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: lw}, nil); err != nil || !bytes.Equal(ur.Result, dek) {
			t.Errorf("API unwrap of a local wrap: %v", err)
		}
		bad := bytes.Clone(wr.Result)
		bad[1100] ^= 1
		r := pqCall(t, e, "POST", "/keys/hybrid/unwrapkey", `{"alg":"X25519MLKEM768","value":"`+b64u(bad)+`"}`)
		wantBadParameter(t, "unwrap of a tampered wrap", r)
		if strings.Contains(r.Body, b64u(dek)) {
			t.Error("the error carries the data key")
		}
	})

	t.Run("bad input is a 400 and changes nothing", func(t *testing.T) {
		seed := b64u(make([]byte, 32))
		for name, body := range map[string]string{
			"short seed":            `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"` + b64u(make([]byte, 31)) + `"}}`,
			"no alg":                `{"key":{"kty":"AKP","priv":"` + seed + `"}}`,
			"unknown alg":           `{"key":{"kty":"AKP","alg":"ML-DSA-99","priv":"` + seed + `"}}`,
			"pub mismatch":          `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"` + seed + `","pub":"AAAA"}}`,
			"public only":           `{"key":{"kty":"AKP","alg":"ML-DSA-44","pub":"` + b64u(make([]byte, mldsa44.PublicKeySize)) + `"}}`,
			"rsa fields":            `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"` + seed + `","n":"AQAB"}}`,
			"bad key_ops":           `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"` + seed + `","key_ops":["encrypt"]}}`,
			"kem ops on dsa":        `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"` + seed + `","key_ops":["encapsulate"]}}`,
			"priv on EC":            `{"key":{"kty":"EC","crv":"P-256","x":"` + seed + `","y":"` + seed + `","priv":"` + seed + `"}}`,
			"priv not base64":       `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"!!"}}`,
			"exportable":            `{"key":{"kty":"AKP","alg":"ML-DSA-44","priv":"` + seed + `"},"attributes":{"exportable":true},"release_policy":{"data":"e30"}}`,
			"encapsulate op on RSA": `{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","key_ops":["encapsulate"]}}`,
		} {
			wantBadParameter(t, "import "+name, pqCall(t, e, "PUT", "/keys/badimport", body))
		}
		for name, body := range map[string]string{
			"unknown alg":    `{"kty":"AKP","alg":"ML-DSA-99"}`,
			"no alg":         `{"kty":"AKP"}`,
			"alg crv differ": `{"kty":"AKP","alg":"ML-DSA-44","crv":"ML-DSA-65"}`,
			"key_size":       `{"kty":"AKP","alg":"ML-DSA-44","key_size":2048}`,
			"wrong ops":      `{"kty":"AKP","alg":"ML-KEM-768","key_ops":["sign"]}`,
		} {
			wantBadParameter(t, "create "+name, pqCall(t, e, "POST", "/keys/badimport/create", body))
		}
		if r := pqCall(t, e, "GET", "/keys/badimport", ""); r.Status != http.StatusNotFound {
			t.Errorf("a refused request created the key: %d", r.Status)
		}
		wantBadParameter(t, "sign with ES256", pqCall(t, e, "POST", "/keys/dsa44/sign", `{"alg":"ES256","value":"`+b64u(make([]byte, 32))+`"}`))
		wantBadParameter(t, "sign with another parameter set", pqCall(t, e, "POST", "/keys/dsa44/sign", `{"alg":"ML-DSA-65","value":"AAAA"}`))
		if r := pqCall(t, e, "POST", "/keys/dsa44/encrypt", `{"alg":"ML-DSA-44","value":"AAAA"}`); !strings.Contains(r.Body, "KeyOperationNotAllowed") || r.Status != http.StatusForbidden {
			t.Errorf("encrypt with ML-DSA: %d %s", r.Status, r.Body)
		}
		wantBadParameter(t, "AKP-HSM on a standard vault", pqCall(t, e, "POST", "/keys/badimport/create", `{"kty":"AKP-HSM","alg":"ML-DSA-44"}`))
		if r := pqCall(t, e, "GET", "/keys/badimport", ""); r.Status != http.StatusNotFound {
			t.Errorf("a refused request created the key: %d", r.Status)
		}
	})
}

// TestPostQuantumHSMRefused: SoftHSM2 has no ML-DSA or ML-KEM mechanisms,
// so a premium vault's AKP-HSM key and any AKP key in a managed HSM pool
// are refused with an Azure-shaped 400 naming the reason; a software AKP
// key in the premium vault works.
func TestPostQuantumHSMRefused(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	for what, r := range map[string]httpResult{
		"create AKP-HSM":    pqCall(t, e, "POST", "/keys/pqhsm/create", `{"kty":"AKP-HSM","alg":"ML-DSA-65"}`),
		"import with Hsm":   pqCall(t, e, "PUT", "/keys/pqhsm", `{"key":{"kty":"AKP","alg":"ML-KEM-768","priv":"`+b64u(make([]byte, 64))+`"},"Hsm":true}`),
		"import AKP-HSM":    pqCall(t, e, "PUT", "/keys/pqhsm", `{"key":{"kty":"AKP-HSM","alg":"ML-DSA-44","priv":"`+b64u(make([]byte, 32))+`"}}`),
		"BYOK AKP transfer": pqCall(t, e, "PUT", "/keys/pqhsm", `{"key":{"kty":"AKP-HSM","key_hsm":"e30"}}`),
	} {
		wantBadParameter(t, what, r)
		if !strings.Contains(r.Body, "ML-DSA or ML-KEM mechanisms") {
			t.Errorf("%s: the error does not say why: %s", what, r.Body)
		}
	}
	if r := pqCall(t, e, "GET", "/keys/pqhsm", ""); r.Status != http.StatusNotFound {
		t.Errorf("a refused request created the key: %d", r.Status)
	}
	code, body := hsmCall(t, e, e.Credential(), "dev", "POST", "/keys/pqpool/create", map[string]string{"kty": "AKP", "alg": "ML-DSA-65"})
	if c, _ := azureError(string(body)); code != http.StatusBadRequest || c != "BadParameter" || !strings.Contains(string(body), "managed HSM") {
		t.Errorf("managed HSM AKP key: %d %s", code, body)
	}
	if r := pqCall(t, e, "POST", "/keys/pqsoft/create", `{"kty":"AKP","alg":"ML-DSA-65"}`); r.Status != http.StatusOK || !strings.Contains(r.Body, `"kty":"AKP"`) {
		t.Errorf("software AKP key in the premium vault: %d %s", r.Status, r.Body)
	}
}

// TestPostQuantumFIPSOnly runs a server under GODEBUG=fips140=only (by
// re-running this test binary): ML-KEM (crypto/mlkem, inside Go's FIPS
// module) works; ML-DSA (circl, outside it) and the X25519 hybrid are
// refused with Azure's BadParameter / NotAllowedInFIPSMode.
func TestPostQuantumFIPSOnly(t *testing.T) {
	if !fips140.Enforced() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPostQuantumFIPSOnly$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=fips140=only")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestPostQuantumFIPSOnly") {
			t.Fatalf("under fips140=only: %v\n%s", err, out)
		}
		return
	}
	e := kwtest.Start(t, kwtest.Options{})
	for _, alg := range []string{keys.AlgMLDSA44, keys.AlgMLDSA65, keys.AlgMLDSA87, keys.AlgX25519MLKEM768} {
		r := pqCall(t, e, "POST", "/keys/pqfips/create", `{"kty":"AKP","alg":"`+alg+`"}`)
		if code, inner := azureError(r.Body); r.Status != http.StatusBadRequest || code != "BadParameter" || inner != "NotAllowedInFIPSMode" {
			t.Errorf("%s under fips140=only: %d %s", alg, r.Status, r.Body)
		}
	}
	if r := pqCall(t, e, "GET", "/keys/pqfips", ""); r.Status != http.StatusNotFound {
		t.Errorf("a refused create made the key: %d", r.Status)
	}
	if r := pqCall(t, e, "POST", "/keys/kemfips/create", `{"kty":"AKP","alg":"ML-KEM-1024"}`); r.Status != http.StatusOK {
		t.Fatalf("ML-KEM-1024 under fips140=only: %d %s", r.Status, r.Body)
	}
	r := pqCall(t, e, "POST", "/keys/kemfips/encapsulate", `{"alg":"ML-KEM-1024"}`)
	var enc struct {
		Value        string
		SharedSecret string `json:"shared_secret"`
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &enc) != nil {
		t.Fatalf("encapsulate: %d %s", r.Status, r.Body)
	}
	r = pqCall(t, e, "POST", "/keys/kemfips/decapsulate", `{"alg":"ML-KEM-1024","value":"`+enc.Value+`"}`)
	var dec struct{ Value string }
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &dec) != nil || dec.Value != enc.SharedSecret {
		t.Fatalf("decapsulate: %d %s", r.Status, r.Body)
	}
}

// TestPostQuantumKEMAccess: encapsulate is authorized as keys/wrap/action
// and decapsulate as keys/unwrap/action. In an RBAC vault a principal
// without a role gets 403 ForbiddenByRbac; with Key Vault Crypto Service
// Encryption User (read, wrap, unwrap) both work; with Key Vault Reader
// neither does.
func TestPostQuantumKEMAccess(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	createVault(t, e, e.Credential(), "pqrbac", true, nil)
	assign(t, e, e.Credential(), vaultScope(e, "pqrbac"), authz.RoleKeyVaultAdministrator, devObjectID(t, e))
	url := vaultURLOf(e, "pqrbac")
	admin := tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0])
	if r := do(t, e, "POST", url+"keys/kem/create?api-version=7.5", admin, "application/json", `{"kty":"AKP","alg":"ML-KEM-768"}`); r.Status != http.StatusOK {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	r := do(t, e, "POST", url+"keys/kem/encapsulate?api-version=7.5", admin, "application/json", `{"alg":"ML-KEM-768"}`)
	var enc struct{ Value string }
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &enc) != nil {
		t.Fatalf("admin encapsulate: %d %s", r.Status, r.Body)
	}
	unpriv := tokenFor(t, e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret), tokenOpts(e).Scopes[0])
	call := func(op, body string) httpResult {
		return do(t, e, "POST", url+"keys/kem/"+op+"?api-version=7.5", unpriv, "application/json", body)
	}
	encBody, decBody := `{"alg":"ML-KEM-768"}`, `{"alg":"ML-KEM-768","value":"`+enc.Value+`"}`
	check := func(stage string, want int) {
		t.Helper()
		for op, body := range map[string]string{"encapsulate": encBody, "decapsulate": decBody} {
			r := call(op, body)
			code, inner := azureError(r.Body)
			if r.Status != want || want == http.StatusForbidden && (code != "Forbidden" || inner != "ForbiddenByRbac") {
				t.Errorf("%s, %s: %d %s, want %d", stage, op, r.Status, r.Body, want)
			}
		}
	}
	check("no role", http.StatusForbidden)
	assign(t, e, e.Credential(), vaultScope(e, "pqrbac"), authz.RoleKeyVaultReader, e.Info.UnprivilegedObjectID)
	check("Key Vault Reader", http.StatusForbidden)
	assign(t, e, e.Credential(), vaultScope(e, "pqrbac"), authz.RoleKeyVaultCryptoServiceEncUser, e.Info.UnprivilegedObjectID)
	check("Crypto Service Encryption User", http.StatusOK)
}
