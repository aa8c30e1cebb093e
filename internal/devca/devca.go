package devca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names inside the directory given to Ensure.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
	CertFile   = "server.pem"
	KeyFile    = "server-key.pem"
)

const (
	caCommonName   = "Keyward Dev CA"
	caYears        = 10
	serverValidity = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour // reissue the server cert this long before it expires
	backdate       = time.Hour           // NotBefore = now - backdate, for clock skew

	keyPerm  fs.FileMode = 0o600
	certPerm fs.FileMode = 0o644
	dirPerm  fs.FileMode = 0o700
)

// Files are the absolute paths of the PEM files Ensure manages.
type Files struct {
	CACert string // CA certificate, 0644; give this to clients as their trust anchor
	CAKey  string // CA private key, 0600
	Cert   string // server certificate (leaf only), 0644
	Key    string // server private key, 0600
}

// CA is the result of Ensure: what a dev server needs to serve TLS and what
// its clients need to trust it.
type CA struct {
	Files Files

	// ServerCert is the certificate to put in tls.Config.Certificates:
	// Certificate holds the leaf and the CA certificate, Leaf is parsed,
	// PrivateKey is the server's *ecdsa.PrivateKey.
	ServerCert tls.Certificate

	// Pool holds the CA certificate alone, for tls.Config.RootCAs of clients.
	Pool *x509.CertPool

	// CACertPEM is the PEM encoding of the CA certificate, as in Files.CACert.
	CACertPEM []byte
}

// Ensure loads the dev CA from dir or creates it, then loads the server
// certificate or issues a new one signed by the CA, and returns both.
//
// dir is created (0700) if needed. The server certificate's subject
// alternative names are exactly dnsNames and ips (duplicates removed, DNS
// names compared case-insensitively); at least one name or address is
// required. An existing server certificate is kept if it was signed by this
// CA, matches its key, has exactly these names and is valid at now for at
// least 30 more days; otherwise it is reissued. The CA is never replaced once
// its certificate exists: if it is damaged, lacks its key, or is within 30
// days of expiry, Ensure returns an error.
//
// now is the current time; devca never reads the clock itself.
func Ensure(dir string, dnsNames []string, ips []net.IP, now time.Time) (*CA, error) {
	if now.IsZero() {
		return nil, errors.New("devca: zero time")
	}
	names, err := newSANs(dnsNames, ips)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("devca: %w", err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("devca: %w", err)
	}
	files := Files{
		CACert: filepath.Join(abs, CACertFile),
		CAKey:  filepath.Join(abs, CAKeyFile),
		Cert:   filepath.Join(abs, CertFile),
		Key:    filepath.Join(abs, KeyFile),
	}

	caCert, caKey, err := loadOrCreateCA(files, now)
	if err != nil {
		return nil, err
	}
	leaf, leafKey, err := loadServer(files, caCert, names, now)
	if err != nil {
		leaf, leafKey, err = issueServer(files, caCert, caKey, names, now)
		if err != nil {
			return nil, err
		}
	}

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &CA{
		Files: files,
		ServerCert: tls.Certificate{
			Certificate: [][]byte{leaf.Raw, caCert.Raw},
			PrivateKey:  leafKey,
			Leaf:        leaf,
		},
		Pool:      pool,
		CACertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}),
	}, nil
}

// loadOrCreateCA returns the CA in files, creating it only when its
// certificate file does not exist.
func loadOrCreateCA(files Files, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(files.CACert)
	if errors.Is(err, fs.ErrNotExist) {
		return createCA(files, now)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("devca: reading CA certificate: %w", err)
	}
	// From here on the CA exists: any problem is an error, never a new CA.
	fail := func(format string, args ...any) (*x509.Certificate, crypto.Signer, error) {
		return nil, nil, fmt.Errorf("devca: CA in %s: %s (the CA is never replaced; remove the directory to start over)",
			filepath.Dir(files.CACert), fmt.Sprintf(format, args...))
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return fail("certificate: %v", err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fail("certificate is not a CA certificate")
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fail("certificate is not self-signed: %v", err)
	}
	if now.Before(cert.NotBefore) {
		return fail("certificate is not valid until %s", cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if !cert.NotAfter.After(now.Add(renewBefore)) {
		return fail("certificate expires %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	key, err := loadKey(files.CAKey, cert)
	if err != nil {
		return fail("key: %v", err)
	}
	return cert, key, nil
}

func createCA(files Files, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(caYears, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: parsing new CA certificate: %w", err)
	}
	// Key first: the certificate's existence is what makes the CA real.
	if err := writeKey(files.CAKey, key); err != nil {
		return nil, nil, err
	}
	if err := writeCert(files.CACert, der); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// loadServer returns the existing server certificate and key if they can be
// kept; any error means "reissue" and is not shown to the caller.
func loadServer(files Files, ca *x509.Certificate, want sans, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(files.Cert)
	if err != nil {
		return nil, nil, err
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(cert.RawIssuer, ca.RawSubject) {
		return nil, nil, errors.New("issued by another CA")
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return nil, nil, err
	}
	if cert.IsCA || !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return nil, nil, errors.New("not a server certificate")
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		return nil, nil, errors.New("not an ECDSA P-256 key")
	}
	if now.Before(cert.NotBefore) || !cert.NotAfter.After(now.Add(renewBefore)) {
		return nil, nil, errors.New("not yet valid or expiring soon")
	}
	if len(cert.EmailAddresses) != 0 || len(cert.URIs) != 0 {
		return nil, nil, errors.New("unexpected subject alternative names")
	}
	have, err := newSANs(cert.DNSNames, cert.IPAddresses)
	if err != nil || !have.equal(want) {
		return nil, nil, errors.New("subject alternative names differ")
	}
	key, err := loadKey(files.Key, cert)
	if err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

func issueServer(files Files, ca *x509.Certificate, caKey crypto.Signer, names sans, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: generating server key: %w", err)
	}
	notAfter := now.Add(serverValidity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	cn := "Keyward dev server"
	if len(names.dns) > 0 {
		cn = names.dns[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              names.dns,
		IPAddresses:           names.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: issuing server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("devca: parsing new server certificate: %w", err)
	}
	if err := writeKey(files.Key, key); err != nil {
		return nil, nil, err
	}
	if err := writeCert(files.Cert, der); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

// sans is a normalised set of subject alternative names: DNS names in lower
// case, IPv4 addresses in 4-byte form, no duplicates, first-seen order kept.
type sans struct {
	dns []string
	ips []net.IP
}

func newSANs(dnsNames []string, ips []net.IP) (sans, error) {
	var s sans
	for _, name := range dnsNames {
		name = strings.ToLower(name)
		if err := checkDNSName(name); err != nil {
			return sans{}, err
		}
		if !slices.Contains(s.dns, name) {
			s.dns = append(s.dns, name)
		}
	}
	for _, ip := range ips {
		norm := ip.To4()
		if norm == nil {
			norm = ip.To16()
		}
		if norm == nil {
			return sans{}, fmt.Errorf("devca: invalid IP address %v", ip)
		}
		if !slices.ContainsFunc(s.ips, norm.Equal) {
			s.ips = append(s.ips, norm)
		}
	}
	if len(s.dns) == 0 && len(s.ips) == 0 {
		return sans{}, errors.New("devca: the server certificate needs at least one DNS name or IP address")
	}
	return s, nil
}

func (s sans) equal(o sans) bool {
	if len(s.dns) != len(o.dns) || len(s.ips) != len(o.ips) {
		return false
	}
	for _, n := range s.dns {
		if !slices.Contains(o.dns, n) {
			return false
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(o.ips, ip.Equal) {
			return false
		}
	}
	return true
}

// checkDNSName accepts a lower-case host name of letters, digits, '-' and
// '_' in non-empty labels, optionally starting with a "*." wildcard label.
func checkDNSName(name string) error {
	bad := func(why string) error { return fmt.Errorf("devca: invalid DNS name %q: %s", name, why) }
	host := strings.TrimPrefix(name, "*.")
	if host == "" || len(name) > 253 {
		return bad("empty or too long")
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return bad("empty or too long label")
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return bad("only letters, digits, '-', '_' and a leading \"*.\" are allowed")
			}
		}
	}
	return nil
}

// randomSerial returns a uniformly random positive serial number of at most
// 128 bits. crypto/rand.Read never fails (it crashes the program instead).
func randomSerial() *big.Int {
	var b [16]byte
	for {
		rand.Read(b[:])
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n
		}
	}
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// loadKey reads a PKCS#8 PEM key, checks that it is the private half of
// cert's public key, and tightens the file to 0600 if others could read it.
func loadKey(path string, cert *x509.Certificate) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PKCS#8 PRIVATE KEY PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("malformed PKCS#8 private key") // no detail: it is key material
	}
	key, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", parsed)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("key does not match certificate")
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, keyPerm); err != nil {
			return nil, err
		}
	}
	return key, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("devca: encoding key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	defer clear(data)
	return writeFileAtomic(path, data, keyPerm)
}

func writeCert(path string, der []byte) error {
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), certPerm)
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory (created 0600, so a key is never briefly readable by others) is
// set to perm, written, synced and renamed over path, and the directory is
// synced so the rename survives a crash.
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("devca: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("devca: writing %s: %w", path, err)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Best effort: not every platform can sync a directory, and the files
	// themselves are already durable.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
