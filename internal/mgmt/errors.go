package mgmt

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// armError is an ARM error: {"error":{"code","message"}} with a status.
type armError struct {
	status  int
	code    string
	message string
}

func (e *armError) Error() string { return e.message }

func errBad(code, format string, args ...any) error {
	return &armError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func errConflict(code, format string, args ...any) error {
	return &armError{status: http.StatusConflict, code: code, message: fmt.Sprintf(format, args...)}
}

func errNotFound(code, format string, args ...any) error {
	return &armError{status: http.StatusNotFound, code: code, message: fmt.Sprintf(format, args...)}
}

type armErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// toARM maps any error to its ARM status and body. Unknown errors become a
// generic 500 whose detail the caller logs.
func toARM(err error) (int, armErrorBody, bool) {
	var b armErrorBody
	var ae *armError
	var ve *vault.Error
	var ie *identity.ErrInvalid
	switch {
	case errors.As(err, &ae):
		b.Error.Code, b.Error.Message = ae.code, ae.message
		return ae.status, b, true
	case errors.As(err, &ie):
		b.Error.Code, b.Error.Message = "BadRequest", ie.Msg
		return http.StatusBadRequest, b, true
	case errors.Is(err, identity.ErrConflict):
		b.Error.Code, b.Error.Message = "Conflict", "An object with the same name or credential already exists."
		return http.StatusConflict, b, true
	case errors.Is(err, identity.ErrNotFound), errors.Is(err, storage.ErrNotFound):
		b.Error.Code, b.Error.Message = "ResourceNotFound", "The resource was not found."
		return http.StatusNotFound, b, true
	case errors.As(err, &ve):
		b.Error.Message = ve.Msg
		if b.Error.Message == "" {
			b.Error.Message = vaultMessage(ve)
		}
		switch ve.Kind {
		case errs.NotFound, errs.DeletedNotFound:
			b.Error.Code = "ResourceNotFound"
			return http.StatusNotFound, b, true
		case errs.Conflict:
			b.Error.Code = "ConflictError"
			return http.StatusConflict, b, true
		case errs.Forbidden:
			b.Error.Code = "BadRequest"
			if ve.Inner != "" {
				b.Error.Code = ve.Inner
			}
			return http.StatusBadRequest, b, true
		case errs.BadParameter:
			b.Error.Code = "BadRequest"
			return http.StatusBadRequest, b, true
		}
	case errors.Is(err, barrier.ErrSealed):
		b.Error.Code, b.Error.Message = "ServiceUnavailable", "Keyward is sealed."
		return http.StatusServiceUnavailable, b, true
	case errors.Is(err, audit.ErrUnavailable):
		b.Error.Code, b.Error.Message = "ServiceUnavailable", "The audit log is temporarily unavailable. Please retry."
		return http.StatusServiceUnavailable, b, true
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, syscall.ENOSPC):
		b.Error.Code, b.Error.Message = "ServiceUnavailable", "The storage backend is temporarily unavailable. Please retry."
		return http.StatusServiceUnavailable, b, true
	}
	b.Error.Code, b.Error.Message = "InternalServerError", "The server encountered an internal error. Please retry the request."
	return http.StatusInternalServerError, b, false
}

// vaultMessage words the vault errors ARM meets (vault lifecycle) as
// Keyward's ARM surface says them; others by their kind.
func vaultMessage(e *vault.Error) string {
	switch {
	case e.Type == vault.Vaults && e.Kind == errs.NotFound:
		return fmt.Sprintf("Vault %s was not found.", e.Name)
	case e.Type == vault.Vaults && e.Kind == errs.DeletedNotFound:
		return fmt.Sprintf("Deleted vault %s was not found.", e.Name)
	case e.Reason == vault.ReasonVaultExists:
		return fmt.Sprintf("A vault named %s already exists.", e.Name)
	}
	return e.Error()
}

// ErrKind classifies an ARM error, so that handlers branch on what went
// wrong (errs.KindOf), never on the status it will be answered with.
func (e *armError) ErrKind() errs.Kind {
	switch e.status {
	case http.StatusNotFound:
		return errs.NotFound
	case http.StatusConflict:
		return errs.Conflict
	case http.StatusUnauthorized:
		return errs.Unauthorized
	case http.StatusForbidden:
		return errs.Forbidden
	case http.StatusServiceUnavailable:
		return errs.Unavailable
	}
	return errs.BadParameter
}

// IsConflict reports whether err is a management-plane conflict (the
// record already exists).
func IsConflict(err error) bool { return errs.KindOf(err) == errs.Conflict }
