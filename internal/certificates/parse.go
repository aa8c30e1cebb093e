package certificates

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/keyward/keyward/internal/vault"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// This file parses certificate material that comes from outside: PFX and
// PEM imports, merged chains, and the certificate secrets Keyward itself
// wrote (for outContentType conversion). Every parser returns a
// vault.BadParameter error on bad input and never panics (fuzzed in
// certificates_fuzz_test.go).

// maxCertInput bounds what the parsers look at.
const maxCertInput = 256 << 10

// maxChain bounds the certificates in one chain.
const maxChain = 16

// certBundle is a parsed chain, in the order given, with an optional key.
type certBundle struct {
	key   crypto.Signer // *rsa.PrivateKey or *ecdsa.PrivateKey; nil if none
	chain []*x509.Certificate
	leaf  int // index of the certificate that matches key (0 without key)
}

func (b *certBundle) leafCert() *x509.Certificate { return b.chain[b.leaf] }

// ordered returns the chain leaf first, unless preserve asks for the
// order given (preserveCertOrder).
func (b *certBundle) ordered(preserve bool) ([]*x509.Certificate, int) {
	if preserve || b.leaf == 0 {
		return b.chain, b.leaf
	}
	out := []*x509.Certificate{b.chain[b.leaf]}
	for i, c := range b.chain {
		if i != b.leaf {
			out = append(out, c)
		}
	}
	return out, 0
}

// ReasonKeyMismatch: the certificate's public key is not the key of the
// certificate's pending (or imported) version. The surfaces word it.
const ReasonKeyMismatch = "KeyMismatch"

var errKeyMismatch = &vault.Error{Kind: vault.BadParameter, Type: vault.Certificates, Reason: ReasonKeyMismatch}

func certBad(format string, args ...any) error {
	return &vault.Error{Kind: vault.BadParameter, Type: vault.Certificates, Msg: fmt.Sprintf(format, args...)}
}

// parseImport parses the value of an import request: base64 PKCS #12
// (PFX), PEM text, or base64 of PEM text. It returns the bundle and the
// content type it came in.
func parseImport(value, password string) (b *certBundle, contentType string, err error) {
	defer func() {
		if recover() != nil { // a decoder bug must not take the server down
			b, contentType, err = nil, "", certBad("The certificate could not be parsed.")
		}
	}()
	if len(value) > maxCertInput*2 {
		return nil, "", certBad("The certificate to import is too large.")
	}
	trimmed := strings.TrimSpace(value)
	if strings.HasPrefix(trimmed, "-----BEGIN") {
		b, err := parsePEMBundle([]byte(trimmed), true)
		return b, vault.ContentTypePEM, err
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(trimmed), ""))
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(strings.Join(strings.Fields(trimmed), "")); err != nil {
			return nil, "", certBad("The certificate to import must be base64-encoded PKCS #12 (PFX) or PEM.")
		}
	}
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("-----BEGIN")) {
		b, err := parsePEMBundle(bytes.TrimSpace(raw), true)
		return b, vault.ContentTypePEM, err
	}
	b, err = parsePFX(raw, password)
	return b, vault.ContentTypePKCS12, err
}

// parsePFX decodes a PKCS #12 file with its password.
func parsePFX(der []byte, password string) (*certBundle, error) {
	if len(der) == 0 {
		return nil, certBad("The PFX is empty.")
	}
	key, leaf, cas, err := pkcs12.DecodeChain(der, password)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return nil, certBad("The specified PFX password is incorrect.")
		}
		return nil, certBad("The PFX could not be read: %s.", strings.TrimPrefix(err.Error(), "pkcs12: "))
	}
	b := &certBundle{chain: append([]*x509.Certificate{leaf}, cas...)}
	signer, err := importableKey(key)
	if err != nil {
		return nil, err
	}
	b.key = signer
	return b, b.findLeaf()
}

// parsePEMBundle reads certificates and at most one private key from PEM
// text, in any order. needKey says whether a key is required.
func parsePEMBundle(data []byte, needKey bool) (*certBundle, error) {
	if len(data) > maxCertInput {
		return nil, certBad("The PEM input is too large.")
	}
	b := &certBundle{}
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, certBad("A PEM certificate could not be parsed: %s.", strings.TrimPrefix(err.Error(), "x509: "))
			}
			b.chain = append(b.chain, c)
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if b.key != nil {
				return nil, certBad("The PEM input holds more than one private key.")
			}
			k, err := parsePEMKey(block)
			if err != nil {
				return nil, err
			}
			b.key = k
		case "ENCRYPTED PRIVATE KEY":
			return nil, certBad("Encrypted PEM private keys are not supported; import a PFX with its password, or an unencrypted PEM key.")
		}
		if len(b.chain) > maxChain {
			return nil, certBad("The chain has more than %d certificates.", maxChain)
		}
	}
	if len(b.chain) == 0 {
		return nil, certBad("The PEM input holds no certificate.")
	}
	if b.key == nil {
		if needKey {
			return nil, certBad("The certificate to import must contain its private key.")
		}
		return b, nil
	}
	return b, b.findLeaf()
}

func parsePEMKey(block *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		k, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, certBad("The PEM private key could not be parsed.")
	}
	return importableKey(k)
}

func importableKey(k any) (crypto.Signer, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().Name {
		case "P-256", "P-384", "P-521":
			return k, nil
		}
	}
	return nil, certBad("The private key type is not supported; certificates use RSA or EC (P-256, P-384, P-521) keys.")
}

// findLeaf sets b.leaf to the certificate that matches b.key.
func (b *certBundle) findLeaf() error {
	for i, c := range b.chain {
		if samePublic(b.key.Public(), c.PublicKey) {
			b.leaf = i
			return nil
		}
	}
	return certBad("The private key does not match the public key of any certificate.")
}

// parseMergeChain reads the x5c of a merge request: each element is the
// DER of one certificate (what the SDKs send), or PEM text with one or more.
func parseMergeChain(x5c [][]byte) ([]*x509.Certificate, error) {
	if len(x5c) == 0 {
		return nil, certBad("The merge request must contain at least one certificate (x5c).")
	}
	var chain []*x509.Certificate
	for _, raw := range x5c {
		if len(raw) > maxCertInput {
			return nil, certBad("A certificate in x5c is too large.")
		}
		if t := bytes.TrimSpace(raw); bytes.HasPrefix(t, []byte("-----BEGIN")) {
			b, err := parsePEMBundle(t, false)
			if err != nil {
				return nil, err
			}
			chain = append(chain, b.chain...)
		} else {
			c, err := x509.ParseCertificate(raw)
			if err != nil {
				return nil, certBad("A certificate in x5c could not be parsed: %s.", strings.TrimPrefix(err.Error(), "x509: "))
			}
			chain = append(chain, c)
		}
		if len(chain) > maxChain {
			return nil, certBad("The chain has more than %d certificates.", maxChain)
		}
	}
	return chain, nil
}

// encodeCertSecret writes a certificate secret in contentType: PEM (the
// private key as PKCS #8, then the chain in order) or base64 PKCS #12
// without a password. key is nil for non-exportable keys: the secret then
// carries the certificates only.
func encodeCertSecret(contentType string, key crypto.PrivateKey, chain []*x509.Certificate, leaf int) ([]byte, error) {
	switch contentType {
	case vault.ContentTypePEM:
		var buf bytes.Buffer
		if key != nil {
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return nil, err
			}
			pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
			clear(der)
		}
		for _, c := range chain {
			pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		return buf.Bytes(), nil
	case vault.ContentTypePKCS12:
		var (
			pfx []byte
			err error
		)
		if key != nil {
			var cas []*x509.Certificate
			for i, c := range chain {
				if i != leaf {
					cas = append(cas, c)
				}
			}
			pfx, err = pkcs12.Modern.Encode(key, chain[leaf], cas, "")
		} else {
			pfx, err = pkcs12.Modern.EncodeTrustStore(chain, "")
		}
		if err != nil {
			return nil, err
		}
		return []byte(base64.StdEncoding.EncodeToString(pfx)), nil
	}
	return nil, badParameter("Unknown secret content type %s.", clip(contentType))
}

// decodeCertSecret reads a secret encodeCertSecret wrote.
func decodeCertSecret(contentType string, value []byte) (_ crypto.PrivateKey, _ []*x509.Certificate, leaf int, err error) {
	defer func() {
		if recover() != nil {
			err = certBad("The certificate secret could not be read.")
		}
	}()
	switch contentType {
	case vault.ContentTypePEM:
		b, err := parsePEMBundle(value, false)
		if err != nil {
			return nil, nil, 0, err
		}
		return b.key, b.chain, b.leaf, nil
	case vault.ContentTypePKCS12:
		der, err := base64.StdEncoding.DecodeString(string(value))
		if err != nil {
			return nil, nil, 0, certBad("The certificate secret is not base64.")
		}
		if key, c, cas, err := pkcs12.DecodeChain(der, ""); err == nil {
			return key, append([]*x509.Certificate{c}, cas...), 0, nil
		}
		certs, err := pkcs12.DecodeTrustStore(der, "")
		if err != nil || len(certs) == 0 {
			return nil, nil, 0, certBad("The certificate secret could not be read.")
		}
		return nil, certs, 0, nil
	}
	return nil, nil, 0, certBad("The secret is not a certificate (content type %s).", clip(contentType))
}

// convertCertSecret re-encodes a certificate secret in another content type.
func convertCertSecret(from, to string, value []byte) ([]byte, error) {
	key, chain, leaf, err := decodeCertSecret(from, value)
	if err != nil {
		return nil, err
	}
	return encodeCertSecret(to, key, chain, leaf)
}
