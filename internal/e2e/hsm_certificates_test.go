package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestHSMCertificatePremiumVault: azcertificates against the premium dev
// vault backed by a SoftHSM2 token. A self-signed certificate whose policy
// asks for an RSA-HSM (and an EC-HSM) key is issued; its key is an -HSM
// key whose private object lives in the token (sensitive, not
// extractable); the certificate's own signature was made in the token and
// verifies under its public key, which is the key's; and the key signs
// through azkeys with signatures the certificate verifies.
func TestHSMCertificatePremiumVault(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	if e.Info.HSM == nil {
		t.Fatal("dev.json has no hsm section although SoftHSM2 is installed")
	}
	ctx := context.Background()
	cc := certsClient(t, e)
	kc := keysClient(t, e)
	tok, err := hsm.Open(hsm.Config{Module: e.Info.HSM.Module, TokenLabel: e.Info.HSM.TokenLabel, PIN: e.Info.HSM.UserPIN})
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()

	for _, tc := range []struct {
		name string
		kp   azcertificates.KeyProperties
		kty  azkeys.KeyType
		alg  azkeys.SignatureAlgorithm
	}{
		{"hsm-rsa-cert", azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeRSAHSM), KeySize: to.Ptr[int32](2048), Exportable: to.Ptr(false)},
			azkeys.KeyTypeRSAHSM, azkeys.SignatureAlgorithmRS256},
		{"hsm-ec-cert", azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeECHSM), Curve: to.Ptr(azcertificates.CurveNameP256), Exportable: to.Ptr(false)},
			azkeys.KeyTypeECHSM, azkeys.SignatureAlgorithmES256},
	} {
		pol := azcertificates.CertificatePolicy{
			IssuerParameters:          &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			KeyProperties:             &tc.kp,
			SecretProperties:          &azcertificates.SecretProperties{ContentType: to.Ptr("application/x-pkcs12")},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=" + tc.name), ValidityInMonths: to.Ptr[int32](12)},
		}
		if _, err := cc.CreateCertificate(ctx, tc.name, azcertificates.CreateCertificateParameters{CertificatePolicy: &pol}, nil); err != nil {
			t.Fatalf("%s: create: %v", tc.name, err)
		}
		got, err := cc.GetCertificate(ctx, tc.name, "", nil)
		if err != nil {
			t.Fatalf("%s: get: %v", tc.name, err)
		}
		if got.Policy == nil || got.Policy.KeyProperties == nil || got.Policy.KeyProperties.KeyType == nil || *got.Policy.KeyProperties.KeyType != *tc.kp.KeyType {
			t.Fatalf("%s: policy key type %v", tc.name, got.Policy)
		}
		cert := mustCert(t, got.CER)
		if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
			t.Fatalf("%s: the self-signature (made in the token) does not verify: %v", tc.name, err)
		}
		key, err := kc.GetKey(ctx, tc.name, got.KID.Version(), nil)
		if err != nil {
			t.Fatalf("%s: the certificate's key: %v", tc.name, err)
		}
		if *key.Key.Kty != tc.kty {
			t.Fatalf("%s: key kty %s, want %s", tc.name, *key.Key.Kty, tc.kty)
		}
		attrs, err := tok.ObjectAttributes(ctx, key.Key.KID.Version())
		if err != nil {
			t.Fatalf("%s: no private object in the token for the certificate's key: %v", tc.name, err)
		}
		if !attrs["CKA_SENSITIVE"] || attrs["CKA_EXTRACTABLE"] || !attrs["CKA_TOKEN"] {
			t.Fatalf("%s: private object attributes %v", tc.name, attrs)
		}
		digest := sha256.Sum256([]byte("signed by a certificate's HSM key"))
		sig, err := kc.Sign(ctx, tc.name, key.Key.KID.Version(), azkeys.SignParameters{Algorithm: to.Ptr(tc.alg), Value: digest[:]}, nil)
		if err != nil {
			t.Fatalf("%s: sign: %v", tc.name, err)
		}
		switch pub := cert.PublicKey.(type) {
		case *rsa.PublicKey:
			if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig.Result); err != nil {
				t.Fatalf("%s: the key's signature does not verify under the certificate: %v", tc.name, err)
			}
		case *ecdsa.PublicKey:
			half := len(sig.Result) / 2
			if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig.Result[:half]), new(big.Int).SetBytes(sig.Result[half:])) {
				t.Fatalf("%s: the key's signature does not verify under the certificate", tc.name)
			}
		default:
			t.Fatalf("%s: certificate key %T", tc.name, cert.PublicKey)
		}
	}
}
