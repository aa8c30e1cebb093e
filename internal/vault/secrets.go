package vault

import (
	"context"
	"fmt"
	"io"

	"github.com/keyward/keyward/internal/barrier"
)

// MaxSecretValue is Azure's limit on a secret value, in bytes.
const MaxSecretValue = 25 * 1024

// SecretValue holds a secret's value. It prints as [REDACTED] with every
// fmt verb and refuses to be marshalled to JSON, so it cannot reach a log by
// accident; Reveal is the one door to the bytes.
type SecretValue struct{ b []byte }

// NewSecretValue wraps b (not copied).
func NewSecretValue(b []byte) SecretValue { return SecretValue{b: b} }

// Reveal returns the value. Only the wire encoder calls it.
func (s SecretValue) Reveal() []byte { return s.b }

// Format implements fmt.Formatter.
func (SecretValue) Format(f fmt.State, _ rune) { io.WriteString(f, "[REDACTED]") }

// MarshalJSON refuses: a secret value is put on the wire explicitly.
func (SecretValue) MarshalJSON() ([]byte, error) {
	return nil, fmt.Errorf("vault: refusing to marshal a secret value")
}

// secretPayload is what a secret version stores (sealed by the barrier).
type secretPayload struct {
	Value       []byte `json:"value"`
	ContentType string `json:"contentType,omitempty"`
	// Kid is the backing key of a certificate's secret.
	Kid string `json:"kid,omitempty"`
}

// Secret is one secret version as the domain returns it.
type Secret struct {
	Name        string
	Version     string
	Value       SecretValue // empty in listings
	ContentType string
	Attributes  Attributes
	Tags        map[string]string
	Managed     bool
	Kid         string
	Deleted     *DeletedInfo
}

func secretFrom(rec *nameRecord, ver *Version[secretPayload], withValue bool) *Secret {
	s := &Secret{
		Name:        rec.Name,
		Version:     ver.Version,
		ContentType: ver.Payload.ContentType,
		Attributes:  ver.Attributes,
		Tags:        ver.Tags,
		Managed:     rec.Managed,
		Kid:         ver.Payload.Kid,
	}
	if withValue {
		s.Value = NewSecretValue(ver.Payload.Value)
	}
	return s
}

// SetSecretParams is a SetSecret request.
type SetSecretParams struct {
	Name        string
	Value       SecretValue
	ContentType string
	Attributes  *AttributesPatch
	Tags        map[string]string
}

// SetSecret stores a new version of a secret.
func (s *Service) SetSecret(ctx context.Context, v *Vault, p SetSecretParams) (*Secret, error) {
	if err := checkName(Secrets, p.Name); err != nil {
		return nil, err
	}
	if len(p.Value.b) > MaxSecretValue {
		return nil, badParameter("Secret value is too large: the maximum size is %d bytes.", MaxSecretValue)
	}
	if err := checkTags(p.Tags); err != nil {
		return nil, err
	}
	if err := checkAttributes(p.Attributes); err != nil {
		return nil, err
	}
	now := s.clock.Now().Unix()
	ver := &Version[secretPayload]{
		Version:    NewVersion(),
		Attributes: Attributes{Enabled: true, Created: now, Updated: now},
		Tags:       p.Tags,
		Payload:    secretPayload{Value: p.Value.b, ContentType: p.ContentType},
	}
	ver.Attributes.apply(p.Attributes)
	ver.Attributes.Exportable = nil
	var rec *nameRecord
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		var err error
		rec, err = addVersion(tx, s.objs(v, Secrets), p.Name, ver, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return secretFrom(rec, ver, true), nil
}

// GetSecret returns a secret version with its value. A disabled version is
// refused (403 SecretDisabled), and so is one outside its nbf/exp window.
func (s *Service) GetSecret(ctx context.Context, v *Vault, name, version string) (*Secret, error) {
	if err := checkName(Secrets, name); err != nil {
		return nil, err
	}
	var sec *Secret
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		rec, ver, err := getVersionShared[secretPayload](tx, s.objs(v, Secrets), name, version, false)
		if err != nil {
			return err
		}
		sec = secretFrom(rec, ver, true)
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	switch {
	case !sec.Attributes.Enabled:
		return nil, &Error{Kind: Forbidden, Type: Secrets, Name: name, Inner: "SecretDisabled"}
	case sec.Attributes.NotYetValid(now):
		return nil, &Error{Kind: Forbidden, Type: Secrets, Name: name, Inner: "SecretNotYetValid"}
	case sec.Attributes.Expired(now):
		return nil, &Error{Kind: Forbidden, Type: Secrets, Name: name, Inner: "SecretExpired"}
	}
	return sec, nil
}

// UpdateSecretParams is an UpdateSecretProperties request.
type UpdateSecretParams struct {
	Name, Version string
	ContentType   *string
	Attributes    *AttributesPatch
	Tags          map[string]string // nil leaves tags unchanged
}

// UpdateSecret changes the attributes, content type or tags of a version.
func (s *Service) UpdateSecret(ctx context.Context, v *Vault, p UpdateSecretParams) (*Secret, error) {
	if err := checkRequest(checkName(Secrets, p.Name), p.Tags, p.Attributes); err != nil {
		return nil, err
	}
	var sec *Secret
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		o := s.objs(v, Secrets)
		rec, ver, err := getVersion[secretPayload](tx, o, p.Name, p.Version)
		if err != nil {
			return err
		}
		if rec.Managed {
			return &Error{Kind: Forbidden, Type: Secrets, Name: p.Name, Reason: ReasonManagedUpdate}
		}
		ver.Attributes.apply(p.Attributes)
		ver.Attributes.Exportable = nil
		if err := checkAttributes(&AttributesPatch{NotBefore: ver.Attributes.NotBefore, Expires: ver.Attributes.Expires}); err != nil {
			return err
		}
		if p.ContentType != nil {
			ver.Payload.ContentType = *p.ContentType
		}
		if p.Tags != nil {
			ver.Tags = p.Tags
		}
		ver.Attributes.Updated = s.clock.Now().Unix()
		if err := putVersion(tx, o, p.Name, ver); err != nil {
			return err
		}
		sec = secretFrom(rec, ver, false)
		return nil
	})
	return sec, err
}

// Page is one page of a listing. Next is the name (or version) to continue
// after; empty on the last page.
type Page[T any] struct {
	Items []T
	Next  string
}

// ListSecrets lists live secrets (latest version's properties, no values).
func (s *Service) ListSecrets(ctx context.Context, v *Vault, after string, limit int) (*Page[*Secret], error) {
	return listPage(ctx, s, v, Secrets, after, limit, secretItem)
}

// ListSecretVersions lists the versions of a secret.
func (s *Service) ListSecretVersions(ctx context.Context, v *Vault, name, after string, limit int) (*Page[*Secret], error) {
	return versionsPage(ctx, s, v, Secrets, name, after, limit, secretItem)
}

// DeleteSecret soft-deletes a secret and all its versions.
func (s *Service) DeleteSecret(ctx context.Context, v *Vault, name string) (*Secret, error) {
	return deleteObject(ctx, s, v, Secrets, name, secretItem, nil)
}

// GetDeletedSecret returns a soft-deleted secret's latest properties.
func (s *Service) GetDeletedSecret(ctx context.Context, v *Vault, name string) (*Secret, error) {
	return getDeletedObject(ctx, s, v, Secrets, name, secretItem, nil)
}

// ListDeletedSecrets pages through soft-deleted secrets.
func (s *Service) ListDeletedSecrets(ctx context.Context, v *Vault, after string, limit int) (*Page[*Secret], error) {
	return listDeletedPage(ctx, s, v, Secrets, after, limit, secretItem)
}

// RecoverSecret undoes a soft delete.
func (s *Service) RecoverSecret(ctx context.Context, v *Vault, name string) (*Secret, error) {
	return recoverObject(ctx, s, v, Secrets, name, secretItem, nil)
}

// secretItem is a secret's properties without its value.
func secretItem(rec *nameRecord, ver *Version[secretPayload], del *DeletedInfo) *Secret {
	sec := secretFrom(rec, ver, false)
	sec.Deleted = del
	return sec
}

// PurgeSecret removes a soft-deleted secret for good. A purge-protected
// vault refuses until the retention period has passed.
func (s *Service) PurgeSecret(ctx context.Context, v *Vault, name string) error {
	return purgeObject(ctx, s, v, Secrets, name, nil)
}

// BackupSecret returns an encrypted, integrity-protected blob holding every
// version of a secret. It restores only into a vault of the same tenant.
func (s *Service) BackupSecret(ctx context.Context, v *Vault, name string) ([]byte, error) {
	if err := checkName(Secrets, name); err != nil {
		return nil, err
	}
	var b *backup[secretPayload]
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		b, err = backupOf[secretPayload](tx, s.objs(v, Secrets), name, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.sealBackup(ctx, v, Secrets, b)
}

// RestoreSecret restores a backup blob into v. The name must be free.
func (s *Service) RestoreSecret(ctx context.Context, v *Vault, blob []byte) (*Secret, error) {
	var b backup[secretPayload]
	if err := s.openBackup(ctx, v, Secrets, blob, &b); err != nil {
		return nil, err
	}
	latest := latestIn(&b, nil)
	if b.Type != Secrets || latest == nil {
		return nil, invalidBackup(Secrets)
	}
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		return restoreObject(tx, s.objs(v, Secrets), &b.Record, b.Versions)
	})
	if err != nil {
		return nil, err
	}
	return secretFrom(&b.Record, latest, false), nil
}
