//go:build cgo

package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/go-jose/go-jose/v4"
	"github.com/miekg/pkcs11"

	"github.com/keyward/keyward/internal/byok"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestBYOKAndRelease is issue #14's proof for BYOK, secure key release and
// key attestation, with the official azkeys SDK against a dev server whose
// premium vault keeps its keys in a real SoftHSM2 token:
//   - a .byok made by `keyward byok` and one made by the OpenSSL recipe of
//     CRYPTO.md §4.4 both import (RSA and EC targets) and sign with
//     signatures that verify under the original public keys;
//   - every negative case of §4.4 answers 400 BadParameter and leaves no
//     object behind in the token;
//   - a release whose token matches the policy gives the key, which the
//     client unwraps to the same material; a non-matching claim is denied
//     (403); an immutable policy cannot be changed;
//   - an HSM key's attestation verifies under the HSM-held instance key.
func TestBYOKAndRelease(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	if e.Info.HSM == nil || e.Info.Attestation == nil {
		t.Fatalf("dev.json lacks hsm or attestation: %+v %+v", e.Info.HSM, e.Info.Attestation)
	}
	ctx := context.Background()
	c, err := azkeys.NewClient(e.Info.VaultURL, e.Credential(), &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The key exchange key and its public key, as a customer downloads it.
	kek, err := c.CreateKey(ctx, "kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(3072)),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kekID := string(*kek.Key.KID)
	kekDER, _ := x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())})
	kekPEM := write("kek.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: kekDER}))
	kekJSON, _ := json.Marshal(kek.KeyBundle)
	kekJSONFile := write("kek.json", kekJSON)

	base := countObjects(t, e)

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaPEM := write("rsa.pem", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecDERFile := write("ec.der", ecDER)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	rsaDERFile := write("rsa.der", rsaDER)

	importBYOK := func(name string, kty azkeys.KeyType, crv *azkeys.CurveName, file []byte) (azkeys.ImportKeyResponse, error) {
		return c.ImportKey(ctx, name, azkeys.ImportKeyParameters{HSM: to.Ptr(true),
			Key: &azkeys.JSONWebKey{Kty: to.Ptr(kty), Crv: crv, T: file, KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign)}}}, nil)
	}
	signs := func(name string, alg azkeys.SignatureAlgorithm, pub crypto.PublicKey) {
		t.Helper()
		d := sha256.Sum256([]byte("signed after BYOK"))
		s, err := c.Sign(ctx, name, "", azkeys.SignParameters{Algorithm: to.Ptr(alg), Value: d[:]}, nil)
		if err != nil {
			t.Fatal(name, err)
		}
		switch p := pub.(type) {
		case *rsa.PublicKey:
			if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, d[:], s.Result); err != nil {
				t.Fatalf("%s: the original public key rejects the signature: %v", name, err)
			}
		case *ecdsa.PublicKey:
			if len(s.Result) != 64 || !ecdsa.Verify(p, d[:], new(big.Int).SetBytes(s.Result[:32]), new(big.Int).SetBytes(s.Result[32:])) {
				t.Fatalf("%s: the original public key rejects the signature", name)
			}
		}
	}

	// 1. `keyward byok` (PEM PKCS #1 RSA key; EC key with the KEK as JWK
	// JSON, whose kid is taken from it).
	if out, err := (cli{t: t}).run("byok", "--key", rsaPEM, "--kek", kekPEM, "--kid", kekID, "-o", filepath.Join(dir, "rsa.byok")); err != nil {
		t.Fatal(err, out)
	}
	if out, err := (cli{t: t}).run("byok", "--key", ecDERFile, "--kek", kekJSONFile, "--enc", byok.EncRSAAESKeyWrap256, "-o", filepath.Join(dir, "ec.byok")); err != nil {
		t.Fatal(err, out)
	}
	rsaBYOK, _ := os.ReadFile(filepath.Join(dir, "rsa.byok"))
	ecBYOK, _ := os.ReadFile(filepath.Join(dir, "ec.byok"))
	r, err := importBYOK("byok-rsa", azkeys.KeyTypeRSAHSM, nil, rsaBYOK)
	if err != nil {
		t.Fatal(err)
	}
	if *r.Key.Kty != azkeys.KeyTypeRSAHSM || new(big.Int).SetBytes(r.Key.N).Cmp(rsaKey.N) != 0 {
		t.Fatal("imported RSA-HSM key has another public key")
	}
	signs("byok-rsa", azkeys.SignatureAlgorithmRS256, &rsaKey.PublicKey)
	r, err = importBYOK("byok-ec", azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP256), ecBYOK)
	if err != nil {
		t.Fatal(err)
	}
	if new(big.Int).SetBytes(r.Key.X).Cmp(ecKey.X) != 0 {
		t.Fatal("imported EC-HSM key has another public key")
	}
	signs("byok-ec", azkeys.SignatureAlgorithmES256, &ecKey.PublicKey)

	// 2. The OpenSSL recipe (an independent producer).
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed for the OpenSSL BYOK recipe")
	}
	recipe := func(target, enc string) []byte {
		out, err := exec.Command("sh", "../../internal/byok/testdata/openssl-byok.sh", kekPEM, target, enc, kekID).Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if _, err := importBYOK("openssl-rsa", azkeys.KeyTypeRSAHSM, nil, recipe(rsaDERFile, byok.EncRSAAESKeyWrap)); err != nil {
		t.Fatal(err)
	}
	signs("openssl-rsa", azkeys.SignatureAlgorithmRS256, &rsaKey.PublicKey)
	if _, err := importBYOK("openssl-ec", azkeys.KeyTypeECHSM, nil, recipe(ecDERFile, byok.EncRSAAESKeyWrap384)); err != nil {
		t.Fatal(err)
	}
	signs("openssl-ec", azkeys.SignatureAlgorithmES256, &ecKey.PublicKey)

	// 3. Negative cases: each 400 BadParameter, no key, nothing in the token.
	after := countObjects(t, e)
	if after != base+8 { // 4 imports × (private + public object)
		t.Fatalf("token objects %d → %d after 4 imports", base, after)
	}
	other, err := c.CreateKey(ctx, "not-a-kek", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport), to.Ptr(azkeys.KeyOperationSign)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after = countObjects(t, e)
	blob := func(f []byte, mut func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(f, &m)
		mut(m)
		b, _ := json.Marshal(m)
		return b
	}
	ct := func(f []byte) []byte {
		b, _ := byok.Parse(f)
		return b.Ciphertext
	}
	setCT := func(b []byte) func(m map[string]any) {
		return func(m map[string]any) { m["ciphertext"] = base64.RawURLEncoding.EncodeToString(b) }
	}
	flipped := ct(rsaBYOK)
	flipped[len(flipped)-5] ^= 1
	for name, tc := range map[string]struct {
		kty  azkeys.KeyType
		crv  *azkeys.CurveName
		file []byte
	}{
		"wrong kid": {azkeys.KeyTypeRSAHSM, nil, blob(rsaBYOK, func(m map[string]any) { m["header"].(map[string]any)["kid"] = otherVersion(kekID) })},
		"kid of another host": {azkeys.KeyTypeRSAHSM, nil, blob(rsaBYOK, func(m map[string]any) {
			m["header"].(map[string]any)["kid"] = "https://other.vault.azure.net/keys/kek/" + kekID[len(kekID)-32:]
		})},
		"KEK not import-only": {azkeys.KeyTypeRSAHSM, nil, blob(rsaBYOK, func(m map[string]any) { m["header"].(map[string]any)["kid"] = string(*other.Key.KID) })},
		"truncated":           {azkeys.KeyTypeRSAHSM, nil, blob(rsaBYOK, setCT(ct(rsaBYOK)[:300]))},
		"flipped byte in wk":  {azkeys.KeyTypeRSAHSM, nil, blob(rsaBYOK, setCT(flipped))},
		"unknown enc":         {azkeys.KeyTypeRSAHSM, nil, blob(rsaBYOK, func(m map[string]any) { m["header"].(map[string]any)["enc"] = "RSA_AES_KEY_WRAP_512" })},
		"curve mismatch":      {azkeys.KeyTypeECHSM, to.Ptr(azkeys.CurveNameP384), ecBYOK},
		"EC into RSA-HSM":     {azkeys.KeyTypeRSAHSM, nil, ecBYOK},
		"RSA into EC-HSM":     {azkeys.KeyTypeECHSM, nil, rsaBYOK},
		"software kty":        {azkeys.KeyTypeRSA, nil, rsaBYOK},
		"not JSON":            {azkeys.KeyTypeRSAHSM, nil, []byte("not a byok file")},
	} {
		kty := tc.kty
		_, err := c.ImportKey(ctx, "neg", azkeys.ImportKeyParameters{
			Key: &azkeys.JSONWebKey{Kty: &kty, Crv: tc.crv, T: tc.file}}, nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest || re.ErrorCode != "BadParameter" {
			t.Fatalf("%s: %v", name, err)
		}
		if n := countObjects(t, e); n != after {
			t.Fatalf("%s: the token has %d objects, before %d", name, n, after)
		}
	}
	if _, err := c.GetKey(ctx, "neg", "", nil); err == nil {
		t.Fatal("a refused import created a key")
	}

	// 4. Secure key release.
	runtime, _ := rsa.GenerateKey(rand.Reader, 2048)
	rtDER, _ := x509.MarshalPKIXPublicKey(&runtime.PublicKey)
	rtPEM := write("runtime.pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rtDER}))
	policy := `{"version":"1.0.0","anyOf":[{"authority":"` + e.Info.Attestation.Issuer + `","allOf":[
		{"claim":"x-ms-isolation-tee.x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"svn","greaterOrEquals":2}]}]}`
	rp := &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(policy), Immutable: to.Ptr(true)}
	exp, err := c.CreateKey(ctx, "exportable", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
		KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)}, ReleasePolicy: rp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	soft, err := c.CreateKey(ctx, "exportable-soft", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC),
		KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)}, ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(policy)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	token := func(claims string) string {
		out, err := (cli{t: t}).run("attestation-token", "--dev-json", filepath.Join(e.DataDir, "dev.json"), "--runtime-key", rtPEM, "--claims", claims)
		if err != nil {
			t.Fatal(err, out)
		}
		return strings.TrimSpace(out)
	}
	// The authority binds the request's nonce into the token (MAA's nonce
	// claim); the release request names the same one.
	good := token(`{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm"},"svn":3,"nonce":"n-1"}`)
	for _, k := range []struct {
		name string
		enc  azkeys.KeyEncryptionAlgorithm
		pub  func(crypto.PrivateKey) bool
	}{
		{"exportable", azkeys.KeyEncryptionAlgorithmCKMRSAAESKEYWRAP, func(p crypto.PrivateKey) bool {
			r, ok := p.(*rsa.PrivateKey)
			return ok && r.N.Cmp(new(big.Int).SetBytes(exp.Key.N)) == 0
		}},
		{"exportable-soft", azkeys.KeyEncryptionAlgorithmRSAAESKEYWRAP256, func(p crypto.PrivateKey) bool {
			e, ok := p.(*ecdsa.PrivateKey)
			return ok && e.X.Cmp(new(big.Int).SetBytes(soft.Key.X)) == 0
		}},
	} {
		rel, err := c.Release(ctx, k.name, "", azkeys.ReleaseParameters{TargetAttestationToken: &good, Algorithm: to.Ptr(k.enc), Nonce: to.Ptr("n-1")}, nil)
		if err != nil {
			t.Fatal(k.name, err)
		}
		priv := openRelease(t, *rel.Value, runtime, string(k.enc))
		if !k.pub(priv) {
			t.Fatalf("%s: the released key is not the vault's key", k.name)
		}
	}
	// The signer is Keyward's kept release signing key, which a verifier
	// fetches from /sys/release-signing-keys (public, no token).
	checkReleaseSigner(t, e, *lastRelease(ctx, t, c, good).Value)
	for name, claims := range map[string]string{
		"wrong tee": `{"x-ms-isolation-tee":{"x-ms-attestation-type":"tdxvm"},"svn":3}`,
		"low svn":   `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm"},"svn":1}`,
	} {
		tok := token(claims)
		_, err := c.Release(ctx, "exportable", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok}, nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: release not denied: %v", name, err)
		}
	}
	// Denied releases are audited with the reason; no token in the log.
	auditLog, err := os.ReadFile(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	denials := 0
	for _, line := range strings.Split(string(auditLog), "\n") {
		var ev struct {
			Operation, Reason string
			Status            int
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Operation == "KeyRelease" && ev.Status == http.StatusForbidden {
			if !strings.HasPrefix(ev.Reason, "ReleasePolicyNotSatisfied: ") || !strings.Contains(ev.Reason, "claim") {
				t.Fatalf("denied release audited with reason %q", ev.Reason)
			}
			denials++
		}
	}
	if denials != 2 || strings.Contains(string(auditLog), good[len(good)-40:]) {
		t.Fatalf("%d denied releases in the audit log (want 2), or a token in it", denials)
	}
	// The nonce binds the token to the request: a token bound to n-1 does
	// not release for n-2 or for a request without a nonce, and a request
	// that names a nonce is not served by a token that binds none.
	unbound := token(`{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm"},"svn":3}`)
	for name, p := range map[string]azkeys.ReleaseParameters{
		"other nonce":           {TargetAttestationToken: &good, Nonce: to.Ptr("n-2")},
		"no nonce in request":   {TargetAttestationToken: &good},
		"no nonce in the token": {TargetAttestationToken: &unbound, Nonce: to.Ptr("n-1")},
	} {
		_, err := c.Release(ctx, "exportable-soft", "", p, nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || re.ErrorCode != "Forbidden" {
			t.Fatalf("%s: release not denied with 403: %v", name, err)
		}
	}
	if _, err := c.Release(ctx, "exportable-soft", "", azkeys.ReleaseParameters{TargetAttestationToken: &unbound}, nil); err != nil {
		t.Fatal("neither the request nor the token names a nonce: the release is the policy's alone:", err)
	}
	forged := good[:len(good)-4] + "AAAA"
	if _, err := c.Release(ctx, "exportable", "", azkeys.ReleaseParameters{TargetAttestationToken: &forged}, nil); err == nil {
		t.Fatal("a token with a bad signature released the key")
	}
	if _, err := c.Release(ctx, "byok-rsa", "", azkeys.ReleaseParameters{TargetAttestationToken: &good}, nil); err == nil {
		t.Fatal("a non-exportable key was released")
	}
	// The immutable policy cannot change; the mutable one can.
	_, err = c.UpdateKey(ctx, "exportable", "", azkeys.UpdateKeyParameters{ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(policy)}}, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("immutable policy changed: %v", err)
	}
	if _, err := c.UpdateKey(ctx, "exportable-soft", "", azkeys.UpdateKeyParameters{ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(policy), Immutable: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, "bad-policy", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)},
		ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(`{"version":"1.0.0","anyOf":[{"authority":"a","allOf":[{"claim":"c","like":"x"}]}]}`)}}, nil); err == nil {
		t.Fatal("a policy with an unknown operator was accepted")
	}

	// 5. Key attestation of a key generated in the token, and of an
	// imported one.
	hsmKey, err := c.CreateKey(ctx, "attested", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeECHSM)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"attested": true, "byok-rsa": false} {
		version := hsmKey.Key.KID.Version()
		if name == "byok-rsa" {
			version = ""
			g, _ := c.GetKey(ctx, name, "", nil)
			version = g.Key.KID.Version()
		}
		a, err := c.GetKeyAttestation(ctx, name, version, nil)
		if err != nil {
			t.Fatal(name, err)
		}
		att := a.Attributes.Attestation
		if att == nil || len(att.PrivateKeyAttestation) == 0 || len(att.CertificatePEMFile) == 0 {
			t.Fatalf("%s: no attestation", name)
		}
		st := verifyAttestation(t, string(att.PrivateKeyAttestation), att.CertificatePEMFile)
		if st["generated_in_hsm"] != want || st["extractable"] != false || st["object_id"] != version {
			t.Fatalf("%s: statement %v", name, st)
		}
	}
	opts := e.ClientOptions()
	opts.APIVersion = "7.5"
	old, err := azkeys.NewClient(e.Info.VaultURL, e.Credential(), &azkeys.ClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.GetKeyAttestation(ctx, "attested", hsmKey.Key.KID.Version(), nil); !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		t.Fatalf("attestation with api-version 7.5: %v", err)
	}
	if _, err := c.GetKeyAttestation(ctx, "exportable-soft", "", nil); err == nil {
		t.Fatal("a software key has an attestation")
	}
}

// openRelease verifies a release response's JWS (x5c) and unwraps its
// key_hsm with the runtime key.
func openRelease(t *testing.T, jws string, runtime *rsa.PrivateKey, enc string) crypto.PrivateKey {
	t.Helper()
	sig, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		X5c []string `json:"x5c"`
		X5t string   `json:"x5t#S256"`
	}
	hb, _ := base64.RawURLEncoding.DecodeString(strings.Split(jws, ".")[0])
	json.Unmarshal(hb, &hdr)
	if len(hdr.X5c) == 0 || hdr.X5t == "" {
		t.Fatal("release response without x5c or x5t#S256")
	}
	certDER, _ := base64.StdEncoding.DecodeString(hdr.X5c[0])
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(certDER); base64.RawURLEncoding.EncodeToString(sum[:]) != hdr.X5t {
		t.Fatal("x5t#S256 does not match x5c")
	}
	payload, err := sig.Verify(cert.PublicKey)
	if err != nil {
		t.Fatal("release response signature:", err)
	}
	var p struct {
		Request  map[string]string `json:"request"`
		Response struct {
			Key struct {
				Key struct {
					KeyHSM string `json:"key_hsm"`
				} `json:"key"`
				Attributes struct {
					Exportable bool `json:"exportable"`
				} `json:"attributes"`
			} `json:"key"`
		} `json:"response"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Request["enc"] != enc || !p.Response.Key.Attributes.Exportable || p.Request["nonce"] != "n-1" {
		t.Fatalf("release payload %s", payload)
	}
	raw, err := base64.RawURLEncoding.DecodeString(p.Response.Key.Key.KeyHSM)
	if err != nil {
		t.Fatal(err)
	}
	b, err := byok.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b.Header.Kid != "TpmEphemeralEncryptionKey" || b.Header.Enc != enc || b.SchemaVersion != byok.SchemaRelease {
		t.Fatalf("key_hsm header %+v", b.Header)
	}
	der, err := byok.Unwrap(runtime, b.Hash, b.Ciphertext)
	if err != nil {
		t.Fatal(err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal("released material is not PKCS #8:", err)
	}
	return k
}

// verifyAttestation checks a key attestation JWS against the certificate
// it comes with and returns the statement.
func verifyAttestation(t *testing.T, jws string, certPEM []byte) map[string]any {
	t.Helper()
	p, _ := pem.Decode(certPEM)
	if p == nil {
		t.Fatal("certificatePemFile is not PEM")
	}
	cert, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Fatal("the attestation certificate is not self-signed by the instance key:", err)
	}
	sig, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := sig.Verify(cert.PublicKey)
	if err != nil {
		t.Fatal("attestation signature:", err)
	}
	var st map[string]any
	json.Unmarshal(payload, &st)
	return st
}

// countObjects counts every object of the dev server's token that this
// process sees (token objects and the server's session objects: the
// server runs in this process).
func countObjects(t *testing.T, e *kwtest.Env) int {
	t.Helper()
	p := pkcs11.New(e.Info.HSM.Module)
	if err := p.Initialize(); err != nil && !strings.Contains(err.Error(), "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
		t.Fatal(err)
	}
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		ti, err := p.GetTokenInfo(s)
		if err != nil || strings.TrimSpace(ti.Label) != e.Info.HSM.TokenLabel {
			continue
		}
		sh, err := p.OpenSession(s, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		defer p.CloseSession(sh)
		if err := p.Login(sh, pkcs11.CKU_USER, e.Info.HSM.UserPIN); err != nil && !strings.Contains(err.Error(), "CKR_USER_ALREADY_LOGGED_IN") {
			t.Fatal(err)
		}
		if err := p.FindObjectsInit(sh, nil); err != nil {
			t.Fatal(err)
		}
		defer p.FindObjectsFinal(sh)
		n := 0
		for {
			objs, _, err := p.FindObjects(sh, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) == 0 {
				return n
			}
			n += len(objs)
		}
	}
	t.Fatal("the dev token is not in the slot list")
	return 0
}

// lastRelease releases "exportable-soft" once more with tok (nonce n-1).
func lastRelease(ctx context.Context, t *testing.T, c *azkeys.Client, tok string) azkeys.ReleaseResponse {
	t.Helper()
	rel, err := c.Release(ctx, "exportable-soft", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok, Nonce: to.Ptr("n-1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// checkReleaseSigner verifies a release response with the key published
// at /sys/release-signing-keys whose kid is the response's x5t#S256.
func checkReleaseSigner(t *testing.T, e *kwtest.Env, jws string) {
	t.Helper()
	resp, err := e.HTTP.Get(strings.TrimSuffix(e.Info.AuthorityHost, "/") + "/sys/release-signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("release signing keys: %d %v", resp.StatusCode, err)
	}
	sig, err := jose.ParseSigned(jws, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	x5t, _ := sig.Signatures[0].Header.ExtraHeaders["x5t#S256"].(string)
	keys := set.Key(x5t)
	if len(keys) != 1 || !keys[0].IsPublic() || len(keys[0].Certificates) != 1 {
		t.Fatalf("the release signer %q is not published once with its certificate (%d keys published)", x5t, len(set.Keys))
	}
	if _, err := sig.Verify(keys[0].Key); err != nil {
		t.Fatal("release response does not verify with the published signing key:", err)
	}
}

// otherVersion returns kid with its version's last character changed, so it
// names a version that does not exist (appending a fixed "0" would leave a
// version that already ends in "0" unchanged, one run in sixteen).
func otherVersion(kid string) string {
	last := kid[len(kid)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return kid[:len(kid)-1] + string(repl)
}
