package keys_test

import (
	"bytes"
	"compress/gzip"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

// Wycheproof vectors from testdata/wycheproof (provenance: testdata/README.md).

// acceptableFlags classifies every flag that appears on an "acceptable"
// result: true means this package accepts such inputs, false that it
// rejects them. An acceptable test whose flags are not listed fails.
var acceptableFlags = map[string]bool{
	// PKCS #1 v1.5 DigestInfo with the NULL hash parameter omitted. RFC 8017
	// §9.2 note 1 lists the NULL form only; crypto/rsa (and Key Vault's
	// RS* encoding) produce and accept only that one.
	"MissingNull": false,
}

type wpFile struct {
	Algorithm     string            `json:"algorithm"`
	Schema        string            `json:"schema"`
	NumberOfTests int               `json:"numberOfTests"`
	TestGroups    []json.RawMessage `json:"testGroups"`
}

type wpTest struct {
	TcID   int      `json:"tcId"`
	Flags  []string `json:"flags"`
	Msg    hexBytes `json:"msg"`
	Ct     hexBytes `json:"ct"`
	Label  hexBytes `json:"label"`
	Sig    hexBytes `json:"sig"`
	Result string   `json:"result"`
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type b64Bytes []byte

func (b *b64Bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	d, err := base64.RawURLEncoding.DecodeString(s)
	*b = d
	return err
}

func loadWycheproof(t *testing.T, name string) wpFile {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "wycheproof", name+".json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var file wpFile
	if err := json.NewDecoder(zr).Decode(&file); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return file
}

// wantValid turns a Wycheproof result into the outcome this package must give.
func wantValid(t *testing.T, tc wpTest) bool {
	t.Helper()
	switch tc.Result {
	case "valid":
		return true
	case "invalid":
		return false
	case "acceptable":
		classified, accept := false, true
		for _, f := range tc.Flags {
			if v, ok := acceptableFlags[f]; ok {
				classified = true
				accept = accept && v
			}
		}
		if !classified {
			t.Fatalf("tcId %d: acceptable result with unclassified flags %v; add them to acceptableFlags", tc.TcID, tc.Flags)
		}
		return accept
	default:
		t.Fatalf("tcId %d: unknown result %q", tc.TcID, tc.Result)
		return false
	}
}

// tally counts outcomes so each file can be checked to have run every test.
type tally struct{ n, valid, invalid, acceptable int }

func (c *tally) add(tc wpTest) {
	c.n++
	switch tc.Result {
	case "valid":
		c.valid++
	case "invalid":
		c.invalid++
	default:
		c.acceptable++
	}
}

func (c *tally) check(t *testing.T, name string, file wpFile) {
	t.Helper()
	if c.n != file.NumberOfTests || c.n == 0 {
		t.Errorf("ran %d tests, file has %d", c.n, file.NumberOfTests)
	}
	t.Logf("%s (%s): %d tests (%d valid, %d invalid, %d acceptable)", name, file.Algorithm, c.n, c.valid, c.invalid, c.acceptable)
}

var wpHash = map[string]crypto.Hash{"SHA-1": crypto.SHA1, "SHA-256": crypto.SHA256, "SHA-384": crypto.SHA384, "SHA-512": crypto.SHA512}

func TestWycheproofDecrypt(t *testing.T) {
	for file, alg := range map[string]string{
		"rsa_oaep_2048_sha1_mgf1sha1":     "RSA-OAEP",
		"rsa_oaep_2048_sha256_mgf1sha256": "RSA-OAEP-256",
		"rsa_pkcs1_2048":                  "RSA1_5",
	} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			f := loadWycheproof(t, file)
			var c tally
			for _, raw := range f.TestGroups {
				var g struct {
					JWK struct {
						Kty                       string
						N, E, D, P, Q, DP, DQ, QI b64Bytes
					} `json:"privateKeyJwk"`
					Tests []wpTest `json:"tests"`
				}
				if err := json.Unmarshal(raw, &g); err != nil {
					t.Fatal(err)
				}
				j := g.JWK
				k, err := keys.FromJWK(keys.JWK{Kty: j.Kty, N: j.N, E: j.E, D: j.D, P: j.P, Q: j.Q, DP: j.DP, DQ: j.DQ, QI: j.QI})
				if err != nil {
					t.Fatalf("FromJWK of the group key: %v", err)
				}
				for _, tc := range g.Tests {
					c.add(tc)
					want := wantValid(t, tc)
					if len(tc.Label) != 0 {
						want = false // Key Vault's OAEP has no label parameter: the label is always empty
					}
					pt, err := k.Decrypt(alg, tc.Ct)
					switch {
					case want && (err != nil || !bytes.Equal(pt, tc.Msg)):
						t.Errorf("tcId %d %v: valid ciphertext: err %v, plaintext matches %v", tc.TcID, tc.Flags, err, bytes.Equal(pt, tc.Msg))
					case !want && err != keys.ErrDecryption:
						t.Errorf("tcId %d %v: invalid ciphertext: got %d bytes, err %v; want exactly ErrDecryption", tc.TcID, tc.Flags, len(pt), err)
					}
				}
			}
			c.check(t, file, f)
		})
	}
}

func TestWycheproofVerify(t *testing.T) {
	for file, alg := range map[string]string{
		"rsa_signature_2048_sha256":    "RS256",
		"rsa_pss_2048_sha256_mgf1_32":  "PS256",
		"ecdsa_secp256r1_sha256_p1363": "ES256",
		"ecdsa_secp384r1_sha384_p1363": "ES384",
		"ecdsa_secp521r1_sha512_p1363": "ES512",
		"ecdsa_secp256k1_sha256_p1363": "ES256K",
	} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			f := loadWycheproof(t, file)
			var c tally
			for _, raw := range f.TestGroups {
				var g struct {
					PublicKey struct {
						Modulus, PublicExponent, Wx, Wy hexBytes
						Curve                           string
					} `json:"publicKey"`
					Sha    string   `json:"sha"`
					MgfSha string   `json:"mgfSha"`
					SLen   int      `json:"sLen"`
					Tests  []wpTest `json:"tests"`
				}
				if err := json.Unmarshal(raw, &g); err != nil {
					t.Fatal(err)
				}
				h, ok := wpHash[g.Sha]
				if !ok || (g.MgfSha != "" && g.MgfSha != g.Sha) || (alg[:2] == "PS" && g.SLen != h.Size()) {
					t.Fatalf("group parameters %s/%s/%d do not match %s", g.Sha, g.MgfSha, g.SLen, alg)
				}
				pk := g.PublicKey
				j := keys.JWK{Kty: "RSA", N: pk.Modulus, E: pk.PublicExponent}
				if strings.HasPrefix(alg, "ES") {
					crv := map[string]string{"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521", "secp256k1": "P-256K"}[pk.Curve]
					n := map[string]int{"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}[crv]
					j = keys.JWK{Kty: "EC", Crv: crv, X: leftPad(pk.Wx, n), Y: leftPad(pk.Wy, n)}
				}
				k, err := keys.FromJWK(j)
				if err != nil {
					t.Fatalf("FromJWK of the group key: %v", err)
				}
				for _, tc := range g.Tests {
					c.add(tc)
					hh := h.New()
					hh.Write(tc.Msg)
					ok, err := k.Verify(alg, hh.Sum(nil), tc.Sig)
					if err != nil {
						t.Errorf("tcId %d %v: Verify error %v (a bad signature must be false, nil)", tc.TcID, tc.Flags, err)
					} else if want := wantValid(t, tc); ok != want {
						t.Errorf("tcId %d %v (%s): Verify = %v, want %v", tc.TcID, tc.Flags, tc.Result, ok, want)
					}
				}
			}
			c.check(t, file, f)
		})
	}
}

// leftPad strips leading zeros (Wycheproof hex is ASN.1-style) and pads to n.
func leftPad(b []byte, n int) []byte {
	b = bytes.TrimLeft(b, "\x00")
	if len(b) > n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}
