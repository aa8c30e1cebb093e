package vault

import (
	"context"
	"encoding/json"

	"github.com/keyward/keyward/internal/barrier"
)

// This file is the versioned-object store's operations as the Service
// offers them, written once for secrets, keys and certificates: listing,
// versions, soft delete, recover, purge and the backup envelope. What
// differs per type arrives as a conversion (Conv) and, for
// certificates, a cascade that runs in the same transaction (the
// certificate's managed key and secret follow it).

// info is the deletion metadata of d as the domain returns it.
func (d *deletedRecord) info() *DeletedInfo {
	return &DeletedInfo{DeletedDate: d.DeletedDate, ScheduledPurgeDate: d.ScheduledPurgeDate}
}

// Conv turns a stored object (and its deletion metadata, nil when
// live) into what a Service method returns.
type Conv[P, T any] func(rec *nameRecord, ver *Version[P], del *DeletedInfo) T

// Cascade runs after a shared operation on the object name, inside its
// transaction, with the result it is about to return (which it may
// complete). nil means nothing to do.
type Cascade[T any] func(tx barrier.Tx, name string, out T) error

func (c Cascade[T]) run(tx barrier.Tx, name string, out T) error {
	if c == nil {
		return nil
	}
	return c(tx, name, out)
}

// pageOf fills page with items; next is the name or version to continue
// after when more may follow.
func pageOf[T any](page *Page[T], items []T, more bool, next func() string) {
	page.Items = items
	page.Next = ""
	if more && len(items) > 0 {
		page.Next = next()
	}
}

// listPage is the List* operations: one page of live objects of type t,
// each as its latest version.
func listPage[P, T any](ctx context.Context, s *Service, v *Vault, t ObjectType, after string, limit int, conv Conv[P, T]) (*Page[T], error) {
	return ListPage(ctx, s.objs(v, t), after, limit, conv)
}

// ListPage is listPage over the collection o.
func ListPage[P, T any](ctx context.Context, o Objects, after string, limit int, conv Conv[P, T]) (*Page[T], error) {
	page := &Page[T]{}
	err := o.view(ctx, func(tx barrier.Tx) error {
		recs, vers, more, err := listLatest[P](tx, o, after, limit, nil)
		if err != nil {
			return err
		}
		items := make([]T, 0, len(recs))
		for i := range recs {
			items = append(items, conv(recs[i], vers[i], nil))
		}
		pageOf(page, items, more, func() string { return recs[len(recs)-1].Name })
		return nil
	})
	return page, err
}

// versionsPage is the List*Versions operations: one page of the versions
// of a live object.
func versionsPage[P, T any](ctx context.Context, s *Service, v *Vault, t ObjectType, name, after string, limit int, conv Conv[P, T]) (*Page[T], error) {
	return VersionsPage(ctx, s.objs(v, t), name, after, limit, conv)
}

// VersionsPage is versionsPage over the collection o.
func VersionsPage[P, T any](ctx context.Context, o Objects, name, after string, limit int, conv Conv[P, T]) (*Page[T], error) {
	if err := checkName(o.t, name); err != nil {
		return nil, err
	}
	page := &Page[T]{}
	err := o.view(ctx, func(tx barrier.Tx) error {
		rec, vers, more, err := listVersions[P](tx, o, name, after, limit)
		if err != nil {
			return err
		}
		items := make([]T, 0, len(vers))
		for _, ver := range vers {
			items = append(items, conv(rec, ver, nil))
		}
		pageOf(page, items, more, func() string { return vers[len(vers)-1].Version })
		return nil
	})
	return page, err
}

// listDeletedPage is the ListDeleted* operations: one page of soft-deleted
// objects of type t, each with its latest version.
func listDeletedPage[P, T any](ctx context.Context, s *Service, v *Vault, t ObjectType, after string, limit int, conv Conv[P, T]) (*Page[T], error) {
	return ListDeletedPage(ctx, s.objs(v, t), after, limit, conv)
}

// ListDeletedPage is listDeletedPage over the collection o.
func ListDeletedPage[P, T any](ctx context.Context, o Objects, after string, limit int, conv Conv[P, T]) (*Page[T], error) {
	page := &Page[T]{}
	err := o.view(ctx, func(tx barrier.Tx) error {
		dels, vers, more, err := listDeleted[P](tx, o, after, limit)
		if err != nil {
			return err
		}
		items := make([]T, 0, len(dels))
		for i, d := range dels {
			items = append(items, conv(&d.nameRecord, vers[i], d.info()))
		}
		pageOf(page, items, more, func() string { return dels[len(dels)-1].Name })
		return nil
	})
	return page, err
}

// deleteObject is the Delete* operations: the object (with all its
// versions) is soft-deleted and its purge queued. Objects that back a
// certificate are deleted with the certificate, never on their own.
func deleteObject[P, T any](ctx context.Context, s *Service, v *Vault, t ObjectType, name string, conv Conv[P, T], then Cascade[T]) (T, error) {
	return DeleteObject(ctx, s.objs(v, t), name, conv, then)
}

// DeleteObject is deleteObject over the collection o.
func DeleteObject[P, T any](ctx context.Context, o Objects, name string, conv Conv[P, T], then Cascade[T]) (T, error) {
	var out T
	s, v, t := o.s, o.v, o.t
	if err := checkName(t, name); err != nil {
		return out, err
	}
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		rec, ver, err := getVersion[P](tx, o, name, "")
		if err != nil {
			return err
		}
		if rec.Managed {
			return &Error{Kind: Forbidden, Type: t, Name: name, Reason: ReasonManagedDelete}
		}
		del, err := softDelete(tx, o, name, s.clock.Now().Unix(), int64(v.RetentionDays))
		if err != nil {
			return err
		}
		out = conv(rec, ver, del.info())
		return then.run(tx, name, out)
	})
	if err == nil && t != Secrets {
		s.ops.evict(v, name)
	}
	return out, err
}

// getDeletedObject is the GetDeleted* operations: a soft-deleted object's
// latest version.
func getDeletedObject[P, T any](ctx context.Context, s *Service, v *Vault, t ObjectType, name string, conv Conv[P, T], then Cascade[T]) (T, error) {
	return GetDeletedObject(ctx, s.objs(v, t), name, conv, then)
}

// GetDeletedObject is getDeletedObject over the collection o.
func GetDeletedObject[P, T any](ctx context.Context, o Objects, name string, conv Conv[P, T], then Cascade[T]) (T, error) {
	var out T
	if err := checkName(o.t, name); err != nil {
		return out, err
	}
	err := o.view(ctx, func(tx barrier.Tx) error {
		del, err := deleted(tx, o, name)
		if err != nil {
			return err
		}
		ver := new(Version[P])
		if _, err := barrier.GetJSON(tx, o.versionKey(name, del.Latest), ver); err != nil {
			return err
		}
		out = conv(&del.nameRecord, ver, del.info())
		return then.run(tx, name, out)
	})
	return out, err
}

// recoverObject is the Recover* operations: the object becomes live again
// with all its versions.
func recoverObject[P, T any](ctx context.Context, s *Service, v *Vault, t ObjectType, name string, conv Conv[P, T], then Cascade[T]) (T, error) {
	return RecoverObject(ctx, s.objs(v, t), name, conv, then)
}

// RecoverObject is recoverObject over the collection o.
func RecoverObject[P, T any](ctx context.Context, o Objects, name string, conv Conv[P, T], then Cascade[T]) (T, error) {
	var out T
	if err := checkName(o.t, name); err != nil {
		return out, err
	}
	err := o.s.in(o.v).Update(ctx, func(tx barrier.Tx) error {
		rec, err := recoverDeleted(tx, o, name)
		if err != nil {
			return err
		}
		ver := new(Version[P])
		if _, err := barrier.GetJSON(tx, o.versionKey(name, rec.Latest), ver); err != nil {
			return err
		}
		out = conv(rec, ver, nil)
		return then.run(tx, name, out)
	})
	return out, err
}

// purgeObject is the Purge* operations: a soft-deleted object and all its
// versions go for good. A purge-protected vault refuses until the
// retention period has passed (the scheduler purges then).
func purgeObject(ctx context.Context, s *Service, v *Vault, t ObjectType, name string, then Cascade[struct{}]) error {
	return PurgeObject(ctx, s.objs(v, t), name, then)
}

// PurgeObject is purgeObject over the collection o.
func PurgeObject(ctx context.Context, o Objects, name string, then Cascade[struct{}]) error {
	s, v, t := o.s, o.v, o.t
	if err := checkName(t, name); err != nil {
		return err
	}
	if v.PurgeProtected {
		return &Error{Kind: Forbidden, Type: t, Name: name, Inner: "ForbiddenByPolicy", Reason: ReasonPurgeProtection}
	}
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		if err := purge(tx, o, name); err != nil {
			return err
		}
		return then.run(tx, name, struct{}{})
	})
	if err == nil && t != Secrets {
		s.ops.evict(v, name)
	}
	return err
}

// --- the backup envelope ---

// backup is the plaintext of one object in a backup blob.
type backup[P any] struct {
	Type     ObjectType    `json:"type"`
	Tenant   string        `json:"tenant"`
	Record   nameRecord    `json:"record"`
	Versions []*Version[P] `json:"versions"`
}

// MaxBackupVersions is Azure's limit on versions in one backup.
const MaxBackupVersions = 500

const backupMagic = "KWB1"

// backupOf reads every version of the live object name for a backup.
// managed says whether the object must back a certificate (it is then
// backed up with it) or must not.
func backupOf[P any](tx barrier.Tx, o objects, name string, managed bool) (*backup[P], error) {
	rec, vers, err := allVersions[P](tx, o, name)
	if err != nil {
		return nil, err
	}
	if rec.Managed != managed {
		if managed {
			return nil, notFound(o.t, name)
		}
		return nil, &Error{Kind: Forbidden, Type: o.t, Name: name, Reason: ReasonManagedBackup}
	}
	if len(vers) > MaxBackupVersions {
		return nil, badParameter("Backup of a %s with more than %d versions is not allowed.", o.t.singular(), MaxBackupVersions)
	}
	return &backup[P]{Type: o.t, Tenant: o.v.TenantID, Record: *rec, Versions: vers}, nil
}

// latestIn checks the versions of a backup read from a blob (valid
// reports whether each is well formed) and returns the one the record
// names as latest, or nil when the backup is not usable.
func latestIn[P any](b *backup[P], valid func(*Version[P]) bool) *Version[P] {
	if len(b.Versions) == 0 || !ValidName(b.Record.Name) {
		return nil
	}
	var latest *Version[P]
	for _, ver := range b.Versions {
		if !ValidVersion(ver.Version) || (valid != nil && !valid(ver)) {
			return nil
		}
		if ver.Version == b.Record.Latest {
			latest = ver
		}
	}
	return latest
}

// invalidBackup is the one answer to a blob that does not restore: it
// says nothing about why.
func invalidBackup(t ObjectType) error {
	return &Error{Kind: BadParameter, Type: t, Reason: ReasonInvalidBackup}
}

// sealBackup encodes b and seals it under the tenant's keyring, bound to
// the object type.
func (s *Service) sealBackup(ctx context.Context, v *Vault, t ObjectType, b any) ([]byte, error) {
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	defer clear(plain)
	blob, err := s.store.Tenant(v.TenantID).SealBlob(ctx, "backup/"+string(t), plain)
	if err != nil {
		return nil, err
	}
	return append([]byte(backupMagic), blob...), nil
}

// openBackup opens a blob made by sealBackup for the same tenant and
// object type and decodes it into b.
func (s *Service) openBackup(ctx context.Context, v *Vault, t ObjectType, blob []byte, b any) error {
	if len(blob) < len(backupMagic) || string(blob[:len(backupMagic)]) != backupMagic {
		return invalidBackup(t)
	}
	plain, err := s.store.Tenant(v.TenantID).OpenBlob(ctx, "backup/"+string(t), blob[len(backupMagic):])
	if err != nil {
		return invalidBackup(t)
	}
	defer clear(plain)
	if json.Unmarshal(plain, b) != nil {
		return invalidBackup(t)
	}
	return nil
}
