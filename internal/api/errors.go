package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"syscall"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
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
// that turns domain errors into Azure's codes (STYLE.md §3). Errors it does
// not know become a generic 500; their detail goes to the log, not the
// client.
func toWire(err error) (int, wireError, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, body(ae.code, ae.message, ae.inner), true
	}
	var ve *vault.Error
	if errors.As(err, &ve) {
		switch ve.Kind {
		case vault.NotFound:
			return http.StatusNotFound, body(notFoundCode(ve.Type), ve.Msg, ve.Inner), true
		case vault.DeletedNotFound:
			return http.StatusNotFound, body(notFoundCode(ve.Type), ve.Msg, ve.Inner), true
		case vault.VaultNotFound:
			return http.StatusNotFound, body("VaultNotFound", ve.Msg, ""), true
		case vault.Conflict:
			return http.StatusConflict, body("Conflict", ve.Msg, ve.Inner), true
		case vault.BadParameter:
			return http.StatusBadRequest, body("BadParameter", ve.Msg, ve.Inner), true
		case vault.Forbidden:
			return http.StatusForbidden, body("Forbidden", ve.Msg, ve.Inner), true
		}
	}
	switch {
	case errors.Is(err, barrier.ErrSealed):
		return http.StatusServiceUnavailable, body("ServiceUnavailable", "Keyward is sealed. An operator must unseal it (keyward operator unseal) before it can serve requests.", "Sealed"), true
	case errors.Is(err, audit.ErrUnavailable):
		return http.StatusServiceUnavailable, body("ServiceUnavailable", "The audit log is temporarily unavailable. Please retry.", "AuditUnavailable"), true
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ENOSPC):
		// A full disk is temporary for the client: retry after space is freed.
		return http.StatusServiceUnavailable, body("ServiceUnavailable", "The storage backend is temporarily unavailable. Please retry.", ""), true
	}
	return http.StatusInternalServerError, body("InternalServerError", "The server encountered an internal error. Please retry the request.", ""), false
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
	if v != nil {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			status = http.StatusInternalServerError
			raw, _ = json.Marshal(body("InternalServerError", "The server encountered an internal error.", ""))
		}
	}
	h := w.Header()
	if raw != nil {
		setHeader(h, hdrContentType, "application/json; charset=utf-8")
	}
	setHeader(h, hdrContentLength, strconv.Itoa(len(raw)))
	w.WriteHeader(status)
	w.Write(raw)
}
