package server

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyward/keyward/internal/skr"
	"github.com/keyward/keyward/internal/vault"
)

// ReleaseConfig configures secure key release (docs/HSM.md, "Secure key
// release"): the attestation authorities whose tokens a release request
// may carry. Keyward never fetches their keys: each is pinned by a JWKS
// file.
type ReleaseConfig struct {
	Authorities []ReleaseAuthority
}

// ReleaseAuthority is one trusted attestation authority.
type ReleaseAuthority struct {
	Issuer   string // the tokens' iss, and the policies' authority
	JWKSFile string // its signing keys ({"keys":[…]})
}

// DevAttestationIssuer is the issuer of the dev server's own attestation
// authority.
const DevAttestationIssuer = "https://attestation.localhost"

// DevAttestation locates the dev server's attestation authority (dev.json
// "attestation"): `keyward attestation-token` mints tokens with its key.
type DevAttestation struct {
	Issuer   string `json:"issuer"`
	JWKSFile string `json:"jwks_file"`
	KeyFile  string `json:"key_file"`
}

// releaseDeps builds the release configuration: the configured
// authorities, plus in dev mode a local authority under DataDir/attestation.
func (s *Server) releaseDeps() (*vault.Release, error) {
	var auths []skr.Authority
	for _, a := range s.cfg.Release.Authorities {
		if a.Issuer == "" || a.JWKSFile == "" {
			return nil, fmt.Errorf("release: an authority needs issuer and jwks_file")
		}
		b, err := os.ReadFile(a.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("release: authority %s: %w", a.Issuer, err)
		}
		set, err := skr.ParseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("release: authority %s: %w", a.Issuer, err)
		}
		auths = append(auths, skr.Authority{Issuer: a.Issuer, Keys: set})
	}
	if s.cfg.Dev {
		dir := filepath.Join(s.cfg.DataDir, "attestation")
		la, err := skr.LoadOrCreateLocalAuthority(dir, DevAttestationIssuer)
		if err != nil {
			return nil, fmt.Errorf("dev attestation authority: %w", err)
		}
		auths = append(auths, la.Authority())
		s.devAttestation = &DevAttestation{Issuer: la.Issuer, JWKSFile: filepath.Join(dir, skr.LocalJWKSFile),
			KeyFile: filepath.Join(dir, skr.LocalKeyFile)}
	}
	return &vault.Release{Verifier: skr.NewVerifier(auths), SignerName: "Keyward secure key release"}, nil
}
