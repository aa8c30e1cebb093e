package certificates

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"github.com/keyward/keyward/internal/vault"
	"strings"
	"testing"
)

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		in, want, cn string
		bad          bool
	}{
		{in: "CN=app.example.com, OU=Platform, O=Keyward, C=US", want: "CN=app.example.com,OU=Platform,O=Keyward,C=US", cn: "app.example.com"},
		{in: `CN="a, b";O=x\,y`, want: `CN=a\, b,O=x\,y`, cn: "a, b"},
		{in: "cn=lower", want: "CN=lower", cn: "lower"},
		{in: "2.5.4.3=oid", want: "CN=oid", cn: ""},
		{in: "", want: ""},
		{in: "CN", bad: true},
		{in: "CN=", bad: true},
		{in: "XX=1", bad: true},
		{in: "C=Ä", bad: true},
		{in: "DC=ä", bad: true},
		{in: strings.Repeat("a", 2000), bad: true},
	} {
		raw, cn, err := parseSubject(tc.in)
		if tc.bad {
			if vault.KindOf(err) != vault.BadParameter {
				t.Errorf("%q: err %v, want vault.BadParameter", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var rdn pkix.RDNSequence
		if _, err := asn1.Unmarshal(raw, &rdn); err != nil {
			t.Fatal(err)
		}
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		if got := n.String(); got != tc.want || cn != tc.cn {
			t.Errorf("%q: %q cn %q, want %q cn %q", tc.in, got, cn, tc.want, tc.cn)
		}
	}
}

func TestParseSubjectStringTypes(t *testing.T) {
	raw, _, err := parseSubject("CN=ü, E=me@example.com, DC=example, C=US")
	if err != nil {
		t.Fatal(err)
	}
	var rdns []asn1.RawValue
	if _, err := asn1.Unmarshal(raw, &rdns); err != nil {
		t.Fatal(err)
	}
	var tags []int
	for _, set := range rdns {
		var atv []struct {
			Type  asn1.ObjectIdentifier
			Value asn1.RawValue
		}
		if _, err := asn1.UnmarshalWithParams(set.FullBytes, &atv, "set"); err != nil {
			t.Fatal(err)
		}
		tags = append(tags, atv[0].Value.Tag)
	}
	// X.501 order: C, DC, E, CN.
	want := []int{asn1.TagPrintableString, asn1.TagIA5String, asn1.TagIA5String, asn1.TagUTF8String}
	for i := range want {
		if tags[i] != want[i] {
			t.Fatalf("string tags %v, want %v", tags, want)
		}
	}
}

func TestPolicyDefaultsMergeValidate(t *testing.T) {
	p := (&CertificatePolicy{X509: &X509Properties{Subject: ptr("CN=x")}, Issuer: &IssuerParameters{Name: ptr("Self")}}).withDefaults()
	if p.kty() != "RSA" || *p.Key.Size != 2048 || !p.exportable() || p.contentType() != vault.ContentTypePKCS12 ||
		*p.X509.ValidityMonths != 12 || len(p.LifetimeActions) != 1 || p.LifetimeActions[0].Action != ActionAutoRenew {
		t.Fatalf("defaults: %+v", p)
	}
	if err := p.validate(); err != nil {
		t.Fatal(err)
	}
	u := (&CertificatePolicy{X509: &X509Properties{Subject: ptr("CN=x")}}).withDefaults()
	if u.issuerName() != IssuerUnknown || u.LifetimeActions[0].Action != ActionEmailContacts {
		t.Fatalf("an Unknown issuer's default action must be EmailContacts: %+v", u.LifetimeActions)
	}
	// Changing the key type drops the old size and curve.
	ec := p.merge(&CertificatePolicy{Key: &CertKeyProperties{Kty: ptr("EC"), Curve: ptr("P-384")}})
	if kty, spec, err := ec.keySpec(); err != nil || kty != "EC" || spec.Curve != "P-384" {
		t.Fatalf("merged key: %v %v %v", kty, spec, err)
	}
	if *ec.X509.Subject != "CN=x" || *ec.Issuer.Name != "Self" {
		t.Fatal("merge lost other sections")
	}
	for name, bad := range map[string]*CertificatePolicy{
		"no x509":    {Issuer: &IssuerParameters{Name: ptr("Self")}},
		"oct":        p.merge(&CertificatePolicy{Key: &CertKeyProperties{Kty: ptr("oct")}}),
		"ec size":    p.merge(&CertificatePolicy{Key: &CertKeyProperties{Kty: ptr("EC"), Size: ptr(2048)}}),
		"two renews": p.merge(&CertificatePolicy{LifetimeActions: []CertificateLifetimeAction{{LifetimePercentage: ptr(50), Action: ActionAutoRenew}, {DaysBeforeExpiry: ptr(5), Action: ActionAutoRenew}}}),
		"both":       p.merge(&CertificatePolicy{LifetimeActions: []CertificateLifetimeAction{{LifetimePercentage: ptr(50), DaysBeforeExpiry: ptr(5), Action: ActionAutoRenew}}}),
		"days":       p.merge(&CertificatePolicy{LifetimeActions: []CertificateLifetimeAction{{DaysBeforeExpiry: ptr(12*27 + 1), Action: ActionEmailContacts}}}),
		"months":     p.merge(&CertificatePolicy{X509: &X509Properties{ValidityMonths: ptr(0)}}),
		"eku":        p.merge(&CertificatePolicy{X509: &X509Properties{EKUs: []string{"1.2.x"}}}),
		"san":        p.merge(&CertificatePolicy{X509: &X509Properties{SANs: &SANs{DNSNames: []string{"bad name"}}}}),
		"ct":         p.merge(&CertificatePolicy{Secret: &CertSecretProperties{ContentType: ptr("text/plain")}}),
		"issuer":     p.merge(&CertificatePolicy{Issuer: &IssuerParameters{Name: ptr("bad name")}}),
	} {
		if err := bad.validate(); vault.KindOf(err) != vault.BadParameter {
			t.Errorf("%s: err %v, want vault.BadParameter", name, err)
		}
	}
}

func TestActionDue(t *testing.T) {
	nbf, exp := int64(1000), int64(1000+100*86400)
	if got := actionDue(nbf, exp, CertificateLifetimeAction{LifetimePercentage: ptr(80)}); got != 1000+80*86400 {
		t.Fatalf("80%%: %d", got)
	}
	if got := actionDue(nbf, exp, CertificateLifetimeAction{DaysBeforeExpiry: ptr(30)}); got != 1000+70*86400 {
		t.Fatalf("30 days before: %d", got)
	}
}

func TestKeyUsageExtensionMatchesX509(t *testing.T) {
	for _, ku := range []x509.KeyUsage{x509.KeyUsageDigitalSignature, x509.KeyUsageDecipherOnly,
		x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign} {
		ext, err := marshalKeyUsage(ku)
		if err != nil {
			t.Fatal(err)
		}
		var bs asn1.BitString
		if _, err := asn1.Unmarshal(ext.Value, &bs); err != nil {
			t.Fatal(err)
		}
		var got x509.KeyUsage
		for i := 0; i < 9; i++ {
			if bs.At(i) != 0 {
				got |= 1 << uint(i)
			}
		}
		if got != ku || !ext.Critical {
			t.Fatalf("key usage %b encoded as %b", ku, got)
		}
	}
}
