package vault

import (
	"errors"
	"fmt"
)

// Kind classifies domain errors. The api package alone maps a Kind (and the
// object type) to an HTTP status and Azure error code (STYLE.md §3).
type Kind int

const (
	_ Kind = iota
	NotFound
	DeletedNotFound // a soft-deleted object that does not exist
	Conflict
	BadParameter
	Forbidden // the operation is not allowed on the object in its current state
	VaultNotFound
)

// Error is a domain error. Msg is safe to show to the caller: it may name
// the object but never contains a secret value or key material. Inner is
// Azure's innererror code where Azure gives one.
type Error struct {
	Kind  Kind
	Type  ObjectType
	Name  string
	Inner string
	Msg   string
}

func (e *Error) Error() string { return e.Msg }

// Is lets errors.Is(err, &Error{Kind: NotFound}) match by kind.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && (t.Type == "" || t.Type == e.Type)
}

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
	return &Error{Kind: NotFound, Type: t, Name: name,
		Msg: fmt.Sprintf("A %s with (name/id) %s was not found in this key vault. If you recently deleted this %s you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", t.singular(), name, t.singular())}
}

func versionNotFound(t ObjectType, name, version string) error {
	return &Error{Kind: NotFound, Type: t, Name: name,
		Msg: fmt.Sprintf("A %s with (name/id) %s/%s was not found in this key vault. If you recently deleted this %s you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", t.singular(), name, version, t.singular())}
}

func deletedNotFound(t ObjectType, name string) error {
	return &Error{Kind: DeletedNotFound, Type: t, Name: name,
		Msg: fmt.Sprintf("Deleted %s not found: %s", t.title(), name)}
}

func deletedButRecoverable(t ObjectType, name string) error {
	return &Error{Kind: Conflict, Type: t, Name: name, Inner: "ObjectIsDeletedButRecoverable",
		Msg: fmt.Sprintf("%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the %s can only be recovered or purged.", t.title(), name, t.singular())}
}
