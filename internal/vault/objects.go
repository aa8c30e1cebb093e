package vault

import (
	"cmp"
	"encoding/json"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
)

// This file is the versioned object store shared by secrets, keys and
// certificates. Every function runs inside a barrier transaction that the
// caller opened, so an operation is one atomic change.

// nameRecord is a live object.
type nameRecord struct {
	Name    string `json:"name"` // as first created (case preserved)
	Latest  string `json:"latest"`
	Created int64  `json:"created"`
	// Managed marks objects that back a certificate.
	Managed bool `json:"managed,omitempty"`
}

// deletedRecord is a soft-deleted object. Its versions stay where they are.
type deletedRecord struct {
	nameRecord
	DeletedDate        int64 `json:"deletedDate"`
	ScheduledPurgeDate int64 `json:"scheduledPurgeDate"`
}

// Version is one immutable version of an object: its attributes and tags
// may change, its payload never does.
type Version[P any] struct {
	Version    string            `json:"version"`
	Attributes Attributes        `json:"attributes"`
	Tags       map[string]string `json:"tags,omitempty"`
	Payload    P                 `json:"payload"`
}

type objects struct {
	v *Vault
	t ObjectType
	s *Service
	// lead, when set, says when the near-expiry event of an object fires
	// (certificates decide it from their policy); see notifyLead.
	lead func(tx barrier.Tx, name string) (Duration, bool, error)
}

func (s *Service) objs(v *Vault, t ObjectType) objects { return objects{v: v, t: t, s: s} }

func (o objects) base() string               { return o.t.coll() }
func (o objects) nameKey(name string) string { return o.base() + "/n/" + strings.ToLower(name) }
func (o objects) deletedKey(name string) string {
	return o.base() + "/d/" + strings.ToLower(name)
}
func (o objects) versionsPrefix(name string) string {
	return o.base() + "/v/" + strings.ToLower(name) + "/"
}
func (o objects) versionKey(name, version string) string {
	return o.base() + "/v/" + strings.ToLower(name) + "/" + strings.ToLower(version) // one allocation
}
func (o objects) purgeKey(due int64, name string) string {
	return jobs.DueKey(purgeQueue, due, o.t.coll()+"/"+strings.ToLower(name))
}

// live returns the live record of name, or a NotFound error.
func (o objects) live(tx barrier.Tx, name string) (*nameRecord, error) {
	rec := new(nameRecord)
	ok, err := barrier.GetJSON(tx, o.nameKey(name), rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound(o.t, name)
	}
	return rec, nil
}

// addVersion stores ver as the new latest version of name, creating the
// object if needed. A soft-deleted name cannot be reused.
func addVersion[P any](tx barrier.Tx, o objects, name string, ver *Version[P], managed bool) (*nameRecord, error) {
	if ok, err := barrier.GetJSON(tx, o.deletedKey(name), new(deletedRecord)); err != nil {
		return nil, err
	} else if ok {
		return nil, deletedButRecoverable(o.t, name)
	}
	rec := new(nameRecord)
	ok, err := barrier.GetJSON(tx, o.nameKey(name), rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		rec = &nameRecord{Name: name, Created: ver.Attributes.Created, Managed: managed}
	} else if rec.Managed != managed {
		return nil, &Error{Kind: Conflict, Type: o.t, Name: name, Reason: ReasonManagedAdd}
	}
	rec.Latest = ver.Version
	if err := barrier.PutJSON(tx, o.versionKey(name, ver.Version), ver); err != nil {
		return nil, err
	}
	if err := barrier.PutJSON(tx, o.nameKey(name), rec); err != nil {
		return nil, err
	}
	if err := o.reindex(tx, rec.Name, ver.Version, ver.Attributes.Expires); err != nil {
		return nil, err
	}
	return rec, o.s.emit(tx, o.v, eventType(o.t, "NewVersionCreated"), o.t, rec.Name, ver.Version, &ver.Attributes)
}

// getVersion returns version of name ("" for the latest) of a live object.
func getVersion[P any](tx barrier.Tx, o objects, name, version string) (*nameRecord, *Version[P], error) {
	rec, err := o.live(tx, name)
	if err != nil {
		return nil, nil, err
	}
	ver, err := readVersion[P](tx, o, name, cmp.Or(version, rec.Latest), nil)
	if err != nil {
		return nil, nil, err
	}
	return rec, ver, nil
}

// readVersion reads one version of name, through c when c is not nil (the
// version is then shared and read-only), or a VersionNotFound error.
func readVersion[P any](tx barrier.Tx, o objects, name, version string, c *decodeCache) (*Version[P], error) {
	var (
		ver *Version[P]
		ok  bool
		err error
	)
	if c != nil {
		ver, ok, err = getShared[Version[P]](tx, c, o.v.ID, o.versionKey(name, version))
	} else {
		ver = new(Version[P])
		ok, err = getVersionJSON(tx, o.versionKey(name, version), ver)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, versionNotFound(o.t, name, version)
	}
	return ver, nil
}

// putVersion rewrites an existing version (attributes and tags change).
func putVersion[P any](tx barrier.Tx, o objects, name string, ver *Version[P]) error {
	if err := barrier.PutJSON(tx, o.versionKey(name, ver.Version), ver); err != nil {
		return err
	}
	rec, err := o.live(tx, name)
	if err != nil {
		return err
	}
	if rec.Latest != ver.Version {
		return nil
	}
	return o.reindex(tx, rec.Name, ver.Version, ver.Attributes.Expires)
}

// listLatest returns up to limit live objects after the name after, each
// with its latest version, and whether more may follow.
func listLatest[P any](tx barrier.Tx, o objects, after string, limit int, include func(*nameRecord) bool) ([]*nameRecord, []*Version[P], bool, error) {
	var recs []*nameRecord
	var vers []*Version[P]
	prefix := o.base() + "/n/"
	start := ""
	if after != "" {
		start = prefix + strings.ToLower(after)
	}
	more := false
	var inner error
	err := tx.Scan(prefix, start, func(key string, val []byte) bool {
		if len(recs) == limit {
			more = true
			return false
		}
		rec := new(nameRecord)
		if inner = json.Unmarshal(val, rec); inner != nil {
			return false
		}
		if include != nil && !include(rec) {
			return true
		}
		recs = append(recs, rec)
		return true
	})
	if err == nil {
		err = inner
	}
	if err != nil {
		return nil, nil, false, err
	}
	for _, rec := range recs {
		ver := new(Version[P])
		if _, err := barrier.GetJSON(tx, o.versionKey(rec.Name, rec.Latest), ver); err != nil {
			return nil, nil, false, err
		}
		vers = append(vers, ver)
	}
	return recs, vers, more, nil
}

// listVersions returns up to limit versions of name after the version after.
func listVersions[P any](tx barrier.Tx, o objects, name, after string, limit int) (*nameRecord, []*Version[P], bool, error) {
	rec, err := o.live(tx, name)
	if err != nil {
		return nil, nil, false, err
	}
	prefix := o.versionsPrefix(name)
	start := ""
	if after != "" {
		start = prefix + strings.ToLower(after)
	}
	var vers []*Version[P]
	more := false
	var inner error
	err = tx.Scan(prefix, start, func(key string, val []byte) bool {
		if len(vers) == limit {
			more = true
			return false
		}
		ver := new(Version[P])
		if inner = json.Unmarshal(val, ver); inner != nil {
			return false
		}
		vers = append(vers, ver)
		return true
	})
	if err == nil {
		err = inner
	}
	return rec, vers, more, err
}

// softDelete moves name to the deleted collection and queues its purge.
func softDelete(tx barrier.Tx, o objects, name string, now, retentionDays int64) (*deletedRecord, error) {
	rec, err := o.live(tx, name)
	if err != nil {
		return nil, err
	}
	del := &deletedRecord{nameRecord: *rec, DeletedDate: now, ScheduledPurgeDate: now + retentionDays*86400}
	if err := tx.Delete(o.nameKey(name)); err != nil {
		return nil, err
	}
	if err := barrier.PutJSON(tx, o.deletedKey(name), del); err != nil {
		return nil, err
	}
	if err := o.unindex(tx, name); err != nil {
		return nil, err
	}
	return del, tx.Put(o.purgeKey(del.ScheduledPurgeDate, name), nil)
}

// deleted returns the deleted record of name.
func deleted(tx barrier.Tx, o objects, name string) (*deletedRecord, error) {
	del := new(deletedRecord)
	ok, err := barrier.GetJSON(tx, o.deletedKey(name), del)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, deletedNotFound(o.t, name)
	}
	return del, nil
}

// listDeleted pages through deleted objects with their latest versions.
func listDeleted[P any](tx barrier.Tx, o objects, after string, limit int) ([]*deletedRecord, []*Version[P], bool, error) {
	prefix := o.base() + "/d/"
	start := ""
	if after != "" {
		start = prefix + strings.ToLower(after)
	}
	var dels []*deletedRecord
	more := false
	var inner error
	err := tx.Scan(prefix, start, func(key string, val []byte) bool {
		if len(dels) == limit {
			more = true
			return false
		}
		d := new(deletedRecord)
		if inner = json.Unmarshal(val, d); inner != nil {
			return false
		}
		dels = append(dels, d)
		return true
	})
	if err == nil {
		err = inner
	}
	if err != nil {
		return nil, nil, false, err
	}
	vers := make([]*Version[P], 0, len(dels))
	for _, d := range dels {
		ver := new(Version[P])
		if _, err := barrier.GetJSON(tx, o.versionKey(d.Name, d.Latest), ver); err != nil {
			return nil, nil, false, err
		}
		vers = append(vers, ver)
	}
	return dels, vers, more, nil
}

// recoverDeleted makes a deleted object live again.
func recoverDeleted(tx barrier.Tx, o objects, name string) (*nameRecord, error) {
	del, err := deleted(tx, o, name)
	if err != nil {
		return nil, err
	}
	if err := tx.Delete(o.deletedKey(name)); err != nil {
		return nil, err
	}
	if err := tx.Delete(o.purgeKey(del.ScheduledPurgeDate, name)); err != nil {
		return nil, err
	}
	rec := del.nameRecord
	if err := barrier.PutJSON(tx, o.nameKey(name), &rec); err != nil {
		return nil, err
	}
	return &rec, o.reindexLatest(tx, &rec)
}

// purge removes a deleted object and all its versions for good.
func purge(tx barrier.Tx, o objects, name string) error {
	del, err := deleted(tx, o, name)
	if err != nil {
		return err
	}
	var keys []string
	for _, prefix := range []string{o.versionsPrefix(name), o.base() + "/m/" + strings.ToLower(name) + "/"} {
		if err := tx.ScanKeys(prefix, "", func(k string) bool {
			keys = append(keys, k)
			return true
		}); err != nil {
			return err
		}
	}
	keys = append(keys, o.base()+"/p/"+strings.ToLower(name)) // rotation policy, if any
	for _, k := range keys {
		if err := tx.Delete(k); err != nil {
			return err
		}
	}
	if err := tx.Delete(o.purgeKey(del.ScheduledPurgeDate, name)); err != nil {
		return err
	}
	if err := o.unindex(tx, name); err != nil {
		return err
	}
	return tx.Delete(o.deletedKey(name))
}

// allVersions returns every version of a live object (for backup).
func allVersions[P any](tx barrier.Tx, o objects, name string) (*nameRecord, []*Version[P], error) {
	rec, vers, _, err := listVersions[P](tx, o, name, "", 1<<30)
	return rec, vers, err
}

// restoreObject writes a whole object from a backup. The name must be free.
func restoreObject[P any](tx barrier.Tx, o objects, rec *nameRecord, vers []*Version[P]) error {
	if ok, err := barrier.GetJSON(tx, o.deletedKey(rec.Name), new(deletedRecord)); err != nil {
		return err
	} else if ok {
		return deletedButRecoverable(o.t, rec.Name)
	}
	if ok, err := barrier.GetJSON(tx, o.nameKey(rec.Name), new(nameRecord)); err != nil {
		return err
	} else if ok {
		return &Error{Kind: Conflict, Type: o.t, Name: rec.Name, Reason: ReasonExists}
	}
	for _, ver := range vers {
		if err := barrier.PutJSON(tx, o.versionKey(rec.Name, ver.Version), ver); err != nil {
			return err
		}
	}
	if err := barrier.PutJSON(tx, o.nameKey(rec.Name), rec); err != nil {
		return err
	}
	return o.reindexLatest(tx, rec)
}
