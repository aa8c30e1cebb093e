package keymgmtapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/keymgmt"
	"github.com/keyward/keyward/internal/storage"
)

// wireErrors is Vault's error body.
type wireErrors struct {
	Errors []string `json:"errors"`
}

// apiError is a failure decided in this package (a malformed body, a
// denied caller), already worded.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// reasons words the domain's reasons as Vault's messages do.
var reasons = map[string]string{
	keymgmt.ReasonInvalidName:        "invalid name: use 1 to 127 letters, digits and dashes",
	keymgmt.ReasonInvalidType:        "invalid key type: must be one of aes256-gcm96, rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384, ecdsa-p521",
	keymgmt.ReasonInvalidMinVersion:  "min_enabled_version must be between 0 and the key's latest version",
	keymgmt.ReasonDeletionNotAllowed: "deletion is not allowed for this key: set deletion_allowed to true first",
	keymgmt.ReasonKeyDistributed:     "the key is distributed to a KMS provider: remove its distributions first",
	keymgmt.ReasonKMSInUse:           "keys are distributed to this KMS provider: remove them first",
	keymgmt.ReasonBusy:               "another node is working on this distribution: retry shortly",
	keymgmt.ReasonInvalidProvider:    "invalid provider: must be one of azurekeyvault, awskms",
	keymgmt.ReasonInvalidCollection:  "key_collection is required",
	keymgmt.ReasonInvalidCredentials: "invalid credentials for this provider",
	keymgmt.ReasonProviderChange:     "the provider of a KMS provider cannot be changed",
	keymgmt.ReasonInvalidPurpose:     "invalid purpose: must be one or more of encrypt, decrypt, sign, verify, wrap, unwrap",
	keymgmt.ReasonInvalidProtection:  "invalid protection: must be hsm or software",
	keymgmt.ReasonUnsupported:        "the KMS provider does not support this key type, purpose or protection",
	keymgmt.ReasonExists:             "already exists with other settings",
}

// toWire is this surface's one error table: any error to Vault's status
// and {"errors":[…]}. Unknown errors are a generic 500 (the detail goes
// to the log); a missing object is Vault's 404 with an empty list, which
// Vault's client reads as "no secret".
func toWire(err error) (int, wireErrors, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, wireErrors{Errors: []string{ae.msg}}, true
	}
	var pe *keymgmt.ProviderError
	if errors.As(err, &pe) {
		// The target's own words (an Azure or AWS error): no secret is
		// in them, and the operator needs them.
		return http.StatusBadGateway, wireErrors{Errors: []string{"the KMS provider " + pe.KMS + " failed: " + clip(pe.Err.Error(), 600)}}, true
	}
	switch {
	case errors.Is(err, barrier.ErrSealed):
		return http.StatusServiceUnavailable, wireErrors{Errors: []string{"Vault is sealed"}}, true
	case errors.Is(err, storage.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, wireErrors{Errors: []string{"storage is temporarily unavailable; retry"}}, true
	}
	var de *errs.Error
	if errors.As(err, &de) {
		msg := reasons[de.Reason]
		switch de.Kind {
		case errs.NotFound, errs.DeletedNotFound:
			return http.StatusNotFound, wireErrors{Errors: []string{}}, true
		case errs.BadParameter, errs.Conflict:
			if msg == "" {
				msg = "invalid request"
			}
			return http.StatusBadRequest, wireErrors{Errors: []string{msg}}, true
		case errs.Forbidden:
			return http.StatusForbidden, wireErrors{Errors: []string{"permission denied"}}, true
		case errs.Unavailable, errs.Throttled:
			return http.StatusServiceUnavailable, wireErrors{Errors: []string{"temporarily unavailable; retry"}}, true
		case errs.Sealed:
			return http.StatusServiceUnavailable, wireErrors{Errors: []string{"Vault is sealed"}}, true
		}
	}
	return http.StatusInternalServerError, wireErrors{Errors: []string{"internal error"}}, false
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
