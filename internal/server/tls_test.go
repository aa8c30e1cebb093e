package server

import (
	"crypto/tls"
	"slices"
	"testing"
)

func TestTLSConfig(t *testing.T) {
	c, err := TLSConfig{}.tlsConfig()
	if err != nil || c.MinVersion != tls.VersionTLS12 || !slices.Equal(c.CipherSuites, DefaultTLSSuites) {
		t.Fatalf("default: %v %+v", err, c)
	}
	c, err = TLSConfig{MinVersion: "1.3", CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}}.tlsConfig()
	if err != nil || c.MinVersion != tls.VersionTLS13 || !slices.Equal(c.CipherSuites, []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384}) {
		t.Fatalf("configured: %v %+v", err, c)
	}
	for _, bad := range []TLSConfig{
		{MinVersion: "1.1"},
		{CipherSuites: []string{"TLS_RSA_WITH_AES_128_CBC_SHA"}},
		{CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}},
		{CipherSuites: []string{"TLS_RSA_WITH_AES_128_GCM_SHA256"}},
		{CipherSuites: []string{"nonsense"}},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestTLSCurves: every listener configuration offers X25519MLKEM768 (and
// the other hybrids), whatever min_version and suites say.
func TestTLSCurves(t *testing.T) {
	for _, cfg := range []TLSConfig{{}, {MinVersion: "1.3"}, {CipherSuites: []string{"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}}} {
		c, err := cfg.tlsConfig()
		if err != nil || !slices.Contains(c.CurvePreferences, tls.X25519MLKEM768) || !slices.Equal(c.CurvePreferences, DefaultTLSCurves) {
			t.Errorf("%+v: curves %v, %v", cfg, c.CurvePreferences, err)
		}
	}
	for godebug, off := range map[string]bool{"": false, "tlsmlkem=0": true, "x=1, tlsmlkem=0": true,
		"tlsmlkem=0,tlsmlkem=1": false, "tlsmlkem=1": false, "tlssecpmlkem=0": false} {
		if got := pqTLSDisabled(godebug); got != off {
			t.Errorf("pqTLSDisabled(%q) = %v", godebug, got)
		}
	}
}
