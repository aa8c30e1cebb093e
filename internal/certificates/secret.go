package certificates

import (
	"context"

	"github.com/keyward/keyward/internal/vault"
)

// GetSecretAs returns a secret version; a certificate's secret is
// converted to outContentType (PEM or PKCS #12) when it differs from the
// stored one (AZURE-API.md §1.3). Other secrets come back unchanged.
func (s *Service) GetSecretAs(ctx context.Context, v *vault.Vault, name, version, outContentType string) (*vault.Secret, error) {
	sec, err := s.vaults.GetSecret(ctx, v, name, version)
	if err != nil || outContentType == "" || !sec.Managed || outContentType == sec.ContentType {
		return sec, err
	}
	switch outContentType {
	case vault.ContentTypePEM, vault.ContentTypePKCS12:
	default:
		return nil, badParameter("outContentType must be %s or %s.", vault.ContentTypePEM, vault.ContentTypePKCS12)
	}
	value, err := convertCertSecret(sec.ContentType, outContentType, sec.Value.Reveal())
	if err != nil {
		return nil, err
	}
	sec.Value, sec.ContentType = vault.NewSecretValue(value), outContentType
	return sec, nil
}
