package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/vault"
)

func unknownPolicy(cn, contentType string) *azcertificates.CertificatePolicy {
	return &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Unknown"), CertificateTransparency: to.Ptr(false)},
		KeyProperties:    &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeRSA), KeySize: to.Ptr(int32(2048)), Exportable: to.Ptr(true)},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(contentType)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=" + cn),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr(cn)}},
			KeyUsage:                []*azcertificates.KeyUsageType{to.Ptr(azcertificates.KeyUsageTypeDigitalSignature)},
			EnhancedKeyUsage:        []*string{to.Ptr("1.3.6.1.5.5.7.3.1")}},
	}
}

func TestCertificateCSRAndMerge(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	cl := allClients(t, e)
	ctx := context.Background()
	ca := newTestCA(t, "Merge Test CA")

	created, err := cl.c.CreateCertificate(ctx, "merged", azcertificates.CreateCertificateParameters{
		CertificatePolicy: unknownPolicy("merged.example.com", vault.ContentTypePKCS12)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *created.Status != "inProgress" || created.Target != nil {
		t.Fatalf("create with Unknown issuer: %s", dump(created.CertificateOperation))
	}
	csr, err := x509.ParseCertificateRequest(created.CSR)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	// The CSR asks for the policy's extensions.
	var sawKU, sawEKU bool
	for _, ext := range csr.Extensions {
		sawKU = sawKU || ext.Id.String() == "2.5.29.15"
		sawEKU = sawEKU || ext.Id.String() == "2.5.29.37"
	}
	if csr.Subject.CommonName != "merged.example.com" || len(csr.DNSNames) != 1 || !sawKU || !sawEKU {
		t.Fatalf("CSR subject %v SANs %v ku %v eku %v", csr.Subject, csr.DNSNames, sawKU, sawEKU)
	}
	op, err := cl.c.GetCertificateOperation(ctx, "merged", nil)
	if err != nil || *op.Status != "inProgress" || string(op.CSR) != string(created.CSR) {
		t.Fatalf("pending: %v", err)
	}
	_, err = cl.c.GetCertificate(ctx, "merged", "", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	if _, err := cl.c.GetCertificatePolicy(ctx, "merged", nil); err != nil {
		t.Fatalf("policy of a pending certificate: %v", err)
	}

	// A chain whose leaf does not carry the pending key is refused.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrong := ca.sign(t, nil, other.Public(), 12)
	_, err = cl.c.MergeCertificate(ctx, "merged", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{wrong.Raw, ca.cert.Raw}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	_, err = cl.c.MergeCertificate(ctx, "merged", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{[]byte("not a certificate")}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	// The right chain, CA first: merged leaf first (preserveCertOrder off).
	leaf := ca.sign(t, csr, nil, 12)
	merged, err := cl.c.MergeCertificate(ctx, "merged", azcertificates.MergeCertificateParameters{
		X509Certificates: [][]byte{ca.cert.Raw, leaf.Raw}, Tags: map[string]*string{"merged": to.Ptr("yes")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(merged.CER) != string(leaf.Raw) || merged.Policy == nil || *merged.Tags["merged"] != "yes" {
		t.Fatalf("merge returned %s", dump(merged.Certificate))
	}
	chain := checkBacking(t, cl, merged.Certificate, true)
	if len(chain) != 2 || !chain[0].Equal(leaf) || !chain[1].Equal(ca.cert) {
		t.Fatalf("secret chain has %d certificates, leaf first expected", len(chain))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, DNSName: "merged.example.com"}); err != nil {
		t.Fatal(err)
	}
	op, err = cl.c.GetCertificateOperation(ctx, "merged", nil)
	if err != nil || *op.Status != "completed" || *op.Target != e.Info.VaultURL+"certificates/merged" {
		t.Fatalf("after merge: %v", err)
	}
	_, err = cl.c.MergeCertificate(ctx, "merged", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{leaf.Raw}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	// preserveCertOrder keeps the order given, in a PEM secret.
	if _, err := cl.c.CreateCertificate(ctx, "ordered", azcertificates.CreateCertificateParameters{
		CertificatePolicy: unknownPolicy("ordered.example.com", vault.ContentTypePEM), PreserveCertOrder: to.Ptr(true)}, nil); err != nil {
		t.Fatal(err)
	}
	op, err = cl.c.GetCertificateOperation(ctx, "ordered", nil)
	if err != nil {
		t.Fatal(err)
	}
	csr2, _ := x509.ParseCertificateRequest(op.CSR)
	leaf2 := ca.sign(t, csr2, nil, 3)
	// PEM text in x5c is accepted too.
	pemCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
	m2, err := cl.c.MergeCertificate(ctx, "ordered", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{pemCA, leaf2.Raw}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	chain = checkBacking(t, cl, m2.Certificate, true)
	if len(chain) != 2 || !chain[0].Equal(ca.cert) || !chain[1].Equal(leaf2) || !*m2.PreserveCertOrder {
		t.Fatal("preserveCertOrder: the PEM secret must keep the order given")
	}

	// Cancellation and deletion of a pending operation.
	if _, err := cl.c.CreateCertificate(ctx, "cancelme", azcertificates.CreateCertificateParameters{
		CertificatePolicy: unknownPolicy("cancel.example.com", vault.ContentTypePKCS12)}, nil); err != nil {
		t.Fatal(err)
	}
	upd, err := cl.c.UpdateCertificateOperation(ctx, "cancelme", azcertificates.UpdateCertificateOperationParameter{CancellationRequested: to.Ptr(true)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*upd.CancellationRequested || *upd.Status != "cancelled" {
		t.Fatalf("cancel: %s", dump(upd.CertificateOperation))
	}
	got, err := cl.c.GetCertificateOperation(ctx, "cancelme", nil)
	if err != nil || !*got.CancellationRequested {
		t.Fatalf("get after cancel: %v", err)
	}
	_, err = cl.c.MergeCertificate(ctx, "cancelme", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{leaf.Raw}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	if _, err := cl.c.DeleteCertificateOperation(ctx, "cancelme", nil); err != nil {
		t.Fatal(err)
	}
	_, err = cl.c.GetCertificateOperation(ctx, "cancelme", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = cl.c.DeleteCertificateOperation(ctx, "cancelme", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = cl.c.MergeCertificate(ctx, "nothing", azcertificates.MergeCertificateParameters{X509Certificates: [][]byte{leaf.Raw}}, nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
}
