package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/vault"
	"software.sslmate.com/src/go-pkcs12"
)

// testChain is root → intermediate → leaf, with the leaf's key.
type testChain struct {
	root, inter, leaf *x509.Certificate
	key               crypto.Signer
}

func makeChain(t *testing.T, leafKey crypto.Signer, cn string) testChain {
	t.Helper()
	root := newTestCA(t, "Import Root")
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Import Intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(3, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, it, root.cert, interKey.Public(), root.key)
	if err != nil {
		t.Fatal(err)
	}
	inter := mustCert(t, der)
	lt := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: cn, Organization: []string{"Importers"}},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err = x509.CreateCertificate(rand.Reader, lt, inter, leafKey.Public(), interKey)
	if err != nil {
		t.Fatal(err)
	}
	return testChain{root: root.cert, inter: inter, leaf: mustCert(t, der), key: leafKey}
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestCertificateImport(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	cl := allClients(t, e)
	ctx := context.Background()

	// A PFX with a chain and a password.
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ch := makeChain(t, rsaKey, "pfx.example.com")
	pfx, err := pkcs12.Modern.Encode(rsaKey, ch.leaf, []*x509.Certificate{ch.inter, ch.root}, "s3cret!")
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(pfx)
	_, err = cl.c.ImportCertificate(ctx, "pfx", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &b64, Password: to.Ptr("wrong")}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	imp, err := cl.c.ImportCertificate(ctx, "pfx", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: &b64, Password: to.Ptr("s3cret!"), Tags: map[string]*string{"src": to.Ptr("pfx")},
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(true)}, PreserveCertOrder: to.Ptr(false),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(imp.CER, ch.leaf.Raw) || *imp.ContentType != vault.ContentTypePKCS12 || *imp.Tags["src"] != "pfx" {
		t.Fatalf("import returned %s", dump(imp.Certificate))
	}
	if !imp.Attributes.Expires.Equal(ch.leaf.NotAfter) || !imp.Attributes.NotBefore.Equal(ch.leaf.NotBefore) {
		t.Fatal("nbf/exp must be the certificate's validity")
	}
	p := imp.Policy
	if *p.X509CertificateProperties.Subject != ch.leaf.Subject.String() || *p.KeyProperties.KeyType != azcertificates.KeyTypeRSA ||
		*p.KeyProperties.KeySize != 2048 || *p.IssuerParameters.Name != "Unknown" || *p.X509CertificateProperties.SubjectAlternativeNames.DNSNames[0] != "pfx.example.com" {
		t.Fatalf("derived policy %s", dump(p))
	}
	chain := checkBacking(t, cl, imp.Certificate, true)
	if len(chain) != 3 || !chain[0].Equal(ch.leaf) || !chain[1].Equal(ch.inter) || !chain[2].Equal(ch.root) {
		t.Fatalf("PFX secret chain: %d certificates", len(chain))
	}
	// The stored PFX has no password any more; as PEM it is key + chain.
	pemSec, err := cl.s.GetSecret(ctx, "pfx", "", &azsecrets.GetSecretOptions{OutContentType: to.Ptr(azsecrets.ContentTypePEM)})
	if err != nil {
		t.Fatal(err)
	}
	key, certs := secretMaterial(t, vault.ContentTypePEM, *pemSec.Value)
	if !samePub(key.(crypto.Signer).Public(), rsaKey.Public()) || len(certs) != 3 || !certs[0].Equal(ch.leaf) || !certs[2].Equal(ch.root) {
		t.Fatal("PFX → PEM conversion lost the key or the chain")
	}

	// A PEM bundle: EC key (SEC 1), chain root first, preserveCertOrder.
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ch2 := makeChain(t, ecKey, "pem.example.com")
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	bundle := string(bytes.Join([][]byte{pemOf("CERTIFICATE", ch2.root.Raw), pemOf("CERTIFICATE", ch2.inter.Raw),
		pemOf("CERTIFICATE", ch2.leaf.Raw), pemOf("EC PRIVATE KEY", sec1)}, nil))
	pemPolicy := &azcertificates.CertificatePolicy{SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(vault.ContentTypePEM)}}
	imp2, err := cl.c.ImportCertificate(ctx, "pem", azcertificates.ImportCertificateParameters{
		Base64EncodedCertificate: &bundle, CertificatePolicy: pemPolicy, PreserveCertOrder: to.Ptr(true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(imp2.CER, ch2.leaf.Raw) || *imp2.ContentType != vault.ContentTypePEM || !*imp2.PreserveCertOrder {
		t.Fatalf("PEM import %s", dump(imp2.Certificate))
	}
	chain = checkBacking(t, cl, imp2.Certificate, true)
	if len(chain) != 3 || !chain[0].Equal(ch2.root) || !chain[1].Equal(ch2.inter) || !chain[2].Equal(ch2.leaf) {
		t.Fatal("preserveCertOrder: the PEM secret must keep root, intermediate, leaf")
	}
	pfxSec, err := cl.s.GetSecret(ctx, "pem", "", &azsecrets.GetSecretOptions{OutContentType: to.Ptr(azsecrets.ContentTypePFX)})
	if err != nil {
		t.Fatal(err)
	}
	key, certs = secretMaterial(t, vault.ContentTypePKCS12, *pfxSec.Value)
	if *pfxSec.ContentType != vault.ContentTypePKCS12 || !samePub(key.(crypto.Signer).Public(), ecKey.Public()) || len(certs) != 3 || !certs[0].Equal(ch2.leaf) {
		t.Fatal("PEM → PFX conversion lost the key or the chain")
	}
	// Round trip PFX → PEM gives the same bytes as stored.
	back, err := cl.s.GetSecret(ctx, "pem", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, again := secretMaterial(t, vault.ContentTypePEM, *back.Value)
	for i := range again {
		if !again[i].Equal(chain[i]) {
			t.Fatal("stored PEM changed")
		}
	}

	// A PKCS #8 PEM imported with a non-exportable policy: no key in the secret.
	p8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	only := string(append(pemOf("PRIVATE KEY", p8), pemOf("CERTIFICATE", ch2.leaf.Raw)...))
	imp3, err := cl.c.ImportCertificate(ctx, "sealed", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &only,
		CertificatePolicy:     &azcertificates.CertificatePolicy{KeyProperties: &azcertificates.KeyProperties{Exportable: to.Ptr(false)}},
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(false)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *imp3.Attributes.Enabled {
		t.Fatal("import ignored attributes.enabled")
	}
	if _, err := cl.c.UpdateCertificate(ctx, "sealed", "", azcertificates.UpdateCertificateParameters{
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	checkBacking(t, cl, imp3.Certificate, false)

	// Mismatched key and certificate, garbage, and no key: 400.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p8o, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	for name, v := range map[string]string{
		"mismatch":     string(append(pemOf("PRIVATE KEY", p8o), pemOf("CERTIFICATE", ch2.leaf.Raw)...)),
		"no key":       string(pemOf("CERTIFICATE", ch2.leaf.Raw)),
		"garbage b64":  base64.StdEncoding.EncodeToString([]byte("definitely not a PFX")),
		"not base64":   "%%%% nope %%%%",
		"broken pem":   "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"pfx mismatch": pfxMismatch(t, otherKey, ch.leaf),
	} {
		v := v
		_, err := cl.c.ImportCertificate(ctx, "bad", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &v}, nil)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantErr(t, err, http.StatusBadRequest, "BadParameter")
	}
}

// pfxMismatch is a PFX whose key does not belong to its certificate.
func pfxMismatch(t *testing.T, key crypto.Signer, c *x509.Certificate) string {
	t.Helper()
	pfx, err := pkcs12.Modern.Encode(key, c, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pfx)
}
