package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/keyward/keyward/internal/kwtest"
)

func keysClient(t *testing.T, e *kwtest.Env) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(e.Info.VaultURL, e.Credential(), &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rsaPublic(t *testing.T, j *azkeys.JSONWebKey) *rsa.PublicKey {
	t.Helper()
	return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(new(big.Int).SetBytes(j.E).Int64())}
}

func digestOf(alg azkeys.SignatureAlgorithm, msg []byte) (crypto.Hash, []byte) {
	var h crypto.Hash
	switch alg {
	case azkeys.SignatureAlgorithmRS256, azkeys.SignatureAlgorithmPS256, azkeys.SignatureAlgorithmES256, azkeys.SignatureAlgorithmES256K:
		h = crypto.SHA256
	case azkeys.SignatureAlgorithmRS384, azkeys.SignatureAlgorithmPS384, azkeys.SignatureAlgorithmES384:
		h = crypto.SHA384
	default:
		h = crypto.SHA512
	}
	hh := h.New()
	hh.Write(msg)
	return h, hh.Sum(nil)
}

// verifyLocally checks a Keyward signature with the standard library (and
// the secp256k1 module) from the public JWK alone.
func verifyLocally(t *testing.T, j *azkeys.JSONWebKey, alg azkeys.SignatureAlgorithm, digest, sig []byte) bool {
	t.Helper()
	switch alg {
	case azkeys.SignatureAlgorithmRS256, azkeys.SignatureAlgorithmRS384, azkeys.SignatureAlgorithmRS512:
		h, _ := digestOf(alg, nil)
		return rsa.VerifyPKCS1v15(rsaPublic(t, j), h, digest, sig) == nil
	case azkeys.SignatureAlgorithmPS256, azkeys.SignatureAlgorithmPS384, azkeys.SignatureAlgorithmPS512:
		h, _ := digestOf(alg, nil)
		return rsa.VerifyPSS(rsaPublic(t, j), h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case azkeys.SignatureAlgorithmES256K:
		if len(sig) != 64 {
			return false
		}
		var x, y secp256k1.FieldVal
		x.SetByteSlice(j.X)
		y.SetByteSlice(j.Y)
		pub := secp256k1.NewPublicKey(&x, &y)
		var r, s secp256k1.ModNScalar
		r.SetByteSlice(sig[:32])
		s.SetByteSlice(sig[32:])
		return secpecdsa.NewSignature(&r, &s).Verify(digest, pub)
	}
	var curve elliptic.Curve
	switch *j.Crv {
	case azkeys.CurveNameP256:
		curve = elliptic.P256()
	case azkeys.CurveNameP384:
		curve = elliptic.P384()
	case azkeys.CurveNameP521:
		curve = elliptic.P521()
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	pub := &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(j.X), Y: new(big.Int).SetBytes(j.Y)}
	return ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:]))
}

func TestKeysSignVerifyEveryTypeAndAlgorithm(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()
	cases := []struct {
		name string
		kty  azkeys.KeyType
		size int32
		crv  azkeys.CurveName
		algs []azkeys.SignatureAlgorithm
	}{
		{"rsa2048", azkeys.KeyTypeRSA, 2048, "", []azkeys.SignatureAlgorithm{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"rsa3072", azkeys.KeyTypeRSA, 3072, "", []azkeys.SignatureAlgorithm{"RS256", "PS512"}},
		{"rsa4096", azkeys.KeyTypeRSA, 4096, "", []azkeys.SignatureAlgorithm{"RS512", "PS256"}},
		{"p256", azkeys.KeyTypeEC, 0, azkeys.CurveNameP256, []azkeys.SignatureAlgorithm{"ES256"}},
		{"p256k", azkeys.KeyTypeEC, 0, azkeys.CurveNameP256K, []azkeys.SignatureAlgorithm{"ES256K"}},
		{"p384", azkeys.KeyTypeEC, 0, azkeys.CurveNameP384, []azkeys.SignatureAlgorithm{"ES384"}},
		{"p521", azkeys.KeyTypeEC, 0, azkeys.CurveNameP521, []azkeys.SignatureAlgorithm{"ES512"}},
	}
	msg := []byte("the quick brown fox")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := azkeys.CreateKeyParameters{Kty: &tc.kty}
			if tc.size != 0 {
				p.KeySize = &tc.size
			}
			if tc.crv != "" {
				p.Curve = &tc.crv
			}
			created, err := c.CreateKey(ctx, "k-"+tc.name, p, nil)
			if err != nil {
				t.Fatal(err)
			}
			jwk := created.Key
			if jwk.D != nil || jwk.P != nil || jwk.Q != nil {
				t.Fatal("private key material returned")
			}
			if tc.kty == azkeys.KeyTypeRSA && rsaPublic(t, jwk).N.BitLen() != int(tc.size) {
				t.Fatalf("modulus has %d bits", rsaPublic(t, jwk).N.BitLen())
			}
			if tc.crv != "" && *jwk.Crv != tc.crv {
				t.Fatalf("curve %s", *jwk.Crv)
			}
			if created.Attributes.HSMPlatform == nil || *created.Attributes.HSMPlatform == "" {
				t.Fatal("no hsmPlatform (protection) shown")
			}
			for _, alg := range tc.algs {
				_, digest := digestOf(alg, msg)
				// Empty version: POST /keys/{name}/sign (AZURE-API.md §0.6).
				signed, err := c.Sign(ctx, "k-"+tc.name, "", azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				if signed.KID.Version() != created.Key.KID.Version() {
					t.Fatalf("signed with %s", *signed.KID)
				}
				if !verifyLocally(t, jwk, alg, digest, signed.Result) {
					t.Fatalf("%s: signature does not verify locally", alg)
				}
				v, err := c.Verify(ctx, "k-"+tc.name, created.Key.KID.Version(), azkeys.VerifyParameters{Algorithm: &alg, Digest: digest, Signature: signed.Result}, nil)
				if err != nil || !*v.Value {
					t.Fatalf("%s: server verify = %v, %v", alg, v.Value, err)
				}
				bad := append([]byte(nil), signed.Result...)
				bad[len(bad)/2] ^= 1
				if verifyLocally(t, jwk, alg, digest, bad) {
					t.Fatal("tampered signature verifies locally")
				}
				v, err = c.Verify(ctx, "k-"+tc.name, "", azkeys.VerifyParameters{Algorithm: &alg, Digest: digest, Signature: bad}, nil)
				if err != nil || *v.Value {
					t.Fatalf("%s: tampered signature: verify = %v, %v", alg, v.Value, err)
				}
				// A digest of the wrong length is a bad request.
				_, err = c.Sign(ctx, "k-"+tc.name, "", azkeys.SignParameters{Algorithm: &alg, Value: digest[:len(digest)-1]}, nil)
				wantErr(t, err, http.StatusBadRequest, "BadParameter")
			}
			// An algorithm of another key type or curve is refused.
			wrong := azkeys.SignatureAlgorithmES256
			if tc.crv == azkeys.CurveNameP256 {
				wrong = azkeys.SignatureAlgorithmES384
			}
			_, d := digestOf(wrong, msg)
			_, err = c.Sign(ctx, "k-"+tc.name, "", azkeys.SignParameters{Algorithm: &wrong, Value: d}, nil)
			wantErr(t, err, http.StatusBadRequest, "BadParameter")
		})
	}
}

func TestKeysEncryptDecryptWrap(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()
	created, err := c.CreateKey(ctx, "enc", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := rsaPublic(t, created.Key)
	secret := []byte("a 32-byte data encryption key!!!")
	for _, tc := range []struct {
		alg azkeys.EncryptionAlgorithm
		enc func() ([]byte, error)
	}{
		{azkeys.EncryptionAlgorithmRSAOAEP, func() ([]byte, error) { return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, secret, nil) }},
		{azkeys.EncryptionAlgorithmRSAOAEP256, func() ([]byte, error) { return rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, secret, nil) }},
		{azkeys.EncryptionAlgorithmRSA15, func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, pub, secret) }},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			alg := tc.alg
			// Made locally with the public JWK, decrypted by the server.
			ct, err := tc.enc()
			if err != nil {
				t.Fatal(err)
			}
			dec, err := c.Decrypt(ctx, "enc", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: ct}, nil)
			if err != nil || string(dec.Result) != string(secret) {
				t.Fatalf("decrypt: %q, %v", dec.Result, err)
			}
			un, err := c.UnwrapKey(ctx, "enc", created.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: &alg, Value: ct}, nil)
			if err != nil || string(un.Result) != string(secret) {
				t.Fatalf("unwrap: %q, %v", un.Result, err)
			}
			// Made by the server, decrypted by the server.
			enc, err := c.Encrypt(ctx, "enc", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: secret}, nil)
			if err != nil {
				t.Fatal(err)
			}
			wrapped, err := c.WrapKey(ctx, "enc", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: secret}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, ct := range [][]byte{enc.Result, wrapped.Result} {
				dec, err := c.Decrypt(ctx, "enc", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: ct}, nil)
				if err != nil || string(dec.Result) != string(secret) {
					t.Fatalf("round trip: %q, %v", dec.Result, err)
				}
			}
			// Tampered ciphertext: one vague error.
			bad := append([]byte(nil), ct...)
			bad[10] ^= 0xff
			_, err = c.Decrypt(ctx, "enc", "", azkeys.KeyOperationParameters{Algorithm: &alg, Value: bad}, nil)
			re := wantErr(t, err, http.StatusBadRequest, "BadParameter")
			if !strings.Contains(re.Error(), "Decryption failed.") {
				t.Fatalf("decrypt error: %v", re)
			}
		})
	}
	// OAEP-256 locally with the wrong hash does not decrypt as OAEP-256.
	ct, _ := rsa.EncryptOAEP(sha512.New(), rand.Reader, pub, secret, nil)
	_, err = c.Decrypt(ctx, "enc", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ct}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	// key_ops are enforced: a sign-only RSA key cannot encrypt.
	if _, err := c.CreateKey(ctx, "signonly", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationSign), to.Ptr(azkeys.KeyOperationVerify)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Encrypt(ctx, "signonly", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	// An EC key cannot encrypt at all.
	if _, err := c.CreateKey(ctx, "ec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Encrypt(ctx, "ec", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: secret}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
}

func TestKeysAttributesEnforced(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()
	created, err := c.CreateKey(ctx, "timed", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := rsaPublic(t, created.Key)
	alg := azkeys.SignatureAlgorithmPS256
	_, digest := digestOf(alg, []byte("m"))
	old, err := c.Sign(ctx, "timed", "", azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, []byte("old data"), nil)
	oaep := azkeys.EncryptionAlgorithmRSAOAEP256

	// Expired: no new signatures or ciphertexts; old data still opens.
	past := time.Now().Add(-time.Minute)
	if _, err := c.UpdateKey(ctx, "timed", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &past}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(ctx, "timed", "", azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	_, err = c.Encrypt(ctx, "timed", "", azkeys.KeyOperationParameters{Algorithm: &oaep, Value: []byte("x")}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	if v, err := c.Verify(ctx, "timed", "", azkeys.VerifyParameters{Algorithm: &alg, Digest: digest, Signature: old.Result}, nil); err != nil || !*v.Value {
		t.Fatalf("verify of an old signature with an expired key: %v %v", v.Value, err)
	}
	if d, err := c.Decrypt(ctx, "timed", "", azkeys.KeyOperationParameters{Algorithm: &oaep, Value: ct}, nil); err != nil || string(d.Result) != "old data" {
		t.Fatalf("decrypt of old data with an expired key: %v", err)
	}

	// Not yet valid: likewise.
	future := time.Now().Add(time.Hour)
	later := future.Add(time.Hour)
	if _, err := c.UpdateKey(ctx, "timed", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{NotBefore: &future, Expires: &later}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(ctx, "timed", "", azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")

	// Disabled: nothing at all.
	if _, err := c.UpdateKey(ctx, "timed", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false), NotBefore: &past, Expires: &later}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Decrypt(ctx, "timed", "", azkeys.KeyOperationParameters{Algorithm: &oaep, Value: ct}, nil)
	re := wantErr(t, err, http.StatusForbidden, "Forbidden")
	if !strings.Contains(re.Error(), "KeyDisabled") {
		t.Fatalf("want KeyDisabled: %v", re)
	}
}

func TestKeysImport(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()

	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	rk.Precompute()
	rsaJWK := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: rk.N.Bytes(), E: big.NewInt(int64(rk.E)).Bytes(),
		D: rk.D.Bytes(), P: rk.Primes[0].Bytes(), Q: rk.Primes[1].Bytes(), DP: rk.Precomputed.Dp.Bytes(),
		DQ: rk.Precomputed.Dq.Bytes(), QI: rk.Precomputed.Qinv.Bytes()}
	imp, err := c.ImportKey(ctx, "imported-rsa", azkeys.ImportKeyParameters{Key: rsaJWK}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if imp.Key.D != nil || new(big.Int).SetBytes(imp.Key.N).Cmp(rk.N) != 0 {
		t.Fatal("import returned the wrong key or private parts")
	}
	alg := azkeys.SignatureAlgorithmRS256
	_, digest := digestOf(alg, []byte("imported"))
	sig, err := c.Sign(ctx, "imported-rsa", "", azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(&rk.PublicKey, crypto.SHA256, digest, sig.Result); err != nil {
		t.Fatalf("signature by the imported key does not verify with the original: %v", err)
	}

	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ecJWK := &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP384),
		X: pad(ek.X.Bytes(), 48), Y: pad(ek.Y.Bytes(), 48), D: pad(ek.D.Bytes(), 48)}
	if _, err := c.ImportKey(ctx, "imported-ec", azkeys.ImportKeyParameters{Key: ecJWK}, nil); err != nil {
		t.Fatal(err)
	}
	ealg := azkeys.SignatureAlgorithmES384
	_, d384 := digestOf(ealg, []byte("imported"))
	esig, err := c.Sign(ctx, "imported-ec", "", azkeys.SignParameters{Algorithm: &ealg, Value: d384}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.Verify(&ek.PublicKey, d384, new(big.Int).SetBytes(esig.Result[:48]), new(big.Int).SetBytes(esig.Result[48:])) {
		t.Fatal("ES384 by the imported key does not verify with the original")
	}

	// Garbage and inconsistent keys are refused and nothing is stored.
	badD := *rsaJWK
	badD.D = new(big.Int).Add(rk.D, big.NewInt(2)).Bytes()
	offCurve := *ecJWK
	offCurve.Y = pad(new(big.Int).Add(ek.Y, big.NewInt(1)).Bytes(), 48)
	for name, j := range map[string]*azkeys.JSONWebKey{
		"bad-d":     &badD,
		"off-curve": &offCurve,
		"garbage":   {Kty: to.Ptr(azkeys.KeyTypeRSA), N: []byte{1, 2, 3}, E: []byte{1}, D: []byte{4}},
		"oct":       {Kty: to.Ptr(azkeys.KeyTypeOct), K: make([]byte, 32)},
	} {
		_, err := c.ImportKey(ctx, "bad-"+name, azkeys.ImportKeyParameters{Key: j}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter")
		_, err = c.GetKey(ctx, "bad-"+name, "", nil)
		wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	}

	// -HSM key types need a premium vault with an HSM.
	_, err = c.CreateKey(ctx, "hsm", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
	re := wantErr(t, err, http.StatusBadRequest, "BadParameter")
	if !strings.Contains(re.Error(), "premium") {
		t.Fatalf("RSA-HSM on a standard vault: %v", re)
	}
	_, err = c.CreateKey(ctx, "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM)}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
}

func pad(b []byte, n int) []byte {
	return append(make([]byte, n-len(b)), b...)
}

func TestKeysLifecycle(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := keysClient(t, e)
	ctx := context.Background()
	k1, err := c.CreateKey(ctx, "life", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256),
		Tags: map[string]*string{"team": to.Ptr("a")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := c.RotateKey(ctx, "life", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Key.KID.Version() == k1.Key.KID.Version() || *rot.Key.Crv != azkeys.CurveNameP256 || *rot.Tags["team"] != "a" {
		t.Fatalf("rotate: %+v", rot.KeyBundle)
	}
	got, err := c.GetKey(ctx, "life", "", nil) // GET /keys/life/
	if err != nil || got.Key.KID.Version() != rot.Key.KID.Version() {
		t.Fatalf("latest after rotate: %v", err)
	}
	upd, err := c.UpdateKey(ctx, "life", k1.Key.KID.Version(), azkeys.UpdateKeyParameters{Tags: map[string]*string{"team": to.Ptr("b")},
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationVerify)}}, nil)
	if err != nil || *upd.Tags["team"] != "b" || len(upd.Key.KeyOps) != 1 {
		t.Fatalf("update: %v", err)
	}
	var versions int
	for pg := c.NewListKeyPropertiesVersionsPager("life", nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		versions += len(p.Value)
	}
	if versions != 2 {
		t.Fatalf("%d versions", versions)
	}
	for i := range 27 {
		if _, err := c.CreateKey(ctx, fmt.Sprintf("many-%02d", i), azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	listed := 0
	for pg := c.NewListKeyPropertiesPager(nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Value {
			if it.KID.Version() != "" {
				t.Fatalf("list item with version: %s", *it.KID)
			}
		}
		listed += len(p.Value)
	}
	if listed != 28 {
		t.Fatalf("listed %d keys", listed)
	}

	// Rotation policy: the default, then a valid one, then invalid ones.
	pol, err := c.GetKeyRotationPolicy(ctx, "life", nil)
	if err != nil || len(pol.LifetimeActions) != 1 || *pol.LifetimeActions[0].Action.Type != azkeys.KeyRotationPolicyActionNotify {
		t.Fatalf("default policy: %+v %v", pol, err)
	}
	set, err := c.UpdateKeyRotationPolicy(ctx, "life", azkeys.KeyRotationPolicy{
		LifetimeActions: []*azkeys.LifetimeAction{
			{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P30D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}},
			{Trigger: &azkeys.LifetimeActionTrigger{TimeBeforeExpiry: to.Ptr("P10D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionNotify)}},
		},
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")},
	}, nil)
	if err != nil || *set.Attributes.ExpiryTime != "P90D" || set.Attributes.Created == nil {
		t.Fatalf("set policy: %v", err)
	}
	for name, p := range map[string]azkeys.KeyRotationPolicy{
		"rotate within 7 days of expiry": {LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P85D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}}, Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")}},
		"both triggers":                  {LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P30D"), TimeBeforeExpiry: to.Ptr("P30D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}}, Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")}},
		"no trigger":                     {LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}}},
		"interval under 7 days":          {LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P3D")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}}},
		"bad duration":                   {LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("30 days")}, Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}}},
		"expiry under 28 days":           {Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P20D")}},
	} {
		_, err := c.UpdateKeyRotationPolicy(ctx, "life", p, nil)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantErr(t, err, http.StatusBadRequest, "BadParameter")
	}
	again, err := c.GetKeyRotationPolicy(ctx, "life", nil)
	if err != nil || *again.Attributes.ExpiryTime != "P90D" || len(again.LifetimeActions) != 2 {
		t.Fatalf("a refused policy changed the stored one: %v", err)
	}
	// Rotating with a policy sets the policy's expiry on the new version.
	rot2, err := c.RotateKey(ctx, "life", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rot2.Attributes.Expires == nil || rot2.Attributes.Expires.Sub(time.Now()) < 89*24*time.Hour {
		t.Fatalf("rotated version expiry %v", rot2.Attributes.Expires)
	}

	// Backup, delete, purge, restore.
	bk, err := c.BackupKey(ctx, "life", nil)
	if err != nil {
		t.Fatal(err)
	}
	del, err := c.DeleteKey(ctx, "life", nil)
	if err != nil || del.RecoveryID == nil || del.DeletedDate == nil || del.ScheduledPurgeDate == nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = c.CreateKey(ctx, "life", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
	if _, err := c.GetDeletedKey(ctx, "life", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecoverDeletedKey(ctx, "life", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKey(ctx, "life", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(ctx, "life", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDeletedKey(ctx, "life", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	res, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Key.KID.Version() != rot2.Key.KID.Version() {
		t.Fatalf("restored latest %s, want %s", res.Key.KID.Version(), rot2.Key.KID.Version())
	}
	alg := azkeys.SignatureAlgorithmES256
	_, digest := digestOf(alg, []byte("after restore"))
	sig, err := c.Sign(ctx, "life", rot2.Key.KID.Version(), azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	if err != nil {
		t.Fatalf("restored version cannot sign: %v", err)
	}
	if !verifyLocally(t, rot2.Key, alg, digest, sig.Result) {
		t.Fatal("restored key signs with different material")
	}
	// The old version kept its restricted key_ops through backup and restore.
	_, err = c.Sign(ctx, "life", k1.Key.KID.Version(), azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	_, err = c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: bk.Value}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
}
