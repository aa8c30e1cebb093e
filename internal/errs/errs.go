// Package errs holds Keyward's domain error kinds: what went wrong, with
// the type and name of the object it went wrong on, and nothing about how a
// surface says so. There is no HTTP status here and no message for users:
// each surface (the Azure Key Vault data plane in internal/api, ARM in
// internal/mgmt, OAuth/Entra in internal/identity's wire layer) has exactly
// one table that maps a Kind to its status, code and message (STYLE.md §3).
//
// Cryptographic failures stay deliberately vague: a decrypt, unwrap,
// verify or token-signature failure is one Kind (BadParameter or
// Unauthorized) with no detail an attacker could adapt to.
package errs

import (
	"errors"
	"strings"
)

// Kind classifies an error. Values are added only at the end.
type Kind uint8

const (
	_               Kind = iota
	NotFound             // the object does not exist
	DeletedNotFound      // the soft-deleted object does not exist
	Conflict             // the object's state forbids the change (exists, deleted but recoverable, ...)
	BadParameter         // the request is malformed or names something invalid
	Forbidden            // the operation is not allowed on the object (its state or the vault's settings)
	Unauthorized         // the caller's credentials are missing or invalid
	Throttled            // too many requests; retry later
	Unavailable          // a dependency (storage, audit sink) is temporarily unavailable; retry later
	Sealed               // Keyward is sealed; an operator must unseal it
	Internal             // a failure the caller cannot do anything about
)

var kindNames = [...]string{"", "not found", "deleted object not found", "conflict", "bad parameter",
	"forbidden", "unauthorized", "throttled", "unavailable", "sealed", "internal"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return "unknown"
}

// Error is a classified domain error.
type Error struct {
	Kind Kind
	// Type is the kind of object: "secret", "key", "certificate", "vault",
	// "principal", ... Empty when the error is about no object.
	Type string
	// Name and Version identify the object. They come from the caller and
	// are never secret.
	Name, Version string
	// Reason is a code from a fixed vocabulary that a surface's table may
	// distinguish ("ObjectIsDeletedButRecoverable", "Disabled", ...).
	Reason string
	// Err is the cause, for the log; no surface shows it.
	Err error
}

// E returns an error of kind k about the object typ/name.
func E(k Kind, typ, name string) *Error { return &Error{Kind: k, Type: typ, Name: name} }

func (e *Error) Error() string {
	var b strings.Builder
	if e.Type != "" {
		b.WriteString(e.Type)
		if e.Name != "" {
			b.WriteString(" " + e.Name)
			if e.Version != "" {
				b.WriteString("/" + e.Version)
			}
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Kind.String())
	if e.Reason != "" {
		b.WriteString(" (" + e.Reason + ")")
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrKind reports e's kind (the Kinded interface).
func (e *Error) ErrKind() Kind { return e.Kind }

// Is lets errors.Is(err, &Error{Kind: NotFound}) match by kind (and by
// type, when the target names one).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && (t.Type == "" || t.Type == e.Type)
}

// Kinded is implemented by domain errors that carry a Kind (*Error, and
// packages' own error types that add detail, such as vault.Error).
type Kinded interface {
	error
	ErrKind() Kind
}

// KindOf returns the Kind of the first error in err's chain that has one,
// or 0.
func KindOf(err error) Kind {
	var k Kinded
	if errors.As(err, &k) {
		return k.ErrKind()
	}
	return 0
}
