package vault

import (
	"errors"
	"fmt"

	"github.com/keyward/keyward/internal/errs"
)

// Kind classifies domain errors: the kinds of internal/errs. Each surface
// alone maps a Kind (and the object type) to its status, code and message
// (api for Azure Key Vault, mgmt for ARM; STYLE.md §3).
type Kind = errs.Kind

const (
	NotFound        = errs.NotFound
	DeletedNotFound = errs.DeletedNotFound // a soft-deleted object that does not exist
	Conflict        = errs.Conflict
	BadParameter    = errs.BadParameter
	Forbidden       = errs.Forbidden // the operation is not allowed on the object in its current state
)

// Vaults is the object type of errors about a vault itself (NotFound,
// DeletedNotFound).
const Vaults ObjectType = "vaults"

// Reasons: a fixed vocabulary the surfaces' tables distinguish. They are
// not shown as they are; the surface words them.
const (
	ReasonManagedUpdate   = "ManagedByCertificate/update" // a certificate's secret or key, changed directly
	ReasonManagedDelete   = "ManagedByCertificate/delete"
	ReasonManagedBackup   = "ManagedByCertificate/backup"
	ReasonManagedRotate   = "ManagedByCertificate/rotate"
	ReasonInvalidBackup   = "InvalidBackup" // a backup blob that does not open or does not parse
	ReasonPurgeProtection = "PurgeProtection"
	ReasonVaultExists     = "VaultExists"              // Conflict: a vault of that name exists
	ReasonExists          = "Exists"                   // Conflict: a restore's name is taken
	ReasonManagedAdd      = "ManagedByCertificate/add" // Conflict: a new version of a certificate's key or secret, directly
	ReasonNoProtector     = "NoProtector"              // Forbidden: the key's protector is not configured here
)

// Error is a domain error: a kind, the object's type, name and version, an
// innererror code where Azure gives one (Inner) and a reason from the
// vocabulary above. Errors built by errors.go and secrets.go carry no prose:
// the surfaces word them. Msg, where set, is a message older call sites
// still word themselves; it is safe to show (it may name the object, never
// a secret value or key material).
type Error struct {
	Kind    Kind
	Type    ObjectType
	Name    string
	Version string
	Inner   string
	Reason  string
	Op      string // the key operation refused (sign, decrypt, ...), where one was
	Msg     string
}

func (e *Error) Error() string {
	if e.Msg != "" {
		return e.Msg
	}
	return (&errs.Error{Kind: e.Kind, Type: string(e.Type), Name: e.Name, Version: e.Version,
		Reason: e.Reason + e.Inner}).Error()
}

// ErrKind reports e's kind (errs.Kinded).
func (e *Error) ErrKind() errs.Kind { return e.Kind }

// Is lets errors.Is(err, &Error{Kind: NotFound}) match by kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && (t.Type == "" || t.Type == e.Type)
}

// Singular is the object type's name as a noun ("secret"), for the
// surfaces that word errors.
func (t ObjectType) Singular() string { return t.singular() }

// KindOf returns the Kind of err, or 0 when err is not a domain error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func badParameter(format string, args ...any) error {
	return &Error{Kind: BadParameter, Msg: fmt.Sprintf(format, args...)}
}

func notFound(t ObjectType, name string) error {
	return &Error{Kind: NotFound, Type: t, Name: name}
}

func versionNotFound(t ObjectType, name, version string) error {
	return &Error{Kind: NotFound, Type: t, Name: name, Version: version}
}

func deletedNotFound(t ObjectType, name string) error {
	return &Error{Kind: DeletedNotFound, Type: t, Name: name}
}

func deletedButRecoverable(t ObjectType, name string) error {
	return &Error{Kind: Conflict, Type: t, Name: name, Inner: "ObjectIsDeletedButRecoverable"}
}
