package vault

import (
	"context"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
)

// This file is the versioned object store as the domain packages above
// vault see it (internal/certificates): a collection of one object type in
// one vault (Objects), the operations on it inside a transaction of In(v),
// and the managed key and secret versions that back a certificate. The
// key layout stays vault's: callers name objects, never storage keys,
// except the one policy slot an object has (PolicyKey), which the store
// purges with the object.

// Content types of a certificate's secret (AZURE-API.md §1.4); the secret
// is vault's, so its content types are named here.
const (
	ContentTypePKCS12 = "application/x-pkcs12"
	ContentTypePEM    = "application/x-pem-file"
)

// AccountKeyName is the vault key that holds an ACME issuer's account key.
func AccountKeyName(issuer string) string { return issuer + "-acme-account" }

// Record is a live object: its name as first created, latest version,
// creation time and whether it backs a certificate.
type Record = nameRecord

// DeletedRecord is a soft-deleted object with its deletion and purge
// dates.
type DeletedRecord = deletedRecord

// Objects is one object type's collection in one vault.
type Objects = objects

// SecretPayload is what a secret version stores.
type SecretPayload = secretPayload

// Backup is the plaintext of one object in a backup blob.
type Backup[P any] = backup[P]

// KeyBackup is a key's backup: every version with its material.
type KeyBackup = backup[keyBackupVersion]

// Objects returns the collection of type t in v.
func (s *Service) Objects(v *Vault, t ObjectType) Objects { return s.objs(v, t) }

// WithNotifyLead returns o whose objects announce near expiry lead before
// it (ok false: not at all), as lead decides per object, instead of the
// default for o's type.
func (o Objects) WithNotifyLead(lead func(tx barrier.Tx, name string) (d Duration, ok bool, err error)) Objects {
	o.lead = lead
	return o
}

// Type is the collection's object type.
func (o Objects) Type() ObjectType { return o.t }

// Vault is the vault the collection is in.
func (o Objects) Vault() *Vault { return o.v }

// view runs fn in a read transaction of o's vault.
func (o Objects) view(ctx context.Context, fn func(tx barrier.Tx) error) error {
	return o.s.in(o.v).View(ctx, fn)
}

// In is the storage view of vault v, for transactions over its objects.
func (s *Service) In(v *Vault) *barrier.View { return s.in(v) }

// ForgetKey drops the cached operators of key name in v (after its
// versions were enabled or disabled outside the keys API).
func (s *Service) ForgetKey(v *Vault, name string) { s.ops.evict(v, name) }

// ObjectURL is how clients address an object version.
func (s *Service) ObjectURL(v *Vault, t ObjectType, name, version string) string {
	return s.objectURL(v, t, name, version)
}

// GetJSON reads key of a vault's view into v; false when it is absent.
func GetJSON(tx barrier.Tx, key string, v any) (bool, error) { return barrier.GetJSON(tx, key, v) }

// PutJSON writes v under key.
func PutJSON(tx barrier.Tx, key string, v any) error { return barrier.PutJSON(tx, key, v) }

// PolicyKey is where an object's policy lives (purged with the object).
func (o Objects) PolicyKey(name string) string { return o.policyKey(name) }

// Live returns the live record of name, or a NotFound error.
func (o Objects) Live(tx barrier.Tx, name string) (*Record, error) { return o.live(tx, name) }

// Deleted returns the deleted record of name, or a DeletedNotFound error.
func (o Objects) Deleted(tx barrier.Tx, name string) (*DeletedRecord, error) {
	return deleted(tx, o, name)
}

// IsDeleted reports whether name is soft-deleted.
func (o Objects) IsDeleted(tx barrier.Tx, name string) (bool, error) {
	return barrier.GetJSON(tx, o.deletedKey(name), new(deletedRecord))
}

// Lookup returns the live record of name, if there is one.
func (o Objects) Lookup(tx barrier.Tx, name string) (*Record, bool, error) {
	rec := new(nameRecord)
	ok, err := barrier.GetJSON(tx, o.nameKey(name), rec)
	return rec, ok, err
}

// SoftDelete soft-deletes name at now and queues its purge.
func (o Objects) SoftDelete(tx barrier.Tx, name string, now int64) (*DeletedRecord, error) {
	return softDelete(tx, o, name, now, int64(o.v.RetentionDays))
}

// Recover makes a soft-deleted name live again.
func (o Objects) Recover(tx barrier.Tx, name string) (*Record, error) {
	return recoverDeleted(tx, o, name)
}

// Purge removes a soft-deleted name and its versions for good.
func (o Objects) Purge(tx barrier.Tx, name string) error { return purge(tx, o, name) }

// Reindex re-schedules the expiry notifications of rec's latest version.
func (o Objects) Reindex(tx barrier.Tx, rec *Record) error { return o.reindexLatest(tx, rec) }

// Emit queues an event of o's type (what: "NewVersionCreated",
// "NearExpiry", "Expired") about a version.
func (o Objects) Emit(tx barrier.Tx, what, name, version string, a *Attributes) error {
	return o.s.emit(tx, o.v, eventType(o.t, what), o.t, name, version, a)
}

// AddVersion stores ver as the new latest version of name (see addVersion).
func AddVersion[P any](tx barrier.Tx, o Objects, name string, ver *Version[P], managed bool) (*Record, error) {
	return addVersion(tx, o, name, ver, managed)
}

// GetVersion returns a version of a live object ("" for the latest).
func GetVersion[P any](tx barrier.Tx, o Objects, name, version string) (*Record, *Version[P], error) {
	return getVersion[P](tx, o, name, version)
}

// PutVersion rewrites an existing version (attributes and tags change).
func PutVersion[P any](tx barrier.Tx, o Objects, name string, ver *Version[P]) error {
	return putVersion(tx, o, name, ver)
}

// ListLatest returns up to limit live objects after the name after, each
// with its latest version, and whether more may follow.
func ListLatest[P any](tx barrier.Tx, o Objects, after string, limit int) ([]*Record, []*Version[P], bool, error) {
	return listLatest[P](tx, o, after, limit, nil)
}

// BackupOf reads every version of the live object name for a backup
// (managed: it must back a certificate, or must not).
func BackupOf[P any](tx barrier.Tx, o Objects, name string, managed bool) (*Backup[P], error) {
	return backupOf[P](tx, o, name, managed)
}

// LatestIn checks the versions of a backup read from a blob and returns
// the latest, or nil when the backup is not usable.
func LatestIn[P any](b *Backup[P]) *Version[P] { return latestIn(b, nil) }

// RestoreObject writes a whole object from a backup; the name must be free.
func RestoreObject[P any](tx barrier.Tx, o Objects, rec *Record, vers []*Version[P]) error {
	return restoreObject(tx, o, rec, vers)
}

// InvalidBackup is the one answer to a blob that does not restore.
func InvalidBackup(t ObjectType) error { return invalidBackup(t) }

// SealBackup encodes b and seals it under v's tenant keyring, bound to t.
func (s *Service) SealBackup(ctx context.Context, v *Vault, t ObjectType, b any) ([]byte, error) {
	return s.sealBackup(ctx, v, t, b)
}

// OpenBackup opens a blob made by SealBackup for the same tenant and type.
func (s *Service) OpenBackup(ctx context.Context, v *Vault, t ObjectType, blob []byte, b any) error {
	return s.openBackup(ctx, v, t, blob, b)
}

// SetEnabled enables or disables one version of name, if it exists.
func SetEnabled[P any](tx barrier.Tx, o Objects, name, version string, enabled bool, now int64) error {
	_, ver, err := getVersion[P](tx, o, name, version)
	if KindOf(err) == NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	ver.Attributes.Enabled, ver.Attributes.Updated = enabled, now
	return putVersion(tx, o, name, ver)
}

// --- the managed key of a certificate ---

// ManagedKey is a certificate's key before (or as) it is stored as a key
// version: its type, public part, the protector that holds it and the
// protector's private key handle.
type ManagedKey struct {
	Kty        string   `json:"kty"`
	Public     keys.JWK `json:"public"`
	Protector  string   `json:"protector"`
	Platform   string   `json:"platform"`
	Handle     []byte   `json:"handle,omitempty"`
	Exportable bool     `json:"exportable"`
}

// SoftwareProtector is the name of the software key protector.
func (s *Service) SoftwareProtector() keys.Protector { return s.software }

// ReadManagedKey reads version of key name with its handle.
func (s *Service) ReadManagedKey(tx barrier.Tx, v *Vault, name, version string) (*ManagedKey, error) {
	k := s.objs(v, Keys)
	_, ver, err := getVersion[keyPayload](tx, k, name, version)
	if err != nil {
		return nil, err
	}
	h, err := tx.Get(k.materialKey(name, version))
	if err != nil {
		return nil, err
	}
	return &ManagedKey{Kty: ver.Payload.Kty, Public: ver.Payload.Public, Protector: ver.Payload.Protector,
		Platform: ver.Payload.Platform, Handle: h}, nil
}

// GenerateKey makes a new key of type kty for a certificate in v.
// exportable is dropped for a key an HSM holds.
func (s *Service) GenerateKey(ctx context.Context, v *Vault, kty string, spec keys.Spec, exportable bool) (*ManagedKey, error) {
	prot, _, err := s.protector(v, kty)
	if err != nil {
		return nil, err
	}
	if prot.Name() != s.software.Name() && exportable {
		exportable = false // an HSM key never leaves the HSM
	}
	handle, pub, err := prot.Generate(ctx, spec)
	if err != nil {
		return nil, keyError(err)
	}
	return &ManagedKey{Kty: kty, Public: pub, Protector: prot.Name(), Platform: prot.Platform(), Handle: handle, Exportable: exportable}, nil
}

// Signer loads a managed key for signing; keyName names it in errors.
func (s *Service) Signer(ctx context.Context, key *ManagedKey, keyName string) (keys.Operator, error) {
	prot, err := s.protectorByName(key.Protector, keyName)
	if err != nil {
		return nil, err
	}
	op, err := prot.Load(ctx, key.Handle)
	if err != nil {
		return nil, keyError(err)
	}
	return op, nil
}

// protectorByName returns the protector that made a handle of the key
// keyName: software, or the HSM when one is configured.
func (s *Service) protectorByName(name, keyName string) (keys.Protector, error) {
	if name == s.software.Name() {
		return s.software, nil
	}
	if s.hsm != nil && name == s.hsm.Name() {
		return s.hsm, nil
	}
	return nil, &Error{Kind: Forbidden, Type: Keys, Name: keyName, Version: name, Reason: ReasonNoProtector}
}

// KeyError maps an error of the keys package to a domain error.
func KeyError(err error) error { return keyError(err) }

// AddManagedKeyVersion stores key as version of the managed key name.
func (s *Service) AddManagedKeyVersion(tx barrier.Tx, v *Vault, name, version string, a Attributes, key *ManagedKey) error {
	k := s.objs(v, Keys)
	f := false
	base := strings.TrimSuffix(key.Kty, "-HSM")
	kv := &Version[keyPayload]{Version: version, Attributes: a,
		Payload: keyPayload{Kty: key.Kty, KeyOps: defaultKeyOps(base, key.Public.Alg), Public: key.Public,
			Protector: key.Protector, Platform: key.Platform}}
	kv.Attributes.Exportable = &f
	if _, err := addVersion(tx, k, name, kv, true); err != nil {
		return err
	}
	return tx.Put(k.materialKey(name, version), key.Handle)
}

// SetKeyEnabled enables or disables one version of key name, if it exists.
func (s *Service) SetKeyEnabled(tx barrier.Tx, v *Vault, name, version string, enabled bool, now int64) error {
	return SetEnabled[keyPayload](tx, s.objs(v, Keys), name, version, enabled, now)
}

// ManagedKeyBackup is the backup of the managed key name (NotFound when
// it does not back a certificate); hsm refuses a key an HSM holds.
func (s *Service) ManagedKeyBackup(tx barrier.Tx, v *Vault, name, hsm string) (*KeyBackup, error) {
	return s.keyBackupOf(tx, v, name, true, hsm)
}

// WipeKeyBackup clears the key material a key backup holds.
func WipeKeyBackup(b *KeyBackup) { wipeMaterial(b) }

// ValidManagedKeyBackup reports whether b restores as the managed key name.
func ValidManagedKeyBackup(b *KeyBackup, name string) bool {
	_, latest := keyVersionsIn(b)
	return latest != nil && strings.EqualFold(b.Record.Name, name) && b.Record.Managed
}

// RestoreManagedKey writes a key from a backup checked by
// ValidManagedKeyBackup, material included.
func (s *Service) RestoreManagedKey(tx barrier.Tx, v *Vault, b *KeyBackup) error {
	vers, _ := keyVersionsIn(b)
	return restoreKeyObject(tx, s.objs(v, Keys), b, vers)
}

// KeyOperator returns version of the ordinary key name ("" for the
// latest) and its operator, for signing with it.
func (s *Service) KeyOperator(ctx context.Context, v *Vault, name, version string) (*Key, keys.Operator, error) {
	k := s.objs(v, Keys)
	var (
		rec *nameRecord
		ver *Version[keyPayload]
	)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		rec, ver, err = getVersion[keyPayload](tx, k, name, version)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	op, err := s.operator(ctx, v, k, rec.Name, ver)
	if err != nil {
		return nil, nil, err
	}
	return keyFrom(rec, ver), op, nil
}

// CheckName checks an object name of type t.
func CheckName(t ObjectType, name string) error { return checkName(t, name) }

// CheckRequest checks a write's name (nameErr), tags and attributes.
func CheckRequest(nameErr error, tags map[string]string, attrs *AttributesPatch) error {
	return checkRequest(nameErr, tags, attrs)
}

// CheckTags checks an object's tags.
func CheckTags(tags map[string]string) error { return checkTags(tags) }

// CheckAttributes checks an attributes patch (nbf before exp).
func CheckAttributes(p *AttributesPatch) error { return checkAttributes(p) }

// Apply applies a partial update.
func (a *Attributes) Apply(p *AttributesPatch) { a.apply(p) }

// DeletedButRecoverable is the conflict of a name that is soft-deleted.
func DeletedButRecoverable(t ObjectType, name string) error { return deletedButRecoverable(t, name) }

// Invalid is a BadParameter error worded by its caller.
func Invalid(format string, args ...any) error { return badParameter(format, args...) }
