package server

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// TLSConfig restricts the protocol versions and TLS 1.2 cipher suites the
// listeners offer (docs/CONFIG.md, [tls]). The zero value is the default:
// TLS 1.2 and 1.3, and on TLS 1.2 only AEAD suites with forward secrecy
// (ECDHE with AES-GCM or ChaCha20-Poly1305). TLS 1.3 suites are all AEAD
// with forward secrecy and Go does not make them configurable.
type TLSConfig struct {
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string
	// CipherSuites names the TLS 1.2 suites, by their IANA names as Go
	// spells them (tls.CipherSuiteName), in no particular order: Go orders
	// them itself. Empty: every suite of DefaultTLSSuites. Only those may be
	// named; CBC, RSA key exchange and SHA-1 MACs cannot be turned back on.
	CipherSuites []string
}

// DefaultTLSSuites are the TLS 1.2 suites offered by default and the only
// ones that may be configured: ECDHE key exchange (forward secrecy) and an
// AEAD cipher.
var DefaultTLSSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// DefaultTLSCurves are the key exchanges every listener offers
// (docs/POST-QUANTUM.md): Go 1.26's default set, written out so that what
// Keyward offers does not change with a Go release unnoticed. Go ignores
// the order and prefers X25519MLKEM768 (ML-KEM-768 + X25519) whenever the
// client offers it; TLS 1.2 clients get X25519 or a NIST curve. In
// fips140=only mode Go itself drops X25519 and keeps the hybrids and the
// NIST curves. GODEBUG=tlsmlkem=0 still removes the hybrids (crypto/tls
// filters its default list by this one); Start logs a warning then.
var DefaultTLSCurves = []tls.CurveID{
	tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
	tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521,
}

// pqTLSDisabled reports whether GODEBUG (its last tlsmlkem setting)
// turns off crypto/tls's post-quantum key exchanges.
func pqTLSDisabled(godebug string) bool {
	off := false
	for _, kv := range strings.Split(godebug, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "tlsmlkem" {
			off = v == "0"
		}
	}
	return off
}

// validate checks c without changing it.
func (c TLSConfig) validate() error {
	_, err := c.tlsConfig()
	return err
}

// tlsConfig is the listener's tls.Config without certificates.
func (c TLSConfig) tlsConfig() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: DefaultTLSSuites,
		CurvePreferences: append([]tls.CurveID(nil), DefaultTLSCurves...)}
	switch c.MinVersion {
	case "", "1.2":
	case "1.3":
		t.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls min_version %q: want 1.2 or 1.3", c.MinVersion)
	}
	if len(c.CipherSuites) == 0 {
		t.CipherSuites = append([]uint16(nil), DefaultTLSSuites...)
		return t, nil
	}
	allowed := map[string]uint16{}
	for _, id := range DefaultTLSSuites {
		allowed[tls.CipherSuiteName(id)] = id
	}
	t.CipherSuites = nil
	for _, name := range c.CipherSuites {
		id, ok := allowed[strings.ToUpper(strings.TrimSpace(name))]
		if !ok {
			return nil, fmt.Errorf("tls cipher suite %q: not an ECDHE AEAD suite; allowed: %s", name, strings.Join(suiteNames(DefaultTLSSuites), ", "))
		}
		t.CipherSuites = append(t.CipherSuites, id)
	}
	return t, nil
}

func suiteNames(ids []uint16) []string {
	var s []string
	for _, id := range ids {
		s = append(s, tls.CipherSuiteName(id))
	}
	return s
}
