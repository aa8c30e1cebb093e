package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestAttackTLSSuites (issue 12.4): on TLS 1.2 the listener offers only
// ECDHE key exchange with an AEAD cipher. A client offering only RSA key
// exchange or CBC with SHA-1 MACs (OpenSSL's AES128-SHA, AES256-SHA,
// ECDHE-RSA-AES128-SHA) fails the handshake; ECDHE-GCM, ECDHE-ChaCha20 and
// TLS 1.3 succeed. With [tls] min_version = "1.3", TLS 1.2 fails.
func TestAttackTLSSuites(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	pool := caPool(t, e)
	cases := []struct {
		name   string
		max    uint16
		suites []uint16
		ok     bool
	}{
		{"AES128-SHA", tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, false},
		{"AES256-SHA", tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_256_CBC_SHA}, false},
		{"AES128-GCM-SHA256 (RSA key exchange)", tls.VersionTLS12, []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, false},
		{"ECDHE-RSA-AES128-SHA", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}, false},
		{"ECDHE-RSA-AES256-SHA", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, false},
		{"ECDHE-AES128-SHA256", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}, false},
		{"ECDHE-AES128-GCM", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"ECDHE-CHACHA20-POLY1305", tls.VersionTLS12, []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS 1.3", tls.VersionTLS13, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := handshake(e.Server.Addr(), pool, c.max, c.suites)
			if c.ok && err != nil {
				t.Fatalf("handshake failed: %v", err)
			}
			if !c.ok && err == nil {
				t.Fatalf("handshake succeeded with %s", tls.CipherSuiteName(st.CipherSuite))
			}
		})
	}

	t.Run("min_version=1.3", func(t *testing.T) {
		e13 := kwtest.Start(t, kwtest.Options{TLS: server.TLSConfig{MinVersion: "1.3"}})
		if _, err := handshake(e13.Server.Addr(), caPool(t, e13), tls.VersionTLS12, nil); err == nil {
			t.Fatal("TLS 1.2 accepted with min_version 1.3")
		}
		if _, err := handshake(e13.Server.Addr(), caPool(t, e13), tls.VersionTLS13, nil); err != nil {
			t.Fatalf("TLS 1.3: %v", err)
		}
	})
}

func caPool(t *testing.T, e *kwtest.Env) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(e.Server.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// handshake connects to addr as a client offering only suites (on TLS 1.2)
// and at most version max.
func handshake(addr string, pool *x509.CertPool, max uint16, suites []uint16) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{
		RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS10, MaxVersion: max, CipherSuites: suites,
	})
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.ConnectionState(), nil
}
