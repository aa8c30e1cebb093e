package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"hash"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/vault"
	"software.sslmate.com/src/go-pkcs12"
)

func certsClient(t *testing.T, e *kwtest.Env) *azcertificates.Client {
	t.Helper()
	c, err := azcertificates.NewClient(e.Info.VaultURL, e.Credential(), &azcertificates.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certClients bundles the three SDK clients a certificate test needs.
type certClients struct {
	c *azcertificates.Client
	k *azkeys.Client
	s *azsecrets.Client
}

func allClients(t *testing.T, e *kwtest.Env) certClients {
	return certClients{c: certsClient(t, e), k: keysClient(t, e), s: secretsClient(t, e)}
}

func mustCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return c
}

// sameJSON compares two SDK values field by field (reflect.DeepEqual on
// the generated structs, whose pointers are compared by value).
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", what, dump(got), dump(want))
	}
}

func dump(v any) string {
	if m, ok := v.(interface{ MarshalJSON() ([]byte, error) }); ok {
		b, _ := m.MarshalJSON()
		return string(b)
	}
	return reflect.ValueOf(v).String()
}

// secretMaterial decodes a certificate secret in either content type into
// its private key (nil if none) and certificates.
func secretMaterial(t *testing.T, contentType, value string) (crypto.PrivateKey, []*x509.Certificate) {
	t.Helper()
	switch contentType {
	case vault.ContentTypePKCS12:
		der, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			t.Fatalf("PFX secret is not standard base64: %v", err)
		}
		if key, leaf, cas, err := pkcs12.DecodeChain(der, ""); err == nil {
			return key, append([]*x509.Certificate{leaf}, cas...)
		}
		certs, err := pkcs12.DecodeTrustStore(der, "")
		if err != nil {
			t.Fatalf("PFX secret does not decode without a password: %v", err)
		}
		return nil, certs
	case vault.ContentTypePEM:
		var key crypto.PrivateKey
		var certs []*x509.Certificate
		rest := []byte(value)
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			switch b.Type {
			case "PRIVATE KEY":
				k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
				if err != nil {
					t.Fatal(err)
				}
				key = k
			case "CERTIFICATE":
				certs = append(certs, mustCert(t, b.Bytes))
			default:
				t.Fatalf("unexpected PEM block %s", b.Type)
			}
		}
		return key, certs
	}
	t.Fatalf("unexpected content type %q", contentType)
	return nil, nil
}

// checkBacking verifies the managed key and secret of a certificate
// version: same name and version, managed, the secret's private key
// matches the certificate, and the key's signature verifies with the
// certificate's public key. It returns the secret's chain.
func checkBacking(t *testing.T, cl certClients, cert azcertificates.Certificate, wantPrivate bool) []*x509.Certificate {
	t.Helper()
	ctx := context.Background()
	leaf := mustCert(t, cert.CER)
	name, version := cert.ID.Name(), cert.ID.Version()
	if cert.KID.Name() != name || cert.KID.Version() != version || cert.SID.Name() != name || cert.SID.Version() != version {
		t.Fatalf("kid %s / sid %s do not match %s", *cert.KID, *cert.SID, *cert.ID)
	}
	sec, err := cl.s.GetSecret(ctx, name, version, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sec.Managed == nil || !*sec.Managed || sec.KID == nil || string(*sec.KID) != string(*cert.KID) {
		t.Fatalf("secret managed=%v kid=%v, want managed and %s", sec.Managed, sec.KID, *cert.KID)
	}
	if *sec.ContentType != *cert.ContentType {
		t.Fatalf("secret content type %s, certificate says %s", *sec.ContentType, *cert.ContentType)
	}
	key, chain := secretMaterial(t, *sec.ContentType, *sec.Value)
	if len(chain) == 0 || !chain[0].Equal(leaf) && !containsCert(chain, leaf) {
		t.Fatal("the secret does not hold the certificate")
	}
	if wantPrivate {
		signer, ok := key.(crypto.Signer)
		if !ok || !signer.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
			t.Fatal("the secret's private key does not match the certificate")
		}
	} else if key != nil {
		t.Fatal("the secret of a non-exportable key holds a private key")
	}

	k, err := cl.k.GetKey(ctx, name, version, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k.Managed == nil || !*k.Managed {
		t.Fatal("backing key is not managed")
	}
	alg := azkeys.SignatureAlgorithmRS256
	if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); ok {
		alg = map[int]azkeys.SignatureAlgorithm{256: azkeys.SignatureAlgorithmES256, 384: azkeys.SignatureAlgorithmES384,
			521: azkeys.SignatureAlgorithmES512}[pub.Curve.Params().BitSize]
	}
	h, digest := digestOf(alg, []byte("signed by the certificate's key in the vault"))
	sig, err := cl.k.Sign(ctx, name, version, azkeys.SignParameters{Algorithm: &alg, Value: digest}, nil)
	if err != nil {
		t.Fatal(err)
	}
	switch pub := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, h, digest, sig.Result); err != nil {
			t.Fatalf("the key's signature does not verify with the certificate: %v", err)
		}
	case *ecdsa.PublicKey:
		half := len(sig.Result) / 2
		if !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig.Result[:half]), new(big.Int).SetBytes(sig.Result[half:])) {
			t.Fatal("the key's signature does not verify with the certificate")
		}
	}
	return chain
}

func containsCert(chain []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range chain {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// testCA is a CA made by the test, to sign CSRs for merge.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: mustCert(t, der), key: key}
}

// sign issues a certificate for a CSR (subject and SANs copied), or for
// pub when given instead.
func (ca *testCA) sign(t *testing.T, csr *x509.CertificateRequest, pub crypto.PublicKey, months int) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().AddDate(0, months, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if csr != nil {
		tmpl.Subject, tmpl.DNSNames, tmpl.EmailAddresses = csr.Subject, csr.DNSNames, csr.EmailAddresses
		pub = csr.PublicKey
	} else {
		tmpl.Subject = pkix.Name{CommonName: "other"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return mustCert(t, der)
}

func sha256New() hash.Hash { return sha256.New() }

func values[T any](ps []*T) []T {
	var out []T
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

func samePub(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
