package certificates

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"github.com/keyward/keyward/internal/vault"
	"math/big"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Fuzz targets for every certificate parser of outside bytes (STYLE.md
// §6): PFX and PEM imports, merged chains, and DN subjects. Whatever the
// input, the parsers must not panic and must fail with vault.BadParameter;
// what they accept must be usable.

func fuzzSeedCert(tb testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz"},
		NotBefore: time.Unix(1700000000, 0), NotAfter: time.Unix(1800000000, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return key, c
}

func checkBadParameter(t *testing.T, err error) {
	t.Helper()
	if err != nil && vault.KindOf(err) != vault.BadParameter {
		t.Fatalf("error of kind %d, want BadParameter: %v", vault.KindOf(err), err)
	}
}

func FuzzParseImport(f *testing.F) {
	key, cert := fuzzSeedCert(f)
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	pemBundle := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	pfx, err := pkcs12.Modern.Encode(key, cert, nil, "pw")
	if err != nil {
		f.Fatal(err)
	}
	legacy, err := pkcs12.LegacyRC2.Encode(key, cert, []*x509.Certificate{cert}, "pw")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pemBundle, "")
	f.Add(base64.StdEncoding.EncodeToString(pfx), "pw")
	f.Add(base64.StdEncoding.EncodeToString(legacy), "pw")
	f.Add(base64.StdEncoding.EncodeToString(pfx[:len(pfx)/2]), "pw")
	f.Add(base64.StdEncoding.EncodeToString([]byte(pemBundle)), "")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, value, password string) {
		b, ct, err := parseImport(value, password)
		checkBadParameter(t, err)
		if err != nil {
			return
		}
		if b.key == nil || b.leaf < 0 || b.leaf >= len(b.chain) || !samePublic(b.key.Public(), b.leafCert().PublicKey) {
			t.Fatal("accepted an import whose key does not match its leaf")
		}
		if ct != vault.ContentTypePEM && ct != vault.ContentTypePKCS12 {
			t.Fatalf("content type %q", ct)
		}
		// What is accepted re-encodes in both formats and reads back.
		chain, leaf := b.ordered(false)
		for _, to := range []string{vault.ContentTypePEM, vault.ContentTypePKCS12} {
			v, err := encodeCertSecret(to, b.key, chain, leaf)
			if err != nil {
				t.Fatalf("re-encoding as %s: %v", to, err)
			}
			k, certs, _, err := decodeCertSecret(to, v)
			if err != nil || k == nil || len(certs) != len(chain) {
				t.Fatalf("round trip through %s: %v", to, err)
			}
		}
	})
}

func FuzzParseMergeChain(f *testing.F) {
	_, cert := fuzzSeedCert(f)
	f.Add(cert.Raw, []byte(nil))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), cert.Raw)
	f.Add([]byte("garbage"), []byte("-----BEGIN CERTIFICATE-----\n"))
	f.Add(cert.Raw[:len(cert.Raw)-3], []byte{})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		x5c := [][]byte{a}
		if b != nil {
			x5c = append(x5c, b)
		}
		chain, err := parseMergeChain(x5c)
		checkBadParameter(t, err)
		if err == nil && len(chain) == 0 {
			t.Fatal("accepted an empty chain")
		}
	})
}

func FuzzDecodeCertSecret(f *testing.F) {
	key, cert := fuzzSeedCert(f)
	for _, ct := range []string{vault.ContentTypePEM, vault.ContentTypePKCS12} {
		v, err := encodeCertSecret(ct, key, []*x509.Certificate{cert}, 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct == vault.ContentTypePEM, v)
	}
	f.Fuzz(func(t *testing.T, isPEM bool, value []byte) {
		ct := vault.ContentTypePKCS12
		if isPEM {
			ct = vault.ContentTypePEM
		}
		_, _, _, err := decodeCertSecret(ct, value)
		checkBadParameter(t, err)
	})
}

func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"CN=a", "CN=app.example.com, OU=Platform, O=Keyward, C=US", `CN="a, b", O=x\,y`,
		"E=me@example.com;DC=example;DC=com", "1.2.3.4=x", "", "=", "CN=", "C=ÄÖ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, _, err := parseSubject(s)
		checkBadParameter(t, err)
		if err != nil {
			return
		}
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(raw, &rdn); err != nil || len(rest) != 0 {
			t.Fatalf("accepted subject %q encodes to bad DER: %v", s, err)
		}
	})
}
