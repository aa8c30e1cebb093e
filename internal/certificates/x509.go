package certificates

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"github.com/keyward/keyward/internal/vault"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/keyward/keyward/internal/keys"
)

// This file turns certificate policies into X.509: subjects, extensions,
// templates, CSRs, and a crypto.Signer over any loaded vault key.

var (
	oidExtSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidExtKeyUsage       = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtExtKeyUsage    = asn1.ObjectIdentifier{2, 5, 29, 37}
	// OIDUPN is the Microsoft user principal name otherName of a SAN.
	OIDUPN = vault.OIDUPN
)

// dnAttrs are the attribute names a policy subject may use, with their
// OIDs and the ASN.1 string type of their values.
var dnAttrs = map[string]struct {
	oid asn1.ObjectIdentifier
	tag int
}{
	"CN":           {asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.TagUTF8String},
	"SN":           {asn1.ObjectIdentifier{2, 5, 4, 4}, asn1.TagUTF8String},
	"SURNAME":      {asn1.ObjectIdentifier{2, 5, 4, 4}, asn1.TagUTF8String},
	"SERIALNUMBER": {asn1.ObjectIdentifier{2, 5, 4, 5}, asn1.TagPrintableString},
	"C":            {asn1.ObjectIdentifier{2, 5, 4, 6}, asn1.TagPrintableString},
	"L":            {asn1.ObjectIdentifier{2, 5, 4, 7}, asn1.TagUTF8String},
	"S":            {asn1.ObjectIdentifier{2, 5, 4, 8}, asn1.TagUTF8String},
	"ST":           {asn1.ObjectIdentifier{2, 5, 4, 8}, asn1.TagUTF8String},
	"STREET":       {asn1.ObjectIdentifier{2, 5, 4, 9}, asn1.TagUTF8String},
	"O":            {asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.TagUTF8String},
	"OU":           {asn1.ObjectIdentifier{2, 5, 4, 11}, asn1.TagUTF8String},
	"T":            {asn1.ObjectIdentifier{2, 5, 4, 12}, asn1.TagUTF8String},
	"TITLE":        {asn1.ObjectIdentifier{2, 5, 4, 12}, asn1.TagUTF8String},
	"POSTALCODE":   {asn1.ObjectIdentifier{2, 5, 4, 17}, asn1.TagUTF8String},
	"G":            {asn1.ObjectIdentifier{2, 5, 4, 42}, asn1.TagUTF8String},
	"GIVENNAME":    {asn1.ObjectIdentifier{2, 5, 4, 42}, asn1.TagUTF8String},
	"DC":           {asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, asn1.TagIA5String},
	"UID":          {asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, asn1.TagUTF8String},
	"E":            {asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, asn1.TagIA5String},
	"EMAIL":        {asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, asn1.TagIA5String},
	"EMAILADDRESS": {asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, asn1.TagIA5String},
}

// parseSubject parses a distinguished name as Key Vault policies write it
// ("CN=www.example.com, O=Example, C=US"; RFC 4514 order, most specific
// first) into DER, in X.501 order. It also returns the common name.
func parseSubject(s string) (raw []byte, cn string, err error) {
	if len(s) > 1024 {
		return nil, "", badParameter("The subject is too long (at most 1024 characters).")
	}
	var rdns pkix.RDNSequence
	for _, part := range splitDN(s) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, "", badParameter("The subject %q is not a valid X.500 distinguished name: %q has no '='.", clip(s), clip(part))
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		val = unescapeDN(strings.TrimSpace(val))
		if val == "" {
			return nil, "", badParameter("The subject attribute %s has an empty value.", clip(k))
		}
		oid, tag := asn1.ObjectIdentifier(nil), asn1.TagUTF8String
		if a, ok := dnAttrs[k]; ok {
			oid, tag = a.oid, a.tag
		} else if o, err := parseOID(strings.TrimPrefix(k, "OID.")); err == nil {
			oid = o
		} else {
			return nil, "", badParameter("The subject attribute %q is not supported.", clip(k))
		}
		switch tag {
		case asn1.TagPrintableString:
			if !isPrintable(val) {
				return nil, "", badParameter("The subject attribute %s must be a printable string.", k)
			}
		case asn1.TagIA5String:
			if !isASCII(val) {
				return nil, "", badParameter("The subject attribute %s must be ASCII.", k)
			}
		}
		if k == "CN" && cn == "" {
			cn = val
		}
		rdns = append(rdns, []pkix.AttributeTypeAndValue{{Type: oid, Value: asn1.RawValue{Tag: tag, Bytes: []byte(val)}}})
	}
	// RFC 4514 strings list the most specific RDN first; X.501 the reverse.
	for i, j := 0, len(rdns)-1; i < j; i, j = i+1, j-1 {
		rdns[i], rdns[j] = rdns[j], rdns[i]
	}
	raw, err = asn1.Marshal(rdns)
	if err != nil {
		return nil, "", badParameter("The subject %q cannot be encoded.", clip(s))
	}
	return raw, cn, nil
}

// splitDN splits at unescaped, unquoted commas and semicolons.
func splitDN(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune('\\')
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped = true
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ',' || r == ';') && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

func unescapeDN(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	var b strings.Builder
	escaped := false
	for _, r := range v {
		if r == '\\' && !escaped {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isPrintable(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" '()+,-./:=?", r)) {
			return false
		}
	}
	return true
}

// parseOID parses a dotted object identifier.
func parseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 32 {
		return nil, errors.New("bad OID")
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || (len(p) > 1 && p[0] == '0') {
			return nil, errors.New("bad OID")
		}
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, errors.New("bad OID")
	}
	return oid, nil
}

// keyUsageBits maps Key Vault's key_usage names (AZURE-API.md §1.4).
var keyUsageBits = map[string]x509.KeyUsage{
	"digitalsignature": x509.KeyUsageDigitalSignature,
	"nonrepudiation":   x509.KeyUsageContentCommitment,
	"keyencipherment":  x509.KeyUsageKeyEncipherment,
	"dataencipherment": x509.KeyUsageDataEncipherment,
	"keyagreement":     x509.KeyUsageKeyAgreement,
	"keycertsign":      x509.KeyUsageCertSign,
	"crlsign":          x509.KeyUsageCRLSign,
	"encipheronly":     x509.KeyUsageEncipherOnly,
	"decipheronly":     x509.KeyUsageDecipherOnly,
}

// KeyUsageNames lists the key_usage names Key Vault uses, by bit.
var KeyUsageNames = map[x509.KeyUsage]string{
	x509.KeyUsageDigitalSignature:  "digitalSignature",
	x509.KeyUsageContentCommitment: "nonRepudiation",
	x509.KeyUsageKeyEncipherment:   "keyEncipherment",
	x509.KeyUsageDataEncipherment:  "dataEncipherment",
	x509.KeyUsageKeyAgreement:      "keyAgreement",
	x509.KeyUsageCertSign:          "keyCertSign",
	x509.KeyUsageCRLSign:           "cRLSign",
	x509.KeyUsageEncipherOnly:      "encipherOnly",
	x509.KeyUsageDecipherOnly:      "decipherOnly",
}

func keyUsage(names []string) (x509.KeyUsage, error) {
	var ku x509.KeyUsage
	for _, n := range names {
		b, ok := keyUsageBits[strings.ToLower(n)]
		if !ok {
			return 0, badParameter("Unknown key usage %q; use digitalSignature, nonRepudiation, keyEncipherment, dataEncipherment, keyAgreement, keyCertSign, cRLSign, encipherOnly or decipherOnly.", clip(n))
		}
		ku |= b
	}
	return ku, nil
}

func ekuOIDs(ekus []string) ([]asn1.ObjectIdentifier, error) {
	out := make([]asn1.ObjectIdentifier, 0, len(ekus))
	for _, e := range ekus {
		oid, err := parseOID(e)
		if err != nil {
			return nil, badParameter("The enhanced key usage %q is not a valid object identifier.", clip(e))
		}
		out = append(out, oid)
	}
	return out, nil
}

// reverseBits reverses the bits of a byte (KeyUsage is a DER BIT STRING).
func reverseBits(b byte) byte {
	var r byte
	for i := 0; i < 8; i++ {
		r = r<<1 | b&1
		b >>= 1
	}
	return r
}

func marshalKeyUsage(ku x509.KeyUsage) (pkix.Extension, error) {
	a := []byte{reverseBits(byte(ku)), reverseBits(byte(ku >> 8))}
	if a[1] == 0 {
		a = a[:1]
	}
	bitLen := len(a) * 8
	for bitLen > 0 && a[(bitLen-1)/8]&(0x80>>uint((bitLen-1)%8)) == 0 {
		bitLen--
	}
	v, err := asn1.Marshal(asn1.BitString{Bytes: a, BitLength: bitLen})
	return pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: v}, err
}

func marshalEKU(oids []asn1.ObjectIdentifier) (pkix.Extension, error) {
	v, err := asn1.Marshal(oids)
	return pkix.Extension{Id: oidExtExtKeyUsage, Value: v}, err
}

// marshalSAN encodes DNS names, e-mail addresses and UPNs (an otherName
// crypto/x509 cannot write) as one subjectAltName extension.
func marshalSAN(dns, emails, upns []string, critical bool) (pkix.Extension, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range emails {
			b.AddASN1(cbasn1.Tag(1).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(e)) })
		}
		for _, d := range dns {
			b.AddASN1(cbasn1.Tag(2).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(d)) })
		}
		for _, u := range upns {
			b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(OIDUPN)
				b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
				})
			})
		}
	})
	v, err := b.Bytes()
	return pkix.Extension{Id: oidExtSubjectAltName, Critical: critical, Value: v}, err
}

func validDNSName(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '*' || c == '_') {
			return false
		}
	}
	return true
}

// x509Spec is a policy's X.509 part, validated and ready for templates.
type x509Spec struct {
	rawSubject []byte
	cn         string
	dns        []string
	emails     []string
	upns       []string
	ku         x509.KeyUsage
	ekus       []asn1.ObjectIdentifier
	months     int
}

func (p *X509Properties) spec() (*x509Spec, error) {
	sp := &x509Spec{months: 12}
	if p == nil {
		return nil, badParameter("The certificate policy must have x509_props with a subject or subject alternative names.")
	}
	subject := ""
	if p.Subject != nil {
		subject = *p.Subject
	}
	var err error
	if sp.rawSubject, sp.cn, err = parseSubject(subject); err != nil {
		return nil, err
	}
	if p.SANs != nil {
		sp.dns, sp.emails, sp.upns = p.SANs.DNSNames, p.SANs.Emails, p.SANs.UPNs
	}
	for _, d := range sp.dns {
		if !validDNSName(d) {
			return nil, badParameter("The subject alternative name %q is not a valid DNS name.", clip(d))
		}
	}
	for _, e := range sp.emails {
		if !strings.Contains(e, "@") || !isASCII(e) || len(e) > 320 {
			return nil, badParameter("The subject alternative name %q is not a valid e-mail address.", clip(e))
		}
	}
	for _, u := range sp.upns {
		if u == "" || len(u) > 1024 {
			return nil, badParameter("A user principal name must be 1 to 1024 characters long.")
		}
	}
	if sp.cn == "" && len(sp.dns)+len(sp.emails)+len(sp.upns) == 0 {
		return nil, badParameter("The certificate policy needs a subject or at least one subject alternative name.")
	}
	if sp.ku, err = keyUsage(p.KeyUsage); err != nil {
		return nil, err
	}
	if sp.ekus, err = ekuOIDs(p.EKUs); err != nil {
		return nil, err
	}
	if p.ValidityMonths != nil {
		sp.months = *p.ValidityMonths
	}
	if sp.months < 1 || sp.months > 1200 {
		return nil, badParameter("validity_months must be between 1 and 1200.")
	}
	return sp, nil
}

// extensions returns the extensions a CSR requests and a certificate
// carries (besides basic constraints and key identifiers).
func (sp *x509Spec) extensions(forCSR bool) ([]pkix.Extension, error) {
	var exts []pkix.Extension
	if len(sp.upns) > 0 || forCSR && len(sp.dns)+len(sp.emails) > 0 {
		san, err := marshalSAN(sp.dns, sp.emails, sp.upns, len(sp.rawSubject) <= 2)
		if err != nil {
			return nil, err
		}
		exts = append(exts, san)
	}
	if sp.ku != 0 && forCSR {
		ext, err := marshalKeyUsage(sp.ku)
		if err != nil {
			return nil, err
		}
		exts = append(exts, ext)
	}
	if len(sp.ekus) > 0 {
		ext, err := marshalEKU(sp.ekus)
		if err != nil {
			return nil, err
		}
		exts = append(exts, ext)
	}
	return exts, nil
}

// template returns a leaf certificate template valid from now.
func (sp *x509Spec) template(now time.Time, pub crypto.PublicKey) (*x509.Certificate, error) {
	exts, err := sp.extensions(false)
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          randomSerial(),
		RawSubject:            sp.rawSubject,
		NotBefore:             now.Add(-5 * time.Minute).UTC().Truncate(time.Second),
		NotAfter:              now.AddDate(0, sp.months, 0).UTC().Truncate(time.Second),
		KeyUsage:              sp.ku,
		BasicConstraintsValid: true,
		IsCA:                  sp.ku&x509.KeyUsageCertSign != 0,
		SubjectKeyId:          ski,
		ExtraExtensions:       exts,
	}
	if len(sp.upns) == 0 {
		t.DNSNames, t.EmailAddresses = sp.dns, sp.emails
	}
	return t, nil
}

// csr returns a DER certificate signing request for the policy.
func (sp *x509Spec) csr(signer crypto.Signer) ([]byte, error) {
	exts, err := sp.extensions(true)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		RawSubject: sp.rawSubject, ExtraExtensions: exts,
	}, signer)
	if err != nil {
		return nil, fmt.Errorf("creating the certificate request: %w", err)
	}
	return der, nil
}

// acmeCSR is the CSR an ACME CA accepts: DNS names only, the common name
// one of them (RFC 8555 §7.4).
func (sp *x509Spec) acmeCSR(signer crypto.Signer) ([]byte, error) {
	if len(sp.dns) == 0 {
		return nil, badParameter("An ACME issuer needs at least one DNS name (x509_props.sans.dns_names).")
	}
	if len(sp.emails)+len(sp.upns) > 0 {
		return nil, badParameter("An ACME issuer can certify DNS names only; remove e-mail and UPN subject alternative names.")
	}
	cn := sp.dns[0]
	for _, d := range sp.dns {
		if strings.EqualFold(d, sp.cn) {
			cn = d
		}
	}
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn}, DNSNames: sp.dns,
	}, signer)
}

func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	b[0] |= 0x40 // never zero, always 16 bytes
	return new(big.Int).SetBytes(b)
}

// subjectKeyID is the SHA-1 of the subjectPublicKey (RFC 5280 §4.2.1.2 (1)).
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algo      pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

// publicKey converts a public JWK to a crypto.PublicKey that crypto/x509
// understands (RSA and NIST curves; not secp256k1).
func publicKey(j keys.JWK) (crypto.PublicKey, error) {
	switch strings.TrimSuffix(j.Kty, "-HSM") {
	case "RSA":
		e := new(big.Int).SetBytes(j.E)
		if !e.IsInt64() || e.Int64() > 1<<31-1 || e.Int64() < 3 {
			return nil, badParameter("unsupported RSA public exponent")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())}, nil
	case "EC":
		var c elliptic.Curve
		switch j.Crv {
		case keys.CurveP256:
			c = elliptic.P256()
		case keys.CurveP384:
			c = elliptic.P384()
		case keys.CurveP521:
			c = elliptic.P521()
		default:
			return nil, badParameter("Certificates cannot use curve %s; use P-256, P-384 or P-521.", clip(j.Crv))
		}
		size := (c.Params().BitSize + 7) / 8
		if len(j.X) > size || len(j.Y) > size {
			return nil, badParameter("invalid EC public key")
		}
		pt := make([]byte, 1+2*size)
		pt[0] = 4
		copy(pt[1+size-len(j.X):], j.X)
		copy(pt[1+2*size-len(j.Y):], j.Y)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, pt)
		if err != nil {
			return nil, badParameter("invalid EC public key")
		}
		return pub, nil
	}
	return nil, badParameter("Key type %s cannot back a certificate.", clip(j.Kty))
}

// samePublic reports whether two public keys are equal.
func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// opSigner is a crypto.Signer over a loaded vault key (software or HSM):
// crypto/x509 and the ACME client sign through it, so a private key that
// lives in an HSM never has to leave it. It holds the ctx of the call
// that made it because crypto.Signer's Sign takes none; it never outlives
// that call.
type opSigner struct {
	ctx context.Context
	op  keys.Operator
	pub crypto.PublicKey
}

var _ crypto.Signer = opSigner{}

func newOpSigner(ctx context.Context, op keys.Operator) (opSigner, error) {
	pub, err := publicKey(op.Public())
	if err != nil {
		return opSigner{}, err
	}
	return opSigner{ctx: ctx, op: op, pub: pub}, nil
}

func (s opSigner) Public() crypto.PublicKey { return s.pub }

// Sign maps (key, hash, padding) to a Key Vault algorithm and converts EC
// signatures from r‖s to the ASN.1 form crypto.Signer promises.
func (s opSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	bits := map[crypto.Hash]string{crypto.SHA256: "256", crypto.SHA384: "384", crypto.SHA512: "512"}[opts.HashFunc()]
	if bits == "" {
		return nil, fmt.Errorf("vault: hash %v is not supported for signing", opts.HashFunc())
	}
	switch pub := s.pub.(type) {
	case *rsa.PublicKey:
		alg := "RS" + bits
		if _, pss := opts.(*rsa.PSSOptions); pss {
			alg = "PS" + bits
		}
		return s.op.Sign(s.ctx, alg, digest)
	case *ecdsa.PublicKey:
		want := map[string]string{"P-256": "256", "P-384": "384", "P-521": "512"}[pub.Curve.Params().Name]
		if want != bits {
			return nil, fmt.Errorf("vault: curve %s signs with SHA-%s, not SHA-%s", pub.Curve.Params().Name, want, bits)
		}
		sig, err := s.op.Sign(s.ctx, "ES"+bits, digest)
		if err != nil {
			return nil, err
		}
		half := len(sig) / 2
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1BigInt(new(big.Int).SetBytes(sig[:half]))
			b.AddASN1BigInt(new(big.Int).SetBytes(sig[half:]))
		})
		return b.Bytes()
	}
	return nil, errors.New("vault: unsupported key type")
}
