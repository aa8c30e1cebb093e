package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/vault"
)

// fullPolicy sets every field a policy has, so GET can be compared with it.
func fullPolicy() azcertificates.CertificatePolicy {
	return azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self"), CertificateTransparency: to.Ptr(false)},
		KeyProperties: &azcertificates.KeyProperties{Exportable: to.Ptr(true), KeyType: to.Ptr(azcertificates.KeyTypeRSA),
			KeySize: to.Ptr(int32(2048)), ReuseKey: to.Ptr(false)},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(vault.ContentTypePKCS12)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{
			Subject: to.Ptr("CN=app.example.com, OU=Platform, O=Keyward Test, C=US"),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{
				DNSNames:           []*string{to.Ptr("app.example.com"), to.Ptr("www.example.com")},
				Emails:             []*string{to.Ptr("ops@example.com")},
				UserPrincipalNames: []*string{to.Ptr("svc-app@example.com")},
			},
			EnhancedKeyUsage: []*string{to.Ptr("1.3.6.1.5.5.7.3.1"), to.Ptr("1.3.6.1.5.5.7.3.2")},
			KeyUsage: []*azcertificates.KeyUsageType{to.Ptr(azcertificates.KeyUsageTypeDigitalSignature),
				to.Ptr(azcertificates.KeyUsageTypeKeyEncipherment)},
			ValidityInMonths: to.Ptr(int32(6)),
		},
		LifetimeActions: []*azcertificates.LifetimeAction{{
			Trigger: &azcertificates.LifetimeActionTrigger{DaysBeforeExpiry: to.Ptr(int32(30))},
			Action:  &azcertificates.LifetimeActionType{ActionType: to.Ptr(azcertificates.CertificatePolicyActionEmailContacts)},
		}},
	}
}

// checkAgainstPolicy parses a certificate and checks it field by field
// against the x509 part of its policy.
func checkAgainstPolicy(t *testing.T, c *x509.Certificate, p *azcertificates.X509CertificateProperties, wantKU x509.KeyUsage) {
	t.Helper()
	if got := c.Subject.String(); got != strings.ReplaceAll(*p.Subject, ", ", ",") {
		t.Fatalf("subject %q, policy %q", got, *p.Subject)
	}
	sans := p.SubjectAlternativeNames
	var dns, emails, upns []string
	if sans != nil {
		dns, emails, upns = values(sans.DNSNames), values(sans.Emails), values(sans.UserPrincipalNames)
	}
	if !slices.Equal(c.DNSNames, dns) || !slices.Equal(c.EmailAddresses, emails) || !slices.Equal(vault.ParseUPNs(c), upns) {
		t.Fatalf("SANs dns=%v emails=%v upns=%v, policy %v %v %v", c.DNSNames, c.EmailAddresses, vault.ParseUPNs(c), dns, emails, upns)
	}
	var ekus []string
	for _, ext := range c.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 37}) {
			var oids []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(ext.Value, &oids); err != nil {
				t.Fatal(err)
			}
			for _, o := range oids {
				ekus = append(ekus, o.String())
			}
		}
	}
	if !slices.Equal(ekus, values(p.EnhancedKeyUsage)) {
		t.Fatalf("EKUs %v, policy %v", ekus, values(p.EnhancedKeyUsage))
	}
	if c.KeyUsage != wantKU {
		t.Fatalf("key usage %b, want %b", c.KeyUsage, wantKU)
	}
	months := int(*p.ValidityInMonths)
	if want := c.NotBefore.Add(5*time.Minute).AddDate(0, months, 0); c.NotAfter.Sub(want).Abs() > time.Minute {
		t.Fatalf("validity %v..%v is not %d months", c.NotBefore, c.NotAfter, months)
	}
}

func TestCertificateSelfSignedFidelity(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	cl := allClients(t, e)
	ctx := context.Background()

	pol := fullPolicy()
	created, err := cl.c.CreateCertificate(ctx, "web", azcertificates.CreateCertificateParameters{
		CertificatePolicy: &pol, PreserveCertOrder: to.Ptr(true), Tags: map[string]*string{"team": to.Ptr("platform")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	op := created.CertificateOperation
	if *op.Status != "inProgress" || op.Target != nil || op.Error != nil || *op.RequestID == "" || *op.StatusDetails == "" || !*op.PreserveCertOrder || *op.CancellationRequested {
		t.Fatalf("create returned %s", dump(op))
	}
	if string(*op.ID) != e.Info.VaultURL+"certificates/web/pending" || *op.IssuerParameters.Name != "Self" {
		t.Fatalf("operation id %s issuer %v", *op.ID, op.IssuerParameters)
	}
	csr, err := x509.ParseCertificateRequest(op.CSR)
	if err != nil {
		t.Fatalf("CSR: %v", err)
	}
	if err := csr.CheckSignature(); err != nil || csr.Subject.CommonName != "app.example.com" || !slices.Equal(csr.DNSNames, []string{"app.example.com", "www.example.com"}) {
		t.Fatalf("CSR %v %v %v", err, csr.Subject, csr.DNSNames)
	}
	got, err := cl.c.GetCertificateOperation(ctx, "web", nil)
	if err != nil || *got.Status != "completed" || *got.Target != e.Info.VaultURL+"certificates/web" {
		t.Fatalf("pending: %v %s", err, dump(got.CertificateOperation))
	}

	cert, err := cl.c.GetCertificate(ctx, "web", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := mustCert(t, cert.CER)
	checkAgainstPolicy(t, c, pol.X509CertificateProperties, x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment)
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil || !bytes.Equal(c.RawIssuer, c.RawSubject) {
		t.Fatalf("not self-signed: %v", err)
	}
	if pub, ok := c.PublicKey.(*rsa.PublicKey); !ok || pub.N.BitLen() != 2048 {
		t.Fatalf("public key %T", c.PublicKey)
	}
	if c.IsCA || !c.BasicConstraintsValid {
		t.Fatal("a TLS leaf must not be a CA")
	}
	sum := sha1.Sum(cert.CER)
	if !bytes.Equal(cert.X509Thumbprint, sum[:]) {
		t.Fatal("x5t is not the SHA-1 of cer")
	}
	if !cert.Attributes.NotBefore.Equal(c.NotBefore) || !cert.Attributes.Expires.Equal(c.NotAfter) {
		t.Fatalf("nbf/exp %v/%v, certificate %v/%v", cert.Attributes.NotBefore, cert.Attributes.Expires, c.NotBefore, c.NotAfter)
	}
	if *cert.ContentType != vault.ContentTypePKCS12 || *cert.Tags["team"] != "platform" || !*cert.PreserveCertOrder {
		t.Fatalf("bundle %s", dump(cert.Certificate))
	}
	checkBacking(t, cl, cert.Certificate, true)

	// GET policy echoes exactly what was set (AZURE-API.md §1.4).
	gp, err := cl.c.GetCertificatePolicy(ctx, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "issuer", gp.IssuerParameters, pol.IssuerParameters)
	sameJSON(t, "key_props", gp.KeyProperties, pol.KeyProperties)
	sameJSON(t, "secret_props", gp.SecretProperties, pol.SecretProperties)
	sameJSON(t, "x509_props", gp.X509CertificateProperties, pol.X509CertificateProperties)
	sameJSON(t, "lifetime_actions", gp.LifetimeActions, pol.LifetimeActions)
	if string(*gp.ID) != e.Info.VaultURL+"certificates/web/policy" {
		t.Fatalf("policy id %s", *gp.ID)
	}

	// The secret converts between content types.
	pemSec, err := cl.s.GetSecret(ctx, "web", "", &azsecrets.GetSecretOptions{OutContentType: to.Ptr(azsecrets.ContentTypePEM)})
	if err != nil {
		t.Fatal(err)
	}
	key, chain := secretMaterial(t, vault.ContentTypePEM, *pemSec.Value)
	if *pemSec.ContentType != vault.ContentTypePEM || key == nil || len(chain) != 1 || !chain[0].Equal(c) {
		t.Fatalf("PEM conversion: content type %s, key %T, %d certificates", *pemSec.ContentType, key, len(chain))
	}

	// The backing key decrypts what the certificate's public key encrypted.
	ct, err := rsa.EncryptOAEP(sha256New(), rand.Reader, c.PublicKey.(*rsa.PublicKey), []byte("for the vault only"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cl.k.Decrypt(ctx, "web", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: ct}, nil)
	if err != nil || string(dec.Result) != "for the vault only" {
		t.Fatalf("decrypt with the certificate's key: %v", err)
	}

	// The managed key and secret cannot be changed on their own.
	_, err = cl.k.DeleteKey(ctx, "web", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	_, err = cl.s.SetSecret(ctx, "web", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
	_, err = cl.k.UpdateKey(ctx, "web", "", azkeys.UpdateKeyParameters{Tags: map[string]*string{"a": to.Ptr("b")}}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")

	// An EC certificate with a non-exportable key and a PEM secret: the
	// secret holds the certificate only.
	ecPol := azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("self")},
		KeyProperties: &azcertificates.KeyProperties{Exportable: to.Ptr(false), KeyType: to.Ptr(azcertificates.KeyTypeEC),
			Curve: to.Ptr(azcertificates.CurveNameP384)},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(vault.ContentTypePEM)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=signer"),
			KeyUsage: []*azcertificates.KeyUsageType{to.Ptr(azcertificates.KeyUsageTypeDigitalSignature)}},
	}
	if _, err := cl.c.CreateCertificate(ctx, "ec-signer", azcertificates.CreateCertificateParameters{CertificatePolicy: &ecPol}, nil); err != nil {
		t.Fatal(err)
	}
	ecCert, err := cl.c.GetCertificate(ctx, "ec-signer", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ec := mustCert(t, ecCert.CER)
	if pub, ok := ec.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P384() || ec.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Fatalf("EC certificate key %T alg %v", ec.PublicKey, ec.SignatureAlgorithm)
	}
	if ec.NotAfter.Sub(ec.NotBefore) < 364*24*time.Hour {
		t.Fatalf("default validity should be 12 months: %v", ec.NotAfter.Sub(ec.NotBefore))
	}
	checkBacking(t, cl, ecCert.Certificate, false)
	pfx, err := cl.s.GetSecret(ctx, "ec-signer", "", &azsecrets.GetSecretOptions{OutContentType: to.Ptr(azsecrets.ContentTypePFX)})
	if err != nil {
		t.Fatal(err)
	}
	if k, certs := secretMaterial(t, vault.ContentTypePKCS12, *pfx.Value); k != nil || len(certs) != 1 || !certs[0].Equal(ec) {
		t.Fatal("a non-exportable certificate's PFX must hold the certificate only")
	}
	// Defaults fill whole sections that were left out.
	ecGot, err := cl.c.GetCertificatePolicy(ctx, "ec-signer", nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "key_props", ecGot.KeyProperties, ecPol.KeyProperties)
	if *ecGot.X509CertificateProperties.ValidityInMonths != 12 || len(ecGot.LifetimeActions) != 1 ||
		*ecGot.LifetimeActions[0].Action.ActionType != azcertificates.CertificatePolicyActionAutoRenew ||
		*ecGot.LifetimeActions[0].Trigger.LifetimePercentage != 80 {
		t.Fatalf("defaults: %s", dump(ecGot.CertificatePolicy))
	}

	// Bad policies are refused before anything is created.
	for name, bad := range map[string]azcertificates.CertificatePolicy{
		"no subject": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{}},
		"bad key size": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			KeyProperties:             &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeRSA), KeySize: to.Ptr(int32(1024))},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=x")}},
		"bad ku": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=x"),
				KeyUsage: []*azcertificates.KeyUsageType{to.Ptr(azcertificates.KeyUsageType("everything"))}}},
		"bad subject": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("no equals sign")}},
		"bad issuer": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("nonexistent")},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=x")}},
		"bad action": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=x")},
			LifetimeActions: []*azcertificates.LifetimeAction{{Trigger: &azcertificates.LifetimeActionTrigger{LifetimePercentage: to.Ptr(int32(100))},
				Action: &azcertificates.LifetimeActionType{ActionType: to.Ptr(azcertificates.CertificatePolicyActionAutoRenew)}}}},
		"secp256k1": {IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
			KeyProperties:             &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256K)},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=x")}},
	} {
		_, err := cl.c.CreateCertificate(ctx, "bad", azcertificates.CreateCertificateParameters{CertificatePolicy: &bad}, nil)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantErr(t, err, http.StatusBadRequest, "BadParameter")
	}
	_, err = cl.c.GetCertificate(ctx, "bad", "", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = cl.c.CreateCertificate(ctx, "contacts", azcertificates.CreateCertificateParameters{CertificatePolicy: &pol}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	// A name taken by an ordinary key cannot become a certificate.
	if _, err := cl.k.CreateKey(ctx, "taken", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = cl.c.CreateCertificate(ctx, "taken", azcertificates.CreateCertificateParameters{CertificatePolicy: &pol}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
}
