package devca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the fixed "now" of these tests; nothing here reads the wall clock
// either, so the certificates are checked at the times they were made for.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

var (
	devNames = []string{"localhost", "*.vault.localhost"}
	devIPs   = []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback}
)

func mustEnsure(t *testing.T, dir string, names []string, ips []net.IP, now time.Time) *CA {
	t.Helper()
	ca, err := Ensure(dir, names, ips, now)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return ca
}

func TestEnsureCreatesCAAndServerCert(t *testing.T) {
	dir := t.TempDir()
	ca := mustEnsure(t, dir, devNames, devIPs, t0)

	want := Files{
		CACert: filepath.Join(dir, "ca.pem"),
		CAKey:  filepath.Join(dir, "ca-key.pem"),
		Cert:   filepath.Join(dir, "server.pem"),
		Key:    filepath.Join(dir, "server-key.pem"),
	}
	if ca.Files != want {
		t.Fatalf("Files = %+v, want %+v", ca.Files, want)
	}

	// The CA, as a client reading the file would see it.
	caCert := readCert(t, ca.Files.CACert)
	if !bytes.Equal(ca.CACertPEM, mustRead(t, ca.Files.CACert)) {
		t.Error("CACertPEM differs from the CA certificate file")
	}
	if caCert.Subject.CommonName != "Keyward Dev CA" || caCert.Issuer.CommonName != "Keyward Dev CA" {
		t.Errorf("CA subject %q, issuer %q", caCert.Subject, caCert.Issuer)
	}
	if !caCert.BasicConstraintsValid || !caCert.IsCA || caCert.MaxPathLen != 0 || !caCert.MaxPathLenZero {
		t.Errorf("CA basic constraints: valid %v, CA %v, MaxPathLen %d, zero %v",
			caCert.BasicConstraintsValid, caCert.IsCA, caCert.MaxPathLen, caCert.MaxPathLenZero)
	}
	if caCert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA KeyUsage = %b, want CertSign|CRLSign", caCert.KeyUsage)
	}
	if err := caCert.CheckSignatureFrom(caCert); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	checkP256(t, "CA", caCert)
	if !caCert.NotAfter.Equal(t0.AddDate(10, 0, 0)) || caCert.NotBefore.After(t0) {
		t.Errorf("CA validity %s – %s, want ≤ %s – %s", caCert.NotBefore, caCert.NotAfter, t0, t0.AddDate(10, 0, 0))
	}
	if len(caCert.SubjectKeyId) == 0 {
		t.Error("CA has no SubjectKeyId")
	}

	// The server certificate.
	leaf := readCert(t, ca.Files.Cert)
	if !bytes.Equal(leaf.Raw, ca.ServerCert.Leaf.Raw) || !bytes.Equal(leaf.Raw, ca.ServerCert.Certificate[0]) {
		t.Error("ServerCert does not hold the leaf in the file")
	}
	if len(ca.ServerCert.Certificate) != 2 || !bytes.Equal(ca.ServerCert.Certificate[1], caCert.Raw) {
		t.Error("ServerCert chain is not leaf + CA")
	}
	if leaf.IsCA || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("leaf IsCA %v, ExtKeyUsage %v", leaf.IsCA, leaf.ExtKeyUsage)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("leaf KeyUsage = %b, want DigitalSignature", leaf.KeyUsage)
	}
	checkP256(t, "leaf", leaf)
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > 366*24*time.Hour || leaf.NotBefore.After(t0) || !leaf.NotAfter.After(t0.AddDate(0, 11, 0)) {
		t.Errorf("leaf validity %s – %s (%s)", leaf.NotBefore, leaf.NotAfter, d)
	}
	for _, c := range []*x509.Certificate{caCert, leaf} {
		if n := c.SerialNumber.BitLen(); c.SerialNumber.Sign() <= 0 || n > 128 || n < 96 {
			t.Errorf("%s serial has %d bits, want a random positive 128-bit number", c.Subject.CommonName, n)
		}
	}
	if caCert.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("CA and leaf share a serial number")
	}
	checkSANs(t, leaf, devNames, []string{"127.0.0.1", "::1"})
	if len(leaf.IPAddresses) > 0 && len(leaf.IPAddresses[0]) != net.IPv4len {
		t.Errorf("127.0.0.1 encoded as %d bytes, want 4", len(leaf.IPAddresses[0]))
	}
	if !ca.ServerCert.PrivateKey.(*ecdsa.PrivateKey).PublicKey.Equal(leaf.PublicKey) {
		t.Error("ServerCert.PrivateKey does not match the leaf")
	}
	// The key files hold PKCS#8 keys matching their certificates.
	for _, pair := range [][2]string{{ca.Files.CAKey, ca.Files.CACert}, {ca.Files.Key, ca.Files.Cert}} {
		block, _ := pem.Decode(mustRead(t, pair[0]))
		if block == nil || block.Type != "PRIVATE KEY" {
			t.Fatalf("%s: not a PKCS#8 PEM file", pair[0])
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !k.(*ecdsa.PrivateKey).PublicKey.Equal(readCert(t, pair[1]).PublicKey) {
			t.Errorf("%s does not match %s", pair[0], pair[1])
		}
	}

	checkFileModes(t, ca.Files)
	checkNoTempFiles(t, dir)
}

func TestVerifyChain(t *testing.T) {
	ca := mustEnsure(t, t.TempDir(), devNames, devIPs, t0)
	// Build the pool from the file, as a client given ca_file would.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(mustRead(t, ca.Files.CACert)) {
		t.Fatal("CA file did not parse into a pool")
	}
	leaf := readCert(t, ca.Files.Cert)
	verify := func(host string, pool *x509.CertPool, at time.Time) error {
		_, err := leaf.Verify(x509.VerifyOptions{
			DNSName:     host,
			Roots:       pool,
			CurrentTime: at,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		return err
	}
	for _, host := range []string{"localhost", "myvault.vault.localhost", "dev.vault.localhost", "127.0.0.1", "::1", "LOCALHOST"} {
		for name, p := range map[string]*x509.CertPool{"file": pool, "CA.Pool": ca.Pool} {
			if err := verify(host, p, t0); err != nil {
				t.Errorf("Verify(%q) with %s: %v", host, name, err)
			}
		}
	}
	for _, host := range []string{"vault.localhost", "a.b.vault.localhost", "example.com", "myvault.managedhsm.localhost", "10.0.0.1", "::2"} {
		if err := verify(host, ca.Pool, t0); err == nil {
			t.Errorf("Verify(%q) succeeded; the certificate does not name it", host)
		}
	}
	if err := verify("localhost", ca.Pool, t0.AddDate(1, 0, 1)); err == nil {
		t.Error("leaf still valid after a year and a day")
	}
	if err := verify("localhost", x509.NewCertPool(), t0); err == nil {
		t.Error("leaf verified without the dev CA")
	}
}

func TestEnsureReusesCAAndServerCert(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir, devNames, devIPs, t0)
	before := snapshot(t, first.Files)

	// Same set of names in another order, case and with duplicates, a day
	// and then 300 days later (still more than 30 days before expiry).
	names := []string{"*.VAULT.localhost", "localhost", "LocalHost"}
	ips := []net.IP{net.IPv6loopback, net.ParseIP("::ffff:127.0.0.1"), net.IPv4(127, 0, 0, 1)}
	for _, later := range []time.Duration{24 * time.Hour, 300 * 24 * time.Hour} {
		again := mustEnsure(t, dir, names, ips, t0.Add(later))
		if !bytes.Equal(again.ServerCert.Leaf.Raw, first.ServerCert.Leaf.Raw) {
			t.Errorf("after %s: server certificate was reissued", later)
		}
		if !bytes.Equal(again.CACertPEM, first.CACertPEM) {
			t.Errorf("after %s: CA changed", later)
		}
		if !again.ServerCert.PrivateKey.(*ecdsa.PrivateKey).Equal(first.ServerCert.PrivateKey) {
			t.Errorf("after %s: server key changed", later)
		}
		if after := snapshot(t, again.Files); !after.equal(before) {
			t.Errorf("after %s: files were rewritten", later)
		}
	}
}

func TestEnsureReissuesOnSANChange(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir, devNames, devIPs, t0)
	for _, tc := range []struct {
		names []string
		ips   []net.IP
	}{
		{[]string{"localhost", "*.vault.localhost", "*.managedhsm.localhost"}, devIPs}, // name added
		{[]string{"localhost"}, devIPs},                                          // name removed
		{devNames, []net.IP{net.ParseIP("127.0.0.1")}},                           // IP removed
		{devNames, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("192.0.2.7")}}, // IP swapped
		{nil, []net.IP{net.ParseIP("127.0.0.1")}},                                // IP only
	} {
		prev := readCert(t, first.Files.Cert)
		ca := mustEnsure(t, dir, tc.names, tc.ips, t0.Add(time.Hour))
		if !bytes.Equal(ca.CACertPEM, first.CACertPEM) {
			t.Fatalf("%v %v: CA replaced", tc.names, tc.ips)
		}
		leaf := readCert(t, ca.Files.Cert)
		if bytes.Equal(leaf.Raw, prev.Raw) || leaf.SerialNumber.Cmp(prev.SerialNumber) == 0 {
			t.Errorf("%v %v: server certificate not reissued", tc.names, tc.ips)
		}
		if !bytes.Equal(leaf.Raw, ca.ServerCert.Leaf.Raw) {
			t.Errorf("%v %v: returned leaf is not the one on disk", tc.names, tc.ips)
		}
		var ipStrs []string
		for _, ip := range tc.ips {
			ipStrs = append(ipStrs, ip.String())
		}
		checkSANs(t, leaf, tc.names, ipStrs)
		checkFileModes(t, ca.Files)
		checkNoTempFiles(t, dir)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: first.Pool, CurrentTime: t0.Add(time.Hour)}); err != nil {
			t.Errorf("reissued leaf does not chain to the original CA: %v", err)
		}
	}
}

func TestEnsureRenewsBeforeExpiry(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir, devNames, devIPs, t0)
	notAfter := first.ServerCert.Leaf.NotAfter

	// 31 days left: kept.
	kept := mustEnsure(t, dir, devNames, devIPs, notAfter.Add(-31*24*time.Hour))
	if !bytes.Equal(kept.ServerCert.Leaf.Raw, first.ServerCert.Leaf.Raw) {
		t.Error("reissued with 31 days left")
	}
	// 29 days left: reissued under the same CA, valid from then on.
	now := notAfter.Add(-29 * 24 * time.Hour)
	renewed := mustEnsure(t, dir, devNames, devIPs, now)
	if bytes.Equal(renewed.ServerCert.Leaf.Raw, first.ServerCert.Leaf.Raw) {
		t.Fatal("not reissued with 29 days left")
	}
	if !bytes.Equal(renewed.CACertPEM, first.CACertPEM) {
		t.Fatal("CA replaced on renewal")
	}
	if !renewed.ServerCert.Leaf.NotAfter.After(now.AddDate(0, 11, 0)) {
		t.Errorf("renewed leaf expires %s", renewed.ServerCert.Leaf.NotAfter)
	}
	// A clock set back before the leaf's NotBefore also gets a fresh one.
	back := mustEnsure(t, dir, devNames, devIPs, now.Add(-48*time.Hour))
	if bytes.Equal(back.ServerCert.Leaf.Raw, renewed.ServerCert.Leaf.Raw) {
		t.Error("kept a leaf that is not yet valid")
	}
}

func TestTLSHandshake(t *testing.T) {
	ca := mustEnsure(t, t.TempDir(), devNames, devIPs, t0)
	clock := func() time.Time { return t0.Add(time.Minute) }
	serverConfig := &tls.Config{Certificates: []tls.Certificate{ca.ServerCert}, Time: clock, MinVersion: tls.VersionTLS12}
	for _, network := range []string{"pipe", "tcp"} {
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(network+"/"+tls.VersionName(version), func(t *testing.T) {
				state, err := handshake(t, network, serverConfig, &tls.Config{
					RootCAs:    ca.Pool,
					ServerName: "dev.vault.localhost",
					Time:       clock,
					MinVersion: tls.VersionTLS12,
					MaxVersion: version,
				})
				if err != nil {
					t.Fatalf("handshake: %v", err)
				}
				if state.Version != version {
					t.Errorf("negotiated %s", tls.VersionName(state.Version))
				}
				if len(state.VerifiedChains) == 0 || !bytes.Equal(state.PeerCertificates[0].Raw, ca.ServerCert.Leaf.Raw) {
					t.Error("client did not verify the dev server certificate")
				}
			})
		}
	}
	for name, client := range map[string]*tls.Config{
		"wrong name": {RootCAs: ca.Pool, ServerName: "evil.example", Time: clock, MinVersion: tls.VersionTLS12},
		"other CA": {RootCAs: mustEnsure(t, t.TempDir(), devNames, devIPs, t0).Pool,
			ServerName: "dev.vault.localhost", Time: clock, MinVersion: tls.VersionTLS12},
		"expired": {RootCAs: ca.Pool, ServerName: "dev.vault.localhost", MinVersion: tls.VersionTLS12,
			Time: func() time.Time { return t0.AddDate(2, 0, 0) }},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := handshake(t, "pipe", serverConfig, client)
			var verr *tls.CertificateVerificationError
			if !errors.As(err, &verr) {
				t.Fatalf("handshake error = %v, want a certificate verification failure", err)
			}
		})
	}
}

// handshake runs a TLS handshake over a connection pair (see connPair), has the server send
// a few bytes that the client reads (which also drains TLS 1.3 session
// tickets), and returns the client's view of the connection.
func handshake(t *testing.T, network string, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	sc, cc := connPair(t, network)
	defer sc.Close()
	defer cc.Close()
	deadline := time.Now().Add(10 * time.Second) // test timeout only; certificates use t0
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)

	done := make(chan error, 1)
	go func() {
		srv := tls.Server(sc, server)
		err := srv.Handshake()
		if err == nil {
			_, err = srv.Write([]byte("ok"))
		}
		if err != nil {
			sc.Close() // unblock the client
		}
		done <- err
	}()
	cli := tls.Client(cc, client)
	err := cli.Handshake()
	if err == nil {
		buf := make([]byte, 2)
		if _, err = io.ReadFull(cli, buf); err == nil && string(buf) != "ok" {
			err = fmt.Errorf("read %q from the server", buf)
		}
	}
	if err != nil {
		cc.Close() // unblock the server
	}
	if serr := <-done; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		return tls.ConnectionState{}, err
	}
	return cli.ConnectionState(), nil
}

// connPair returns two connected ends: an in-memory net.Pipe for "pipe", a
// real TCP connection over the loopback interface for "tcp".
func connPair(t *testing.T, network string) (server, client net.Conn) {
	t.Helper()
	if network == "pipe" {
		return net.Pipe()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if server = <-accepted; server == nil {
		client.Close()
		t.Fatal("accept failed")
	}
	return server, client
}

func TestEnsureNeverReplacesCA(t *testing.T) {
	setup := func(t *testing.T) (string, *CA) {
		dir := t.TempDir()
		return dir, mustEnsure(t, dir, devNames, devIPs, t0)
	}
	t.Run("damaged certificate", func(t *testing.T) {
		dir, ca := setup(t)
		writeFile(t, ca.Files.CACert, []byte("not a certificate"), 0o644)
		if _, err := Ensure(dir, devNames, devIPs, t0); err == nil {
			t.Fatal("Ensure succeeded with a damaged CA certificate")
		}
		if got := mustRead(t, ca.Files.CACert); string(got) != "not a certificate" {
			t.Error("damaged CA certificate was overwritten")
		}
	})
	t.Run("key missing", func(t *testing.T) {
		dir, ca := setup(t)
		if err := os.Remove(ca.Files.CAKey); err != nil {
			t.Fatal(err)
		}
		if _, err := Ensure(dir, devNames, devIPs, t0); err == nil {
			t.Fatal("Ensure succeeded without the CA key")
		}
		if !bytes.Equal(mustRead(t, ca.Files.CACert), ca.CACertPEM) {
			t.Error("CA certificate changed")
		}
	})
	t.Run("key of another CA", func(t *testing.T) {
		dir, ca := setup(t)
		other := mustEnsure(t, t.TempDir(), devNames, devIPs, t0)
		writeFile(t, ca.Files.CAKey, mustRead(t, other.Files.CAKey), 0o600)
		if _, err := Ensure(dir, devNames, devIPs, t0); err == nil {
			t.Fatal("Ensure succeeded with a CA key that does not match the certificate")
		}
	})
	t.Run("not a CA", func(t *testing.T) {
		dir, ca := setup(t)
		writeFile(t, ca.Files.CACert, mustRead(t, ca.Files.Cert), 0o644)
		writeFile(t, ca.Files.CAKey, mustRead(t, ca.Files.Key), 0o600)
		if _, err := Ensure(dir, devNames, devIPs, t0); err == nil {
			t.Fatal("Ensure accepted a leaf certificate as the CA")
		}
	})
	t.Run("expiring", func(t *testing.T) {
		dir, ca := setup(t)
		if _, err := Ensure(dir, devNames, devIPs, t0.AddDate(10, 0, -29)); err == nil {
			t.Fatal("Ensure succeeded with a CA 29 days from expiry")
		}
		if !bytes.Equal(mustRead(t, ca.Files.CACert), ca.CACertPEM) {
			t.Error("CA certificate changed")
		}
		// Shortly before that, leaves are capped at the CA's expiry.
		late := mustEnsure(t, dir, devNames, devIPs, t0.AddDate(9, 10, 0))
		if late.ServerCert.Leaf.NotAfter.After(readCert(t, ca.Files.CACert).NotAfter) {
			t.Error("leaf outlives its CA")
		}
	})
	t.Run("key without certificate is an unfinished CA", func(t *testing.T) {
		dir, ca := setup(t)
		if err := os.Remove(ca.Files.CACert); err != nil {
			t.Fatal(err)
		}
		again := mustEnsure(t, dir, devNames, devIPs, t0)
		if bytes.Equal(again.CACertPEM, ca.CACertPEM) {
			t.Fatal("expected a new CA")
		}
		if bytes.Equal(again.ServerCert.Leaf.Raw, ca.ServerCert.Leaf.Raw) {
			t.Error("kept a leaf signed by the old CA")
		}
	})
}

func TestEnsureRepairsServerFiles(t *testing.T) {
	for name, damage := range map[string]func(t *testing.T, f Files){
		"cert missing":   func(t *testing.T, f Files) { os.Remove(f.Cert) },
		"key missing":    func(t *testing.T, f Files) { os.Remove(f.Key) },
		"cert garbage":   func(t *testing.T, f Files) { writeFile(t, f.Cert, []byte("garbage"), 0o644) },
		"key garbage":    func(t *testing.T, f Files) { writeFile(t, f.Key, []byte("garbage"), 0o600) },
		"key mismatched": func(t *testing.T, f Files) { writeFile(t, f.Key, mustRead(t, f.CAKey), 0o600) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustEnsure(t, dir, devNames, devIPs, t0)
			damage(t, first.Files)
			again := mustEnsure(t, dir, devNames, devIPs, t0)
			if !bytes.Equal(again.CACertPEM, first.CACertPEM) {
				t.Fatal("CA replaced")
			}
			if bytes.Equal(again.ServerCert.Leaf.Raw, first.ServerCert.Leaf.Raw) {
				t.Fatal("damaged server certificate not reissued")
			}
			if _, err := tls.LoadX509KeyPair(again.Files.Cert, again.Files.Key); err != nil {
				t.Fatalf("server files after repair: %v", err)
			}
			checkFileModes(t, again.Files)
		})
	}
}

func TestEnsureTightensKeyPermissions(t *testing.T) {
	dir := t.TempDir()
	ca := mustEnsure(t, dir, devNames, devIPs, t0)
	for _, p := range []string{ca.Files.CAKey, ca.Files.Key} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustEnsure(t, dir, devNames, devIPs, t0)
	checkFileModes(t, ca.Files)
}

func TestEnsureRelativeDir(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	ca := mustEnsure(t, filepath.Join("data", "tls"), devNames, devIPs, t0)
	for _, p := range []string{ca.Files.CACert, ca.Files.CAKey, ca.Files.Cert, ca.Files.Key} {
		if !filepath.IsAbs(p) || !strings.HasPrefix(p, filepath.Join(base, "data", "tls")) {
			t.Errorf("path %q is not absolute under %s", p, base)
		}
	}
	info, err := os.Stat(filepath.Join(base, "data", "tls"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("created directory has mode %o, want 0700", perm)
	}
}

func TestEnsureRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		names []string
		ips   []net.IP
		now   time.Time
	}{
		"no names":       {nil, nil, t0},
		"empty name":     {[]string{""}, nil, t0},
		"space":          {[]string{"my vault.localhost"}, nil, t0},
		"empty label":    {[]string{"a..localhost"}, nil, t0},
		"trailing dot":   {[]string{"localhost."}, nil, t0},
		"inner wildcard": {[]string{"a.*.localhost"}, nil, t0},
		"bare wildcard":  {[]string{"*"}, nil, t0},
		"non-ASCII":      {[]string{"tést.localhost"}, nil, t0},
		"long label":     {[]string{strings.Repeat("a", 64) + ".localhost"}, nil, t0},
		"nil IP":         {devNames, []net.IP{nil}, t0},
		"bad IP length":  {devNames, []net.IP{{1, 2, 3}}, t0},
		"zero time":      {devNames, devIPs, time.Time{}},
	} {
		if _, err := Ensure(dir, tc.names, tc.ips, tc.now); err == nil {
			t.Errorf("%s: Ensure succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad input left %d files behind", len(entries))
	}
}

// TestNoWallClock enforces STYLE.md §4: the package never calls time.Now
// (or time.Since/Until, which read it).
func TestNoWallClock(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" &&
					(sel.Sel.Name == "Now" || sel.Sel.Name == "Since" || sel.Sel.Name == "Until") {
					t.Errorf("%s calls time.%s; take the time as a parameter", name, sel.Sel.Name)
				}
			}
			return true
		})
	}
}

// --- helpers ---

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte, perm fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	block, rest := pem.Decode(mustRead(t, path))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s: no CERTIFICATE block", path)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("%s: trailing data after the certificate", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkP256(t *testing.T, what string, c *x509.Certificate) {
	t.Helper()
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() || c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("%s key %T, signature %s; want ECDSA P-256 with SHA-256", what, c.PublicKey, c.SignatureAlgorithm)
	}
}

func checkSANs(t *testing.T, c *x509.Certificate, names []string, ips []string) {
	t.Helper()
	var gotIPs []string
	for _, ip := range c.IPAddresses {
		gotIPs = append(gotIPs, ip.String())
	}
	if !sameSet(c.DNSNames, names) || !sameSet(gotIPs, ips) || len(c.EmailAddresses)+len(c.URIs) != 0 {
		t.Errorf("SANs: DNS %q IP %q, want exactly DNS %q IP %q", c.DNSNames, gotIPs, names, ips)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func checkFileModes(t *testing.T, f Files) {
	t.Helper()
	for path, want := range map[string]fs.FileMode{f.CACert: 0o644, f.CAKey: 0o600, f.Cert: 0o644, f.Key: 0o600} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode(); got != want {
			t.Errorf("%s has mode %v, want %v", filepath.Base(path), got, want)
		}
	}
}

func checkNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains([]string{CACertFile, CAKeyFile, CertFile, KeyFile}, e.Name()) {
			t.Errorf("unexpected file %s left in %s", e.Name(), dir)
		}
	}
}

type fileSnapshot map[string]struct {
	data    []byte
	modTime time.Time
}

func snapshot(t *testing.T, f Files) fileSnapshot {
	t.Helper()
	s := fileSnapshot{}
	for _, p := range []string{f.CACert, f.CAKey, f.Cert, f.Key} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		s[p] = struct {
			data    []byte
			modTime time.Time
		}{mustRead(t, p), info.ModTime()}
	}
	return s
}

func (s fileSnapshot) equal(o fileSnapshot) bool {
	for p, v := range s {
		w, ok := o[p]
		if !ok || !bytes.Equal(v.data, w.data) || !v.modTime.Equal(w.modTime) {
			return false
		}
	}
	return len(s) == len(o)
}
