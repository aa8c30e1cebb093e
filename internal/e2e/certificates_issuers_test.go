package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/vault"
)

func TestCertificateContactsAndIssuers(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := certsClient(t, e)
	ctx := context.Background()

	// Contacts.
	_, err := c.GetContacts(ctx, nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	contacts := azcertificates.Contacts{ContactList: []*azcertificates.Contact{
		{Email: to.Ptr("one@test.com"), Name: to.Ptr("One"), Phone: to.Ptr("1111111111")},
		{Email: to.Ptr("two@test.com"), Name: to.Ptr("Two"), Phone: to.Ptr("2222222222")},
	}}
	set, err := c.SetContacts(ctx, contacts, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "set contacts", set.ContactList, contacts.ContactList)
	if *set.ID != e.Info.VaultURL+"certificates/contacts" {
		t.Fatalf("contacts id %s", *set.ID)
	}
	got, err := c.GetContacts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "get contacts", got.ContactList, contacts.ContactList)
	del, err := c.DeleteContacts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "deleted contacts", del.ContactList, contacts.ContactList)
	_, err = c.GetContacts(ctx, nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = c.SetContacts(ctx, azcertificates.Contacts{ContactList: []*azcertificates.Contact{{Email: to.Ptr("not an address")}}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	// Issuer CRUD, as the SDK's own test does it.
	params := azcertificates.SetIssuerParameters{
		Provider:    to.Ptr("Test"),
		Attributes:  &azcertificates.IssuerAttributes{Enabled: to.Ptr(true)},
		Credentials: &azcertificates.IssuerCredentials{AccountID: to.Ptr("keyvaultuser"), Password: to.Ptr("never-returned")},
		OrganizationDetails: &azcertificates.OrganizationDetails{ID: to.Ptr("org-1"), AdminContacts: []*azcertificates.AdministratorContact{
			{FirstName: to.Ptr("First"), LastName: to.Ptr("Last"), Email: to.Ptr("foo@test.com"), Phone: to.Ptr("42")}}},
	}
	si, err := c.SetIssuer(ctx, "partner", params, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *si.ID != e.Info.VaultURL+"certificates/issuers/partner" || *si.Provider != "Test" || *si.Credentials.AccountID != "keyvaultuser" ||
		si.Credentials.Password != nil || !*si.Attributes.Enabled || si.Attributes.Created == nil {
		t.Fatalf("set issuer %s", dump(si.Issuer))
	}
	sameJSON(t, "admin contacts", si.OrganizationDetails.AdminContacts, params.OrganizationDetails.AdminContacts)
	gi, err := c.GetIssuer(ctx, "partner", nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "get issuer", gi.Issuer, si.Issuer)
	found := false
	for pg := c.NewListIssuerPropertiesPager(nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Value {
			found = found || *it.ID == *si.ID && *it.Provider == "Test"
		}
	}
	if !found {
		t.Fatal("issuer not listed")
	}
	ui, err := c.UpdateIssuer(ctx, "partner", azcertificates.UpdateIssuerParameters{Attributes: &azcertificates.IssuerAttributes{Enabled: to.Ptr(false)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *ui.Attributes.Enabled || *ui.Credentials.AccountID != "keyvaultuser" || *ui.OrganizationDetails.ID != "org-1" {
		t.Fatalf("update kept too little: %s", dump(ui.Issuer))
	}
	di, err := c.DeleteIssuer(ctx, "partner", nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "deleted issuer", di.Issuer, ui.Issuer)
	_, err = c.GetIssuer(ctx, "partner", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = c.UpdateIssuer(ctx, "partner", azcertificates.UpdateIssuerParameters{Provider: to.Ptr("Test")}, nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	// An issuer whose provider Keyward cannot use is refused at issuance.
	if _, err := c.SetIssuer(ctx, "digicert", azcertificates.SetIssuerParameters{Provider: to.Ptr("DigiCert")}, nil); err != nil {
		t.Fatal(err)
	}
	pol := ecSelfPolicy("CN=x")
	pol.IssuerParameters.Name = to.Ptr("digicert")
	_, err = c.CreateCertificate(ctx, "dc", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
}

// issuerCA reads the built-in CA certificate from an issuer (Keyward's
// keyward_ca field, which the SDK does not model).
func issuerCA(t *testing.T, e *kwtest.Env, issuer string) (*x509.Certificate, string) {
	t.Helper()
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	res := do(t, e, http.MethodGet, e.Info.VaultURL+"certificates/issuers/"+issuer+"?api-version=7.6", tok.Token, "", "")
	if res.Status != http.StatusOK {
		t.Fatalf("get issuer: %d %s", res.Status, res.Body)
	}
	var w struct {
		CA struct {
			Kid string `json:"kid"`
			Cer string `json:"cer"`
		} `json:"keyward_ca"`
	}
	if err := json.Unmarshal([]byte(res.Body), &w); err != nil {
		t.Fatal(err)
	}
	der, err := base64.StdEncoding.DecodeString(w.CA.Cer)
	if err != nil {
		t.Fatalf("keyward_ca.cer is not standard base64: %v", err)
	}
	return mustCert(t, der), w.CA.Kid
}

func TestCertificateBuiltinCA(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	cl := allClients(t, e)
	ctx := context.Background()

	if _, err := cl.c.SetIssuer(ctx, "corp", azcertificates.SetIssuerParameters{Provider: to.Ptr("Keyward"),
		OrganizationDetails: &azcertificates.OrganizationDetails{ID: to.Ptr("Example Corp")}}, nil); err != nil {
		t.Fatal(err)
	}
	ca, kid := issuerCA(t, e, "corp")
	if !ca.IsCA || ca.Subject.Organization[0] != "Example Corp" || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("CA certificate %v", ca.Subject)
	}
	// The CA key is an ordinary key of the vault: it signs, and its public
	// key is the CA certificate's.
	caKey, err := cl.k.GetKey(ctx, "corp-ca", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if caKey.Managed != nil && *caKey.Managed || string(*caKey.Key.KID) != kid {
		t.Fatalf("CA key %s managed=%v, issuer kid %s", *caKey.Key.KID, caKey.Managed, kid)
	}
	pub := ca.PublicKey.(*ecdsa.PublicKey)
	if new(big.Int).SetBytes(caKey.Key.X).Cmp(pub.X) != 0 {
		t.Fatal("CA key and CA certificate differ")
	}

	pol := &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("corp")},
		KeyProperties:    &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256)},
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(vault.ContentTypePEM)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=api.corp.internal"),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("api.corp.internal"), to.Ptr("localhost")}},
			EnhancedKeyUsage:        []*string{to.Ptr("1.3.6.1.5.5.7.3.1")},
			KeyUsage:                []*azcertificates.KeyUsageType{to.Ptr(azcertificates.KeyUsageTypeDigitalSignature)},
			ValidityInMonths:        to.Ptr(int32(3))},
	}
	op, err := cl.c.CreateCertificate(ctx, "api", azcertificates.CreateCertificateParameters{CertificatePolicy: pol}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *op.Status != "inProgress" { // as Azure answers a create; the pending operation completes on the next GET
		t.Fatalf("built-in CA issuance: %s", dump(op.CertificateOperation))
	}
	if done, err := cl.c.GetCertificateOperation(ctx, "api", nil); err != nil || *done.Status != "completed" {
		t.Fatalf("built-in CA issuance: %v %s", err, dump(done.CertificateOperation))
	}
	cert, err := cl.c.GetCertificate(ctx, "api", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustCert(t, cert.CER)
	checkAgainstPolicy(t, leaf, pol.X509CertificateProperties, x509.KeyUsageDigitalSignature)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "api.corp.internal"}); err != nil {
		t.Fatalf("leaf does not chain to the built-in CA: %v", err)
	}
	chain := checkBacking(t, cl, cert.Certificate, true)
	if len(chain) != 2 || !chain[1].Equal(ca) {
		t.Fatal("the secret's chain must end with the CA")
	}

	// The secret is a working TLS identity for internal services.
	sec, err := cl.s.GetSecret(ctx, "api", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair([]byte(*sec.Value), []byte(*sec.Value))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello internal") }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("TLS with the issued certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello internal" {
		t.Fatalf("got %q", body)
	}

	// The CA key signs like any key (it is not managed).
	if _, err := cl.k.Sign(ctx, "corp-ca", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES384), Value: make([]byte, 48)}, nil); err != nil {
		t.Fatal(err)
	}
	// A disabled CA key stops issuance; a disabled issuer too.
	if _, err := cl.k.UpdateKey(ctx, "corp-ca", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = cl.c.CreateCertificate(ctx, "api", azcertificates.CreateCertificateParameters{}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	if _, err := cl.k.UpdateKey(ctx, "corp-ca", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.c.UpdateIssuer(ctx, "corp", azcertificates.UpdateIssuerParameters{Attributes: &azcertificates.IssuerAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = cl.c.CreateCertificate(ctx, "api", azcertificates.CreateCertificateParameters{}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	// Re-enabled, the same CA issues the next version.
	if _, err := cl.c.UpdateIssuer(ctx, "corp", azcertificates.UpdateIssuerParameters{Attributes: &azcertificates.IssuerAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.c.CreateCertificate(ctx, "api", azcertificates.CreateCertificateParameters{}, nil); err != nil {
		t.Fatal(err)
	}
	v2, err := cl.c.GetCertificate(ctx, "api", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v2.ID.Version() == cert.ID.Version() {
		t.Fatal("no new version")
	}
	if _, err := mustCert(t, v2.CER).Verify(x509.VerifyOptions{Roots: roots}); err != nil {
		t.Fatal(err)
	}
}
