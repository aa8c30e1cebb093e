package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/certificates"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/quorum"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// wireError is Azure's error body (AZURE-API.md §1.5).
type wireError struct {
	Error wireErrorBody `json:"error"`
}

type wireErrorBody struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError *innerCode `json:"innererror,omitempty"`
}

type innerCode struct {
	Code string `json:"code"`
}

// apiError is an error that already knows its wire form. Handlers return
// it for failures decided in this package (bad parameters, auth).
type apiError struct {
	status  int
	code    string
	inner   string
	message string
}

func (e *apiError) Error() string { return e.message }

func badParam(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "BadParameter", message: fmt.Sprintf(format, args...)}
}

// toWire maps any error to its status and body. This is the only place
// that turns domain errors into Azure's codes and words (STYLE.md §3): the
// domain says what went wrong (an errs.Kind, the object's type and name, a
// reason), this table says it as Azure Key Vault does (AZURE-API.md §1.5).
// Errors it does not know become a generic 500; their detail goes to the
// log, not the client.
func toWire(err error) (int, wireError, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, body(ae.code, ae.message, ae.inner), true
	}
	var qe *quorum.Error
	if errors.As(err, &qe) {
		status, b := quorumError(qe)
		return status, b, true
	}
	var me *mhsm.Error
	if errors.As(err, &me) {
		status, b := poolError(me)
		return status, b, true
	}
	var ve *vault.Error
	if errors.As(err, &ve) {
		msg := ve.Msg
		if msg == "" {
			msg = vaultMessage(ve)
		}
		switch ve.Kind {
		case errs.NotFound, errs.DeletedNotFound:
			if ve.Type == vault.Vaults {
				return http.StatusNotFound, body("VaultNotFound", msg, ""), true
			}
			return http.StatusNotFound, body(notFoundCode(ve.Type), msg, ve.Inner), true
		case errs.Conflict:
			return http.StatusConflict, body("Conflict", msg, ve.Inner), true
		case errs.BadParameter:
			return http.StatusBadRequest, body("BadParameter", msg, ve.Inner), true
		case errs.Forbidden:
			return http.StatusForbidden, body("Forbidden", msg, ve.Inner), true
		}
	}
	switch {
	case errors.Is(err, barrier.ErrSealed), errs.KindOf(err) == errs.Sealed:
		return http.StatusServiceUnavailable, body("ServiceUnavailable", "Keyward is sealed. An operator must unseal it (keyward operator unseal) before it can serve requests.", "Sealed"), true
	case errors.Is(err, audit.ErrUnavailable):
		return http.StatusServiceUnavailable, body("ServiceUnavailable", "The audit log is temporarily unavailable. Please retry.", "AuditUnavailable"), true
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ENOSPC),
		errs.KindOf(err) == errs.Unavailable:
		// A full disk is temporary for the client: retry after space is freed.
		return http.StatusServiceUnavailable, body("ServiceUnavailable", "The storage backend is temporarily unavailable. Please retry.", ""), true
	}
	return http.StatusInternalServerError, body("InternalServerError", "The server encountered an internal error. Please retry the request.", ""), false
}

// vaultMessage words a vault error as Azure Key Vault does.
func vaultMessage(e *vault.Error) string {
	one, name := e.Type.Singular(), e.Name
	title := strings.ToUpper(one[:1]) + one[1:]
	switch {
	case e.Inner == "PendingCertificateNotFound":
		return fmt.Sprintf("Pending certificate not found: %s", name)
	case e.Reason == certificates.ReasonKeyMismatch:
		return "Public key from x509 certificate and key of this instance doesn't match."
	case e.Kind == errs.NotFound && e.Type == vault.Vaults:
		return fmt.Sprintf("Vault %s was not found.", name)
	case e.Kind == errs.DeletedNotFound && e.Type == vault.Vaults:
		return fmt.Sprintf("Deleted vault %s was not found.", name)
	case e.Reason == vault.ReasonVaultExists:
		return fmt.Sprintf("A vault named %s already exists.", name)
	case e.Reason == vault.ReasonExists:
		return fmt.Sprintf("%s %s already exists.", title, name)
	case e.Reason == vault.ReasonManagedAdd:
		return fmt.Sprintf("%s %s is managed by a certificate and cannot be changed directly.", title, name)
	case e.Reason == vault.ReasonNoProtector:
		return "The key is held by a key protector (" + e.Version + ") that is not configured on this Keyward."
	case e.Kind == errs.NotFound:
		if e.Version != "" {
			name += "/" + e.Version
		}
		return fmt.Sprintf("A %s with (name/id) %s was not found in this key vault. If you recently deleted this %s you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", one, name, one)
	case e.Kind == errs.DeletedNotFound:
		return fmt.Sprintf("Deleted %s not found: %s", title, name)
	case e.Inner == "ObjectIsDeletedButRecoverable":
		return fmt.Sprintf("%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the %s can only be recovered or purged.", title, name, one)
	case e.Inner == "KeyDisabled":
		return fmt.Sprintf("Operation %s is not allowed on a disabled key.", e.Op)
	case e.Inner == "KeyNotYetValid":
		return fmt.Sprintf("Operation %s is not allowed on a key that is not yet valid (nbf).", e.Op)
	case e.Inner == "KeyExpired":
		return fmt.Sprintf("Operation %s is not allowed on an expired key.", e.Op)
	case e.Inner == "KeyOperationNotAllowed":
		return fmt.Sprintf("Operation %s is not permitted on this key (key_ops).", e.Op)
	case e.Reason == vault.ReasonManagedRotate:
		return "The " + one + " is managed by a certificate; renew the certificate instead."
	case e.Inner == "SecretDisabled":
		return "Operation get is not allowed on a disabled secret."
	case e.Inner == "SecretNotYetValid":
		return "Operation get is not allowed on a secret that is not yet valid (nbf is in the future)."
	case e.Inner == "SecretExpired":
		return "Operation get is not allowed on an expired secret."
	case e.Reason == vault.ReasonManagedUpdate:
		return "The " + one + " is managed by a certificate; update the certificate instead."
	case e.Reason == vault.ReasonManagedDelete:
		return "The " + one + " is managed by a certificate; delete the certificate instead."
	case e.Reason == vault.ReasonManagedBackup:
		return "The " + one + " is managed by a certificate; back up the certificate instead."
	case e.Reason == vault.ReasonPurgeProtection:
		return "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed."
	case e.Reason == vault.ReasonInvalidBackup:
		return "Backup blob contains invalid data, or was made in another tenant."
	}
	return "The request is not valid for this " + one + "."
}

func notFoundCode(t vault.ObjectType) string {
	switch t {
	case vault.Keys:
		return "KeyNotFound"
	case vault.Certificates:
		return "CertificateNotFound"
	}
	return "SecretNotFound"
}

func body(code, msg, inner string) wireError {
	w := wireError{Error: wireErrorBody{Code: code, Message: msg}}
	if inner != "" {
		w.Error.InnerError = &innerCode{Code: inner}
	}
	return w
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var raw []byte
	switch x := v.(type) {
	case *secretBundle: // every secret get: by hand (secretjson.go)
		var ok bool
		if raw, ok = x.appendJSON(make([]byte, 0, x.sizeHint())); !ok {
			raw = nil
		}
	case verifyResult: // by hand (cryptojson.go; the other key operations: replyCrypto)
		raw = x.appendJSON(make([]byte, 0, 16))
	}
	if v != nil && raw == nil {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			status = http.StatusInternalServerError
			raw, _ = json.Marshal(body("InternalServerError", "The server encountered an internal error.", ""))
		}
	}
	writeJSONBytes(w, status, raw)
}

// writeJSONBytes writes raw (JSON, or nil for no body) as the response.
func writeJSONBytes(w http.ResponseWriter, status int, raw []byte) {
	h := w.Header()
	if raw != nil {
		h[hdrContentType] = hvJSON
	}
	setHeader(h, hdrContentLength, strconv.Itoa(len(raw)))
	w.WriteHeader(status)
	w.Write(raw)
}
