package e2e

import (
	"context"
	"crypto/x509"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/kwtest"
)

func ecSelfPolicy(subject string) *azcertificates.CertificatePolicy {
	return &azcertificates.CertificatePolicy{
		IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
		KeyProperties:    &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256), Exportable: to.Ptr(true)},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr(subject),
			SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("svc.internal")}}},
	}
}

func listNames(t *testing.T, c *azcertificates.Client, pending bool) map[string]*azcertificates.CertificateProperties {
	t.Helper()
	out := map[string]*azcertificates.CertificateProperties{}
	for pg := c.NewListCertificatePropertiesPager(&azcertificates.ListCertificatePropertiesOptions{IncludePending: to.Ptr(pending)}); pg.More(); {
		p, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Value {
			out[it.ID.Name()] = it
		}
	}
	return out
}

func TestCertificateLifecycle(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	cl := allClients(t, e)
	ctx := context.Background()

	// Versions: three creates, the latest wins, each with its own key.
	var versions []string
	for i := 0; i < 3; i++ {
		if _, err := cl.c.CreateCertificate(ctx, "svc", azcertificates.CreateCertificateParameters{CertificatePolicy: ecSelfPolicy("CN=svc")}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := cl.c.GetCertificate(ctx, "svc", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, got.ID.Version())
	}
	var listed []string
	for pg := cl.c.NewListCertificatePropertiesVersionsPager("svc", nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Value {
			if it.ID.Name() != "svc" || len(it.X509Thumbprint) != 20 || it.Attributes.Expires == nil {
				t.Fatalf("version item %s", dump(it))
			}
			listed = append(listed, it.ID.Version())
		}
	}
	slices.Sort(listed)
	want := slices.Clone(versions)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("versions %v, want %v", listed, want)
	}
	old, err := cl.c.GetCertificate(ctx, "svc", versions[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := cl.c.GetCertificate(ctx, "svc", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if samePub(mustCert(t, old.CER).PublicKey, mustCert(t, latest.CER).PublicKey) {
		t.Fatal("a new version without reuse_key must have a new key")
	}
	checkBacking(t, cl, old.Certificate, true)

	// Update: tags and enabled, which also disables the key and secret.
	upd, err := cl.c.UpdateCertificate(ctx, "svc", "", azcertificates.UpdateCertificateParameters{
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(false)},
		Tags:                  map[string]*string{"env": to.Ptr("prod")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *upd.Attributes.Enabled || *upd.Tags["env"] != "prod" || upd.ID.Version() != versions[2] {
		t.Fatalf("update returned %s", dump(upd.Certificate))
	}
	_, err = cl.s.GetSecret(ctx, "svc", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	digest := make([]byte, 32)
	_, err = cl.k.Sign(ctx, "svc", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: digest}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden")
	if _, err := cl.c.UpdateCertificate(ctx, "svc", "", azcertificates.UpdateCertificateParameters{
		CertificateAttributes: &azcertificates.CertificateAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.s.GetSecret(ctx, "svc", "", nil); err != nil {
		t.Fatal(err)
	}

	// Policy update merges sections and echoes them; the next version
	// follows the new policy.
	newKey := &azcertificates.KeyProperties{Exportable: to.Ptr(true), KeyType: to.Ptr(azcertificates.KeyTypeRSA), KeySize: to.Ptr(int32(2048)), ReuseKey: to.Ptr(false)}
	up, err := cl.c.UpdateCertificatePolicy(ctx, "svc", azcertificates.CertificatePolicy{KeyProperties: newKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "updated key_props", up.KeyProperties, newKey)
	sameJSON(t, "kept x509_props", up.X509CertificateProperties.SubjectAlternativeNames, ecSelfPolicy("").X509CertificateProperties.SubjectAlternativeNames)
	if _, err := cl.c.CreateCertificate(ctx, "svc", azcertificates.CreateCertificateParameters{}, nil); err != nil {
		t.Fatal(err)
	}
	v4, err := cl.c.GetCertificate(ctx, "svc", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if k := mustCert(t, v4.CER).PublicKey; k == nil || mustCert(t, v4.CER).PublicKeyAlgorithm != x509.RSA {
		t.Fatalf("new version key %T", k)
	}
	_, err = cl.c.UpdateCertificatePolicy(ctx, "svc", azcertificates.CertificatePolicy{
		SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr("text/plain")}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	// reuse_key keeps the key across versions.
	if _, err := cl.c.UpdateCertificatePolicy(ctx, "svc", azcertificates.CertificatePolicy{
		KeyProperties: &azcertificates.KeyProperties{ReuseKey: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.c.CreateCertificate(ctx, "svc", azcertificates.CreateCertificateParameters{}, nil); err != nil {
		t.Fatal(err)
	}
	v5, err := cl.c.GetCertificate(ctx, "svc", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v5.ID.Version() == v4.ID.Version() || !samePub(mustCert(t, v5.CER).PublicKey, mustCert(t, v4.CER).PublicKey) {
		t.Fatal("reuse_key did not keep the key")
	}
	checkBacking(t, cl, v5.Certificate, true)

	// includePending lists a certificate whose only version is pending.
	unknown := ecSelfPolicy("CN=pending")
	unknown.IssuerParameters = &azcertificates.IssuerParameters{Name: to.Ptr("Unknown")}
	if _, err := cl.c.CreateCertificate(ctx, "awaiting", azcertificates.CreateCertificateParameters{CertificatePolicy: unknown}, nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		if _, err := cl.c.CreateCertificate(ctx, "bulk-"+string(rune('a'+i%26))+string(rune('a'+i/26)),
			azcertificates.CreateCertificateParameters{CertificatePolicy: ecSelfPolicy("CN=bulk")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	all := listNames(t, cl.c, false)
	withPending := listNames(t, cl.c, true)
	if all["awaiting"] != nil || withPending["awaiting"] == nil || len(all) != 31 || len(withPending) != 32 {
		t.Fatalf("list: %d items, with pending %d (awaiting: %v/%v)", len(all), len(withPending), all["awaiting"] != nil, withPending["awaiting"] != nil)
	}
	if it := all["svc"]; it.ID.Version() != "" || len(it.X509Thumbprint) != 20 || it.Attributes.Created == nil {
		t.Fatalf("list item %s", dump(it))
	}
	_, err = cl.c.GetCertificate(ctx, "awaiting", "", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")

	// Delete takes the key and secret along; recover brings all back.
	del, err := cl.c.DeleteCertificate(ctx, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if del.ID.Version() != v5.ID.Version() || *del.RecoveryID != e.Info.VaultURL+"deletedcertificates/svc" ||
		del.DeletedDate == nil || del.ScheduledPurgeDate.Sub(*del.DeletedDate) != 90*24*time.Hour || string(*del.KID) != string(*v5.KID) {
		t.Fatalf("deleted bundle %s", dump(del.DeletedCertificate))
	}
	_, err = cl.c.GetCertificate(ctx, "svc", "", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = cl.k.GetKey(ctx, "svc", "", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	if _, err := cl.k.GetDeletedKey(ctx, "svc", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.s.GetDeletedSecret(ctx, "svc", nil); err != nil {
		t.Fatal(err)
	}
	gd, err := cl.c.GetDeletedCertificate(ctx, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "get deleted", gd.DeletedCertificate, del.DeletedCertificate)
	found := false
	for pg := cl.c.NewListDeletedCertificatePropertiesPager(nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Value {
			found = found || it.ID.Name() == "svc" && *it.RecoveryID == *del.RecoveryID
		}
	}
	if !found {
		t.Fatal("deleted certificate not listed")
	}
	_, err = cl.c.CreateCertificate(ctx, "svc", azcertificates.CreateCertificateParameters{CertificatePolicy: ecSelfPolicy("CN=svc")}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
	rec, err := cl.c.RecoverDeletedCertificate(ctx, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ID.Version() != v5.ID.Version() {
		t.Fatalf("recovered %s", *rec.ID)
	}
	sameJSON(t, "recovered attributes", rec.Attributes, del.Attributes)
	sameJSON(t, "recovered policy", rec.Policy, del.Policy)
	checkBacking(t, cl, rec.Certificate, true)

	// Backup, delete, purge, restore: certificate, key and secret return.
	bk, err := cl.c.BackupCertificate(ctx, "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.c.DeleteCertificate(ctx, "svc", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.c.PurgeDeletedCertificate(ctx, "svc", nil); err != nil {
		t.Fatal(err)
	}
	_, err = cl.c.GetDeletedCertificate(ctx, "svc", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	_, err = cl.k.GetDeletedKey(ctx, "svc", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	res, err := cl.c.RestoreCertificate(ctx, azcertificates.RestoreCertificateParameters{CertificateBackup: bk.Value}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(*res.ID) != string(*del.ID) || res.Attributes == nil {
		t.Fatalf("restored %s, want %s", *res.ID, *del.ID)
	}
	checkBacking(t, cl, res.Certificate, true)
	n := 0
	for pg := cl.k.NewListKeyPropertiesVersionsPager("svc", nil); pg.More(); {
		p, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Value)
	}
	if n != 5 {
		t.Fatalf("restored key has %d versions, want 5", n)
	}
	_, err = cl.c.RestoreCertificate(ctx, azcertificates.RestoreCertificateParameters{CertificateBackup: bk.Value}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict")
	_, err = cl.c.RestoreCertificate(ctx, azcertificates.RestoreCertificateParameters{CertificateBackup: []byte("KWB1garbage")}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	// The SDK's own TestUpdateCertificatePolicy: a policy update that
	// switches to an EC P-256K key is stored and echoed (issuing with it
	// is refused: X.509 libraries do not support secp256k1).
	sdkPol := fullPolicy()
	sdkPol.KeyProperties.ReuseKey = to.Ptr(true)
	sdkPol.X509CertificateProperties.SubjectAlternativeNames = &azcertificates.SubjectAlternativeNames{DNSNames: []*string{to.Ptr("localhost")}}
	if _, err := cl.c.CreateCertificate(ctx, "sdkpolicy", azcertificates.CreateCertificateParameters{CertificatePolicy: &sdkPol}, nil); err != nil {
		t.Fatal(err)
	}
	k256 := &azcertificates.KeyProperties{Curve: to.Ptr(azcertificates.CurveNameP256K), Exportable: to.Ptr(true),
		KeySize: to.Ptr(int32(256)), KeyType: to.Ptr(azcertificates.KeyTypeEC), ReuseKey: to.Ptr(false)}
	sp, err := cl.c.UpdateCertificatePolicy(ctx, "sdkpolicy", azcertificates.CertificatePolicy{KeyProperties: k256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "issuer kept", sp.IssuerParameters, sdkPol.IssuerParameters)
	sameJSON(t, "key_props replaced", sp.KeyProperties, k256)
	sameJSON(t, "lifetime_actions kept", sp.LifetimeActions, sdkPol.LifetimeActions)
	sameJSON(t, "secret_props kept", sp.SecretProperties, sdkPol.SecretProperties)
	sameJSON(t, "x509_props kept", sp.X509CertificateProperties, sdkPol.X509CertificateProperties)
	_, err = cl.c.CreateCertificate(ctx, "sdkpolicy", azcertificates.CreateCertificateParameters{}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
}
