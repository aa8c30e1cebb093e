package api

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
)

// Operator endpoints, shaped after Vault's sys API:
//
//	GET  /sys/seal-status
//	POST /sys/init               {"secret_shares":5,"secret_threshold":3}
//	POST /sys/unseal             {"key":"<share>"} or {"reset":true}
//	POST /sys/seal               (bearer token for the management audience)
//	POST /sys/rotate-signing-key (bearer token for the management audience)

type sealStatusWire struct {
	// ManagementResource is the audience operator commands request tokens for.
	ManagementResource string `json:"management_resource"`
	Type               string `json:"type,omitempty"`
	Initialized        bool   `json:"initialized"`
	Sealed             bool   `json:"sealed"`
	Threshold          int    `json:"t"`
	Shares             int    `json:"n"`
	Progress           int    `json:"progress"`
}

func (h *Handler) statusOut(s barrier.Status) sealStatusWire {
	return sealStatusWire{ManagementResource: h.cfg.ManagementResource(), Type: s.Type, Initialized: s.Initialized, Sealed: s.Sealed,
		Threshold: s.Threshold, Shares: s.Shares, Progress: s.Progress}
}

type initBody struct {
	SecretShares    int `json:"secret_shares"`
	SecretThreshold int `json:"secret_threshold"`
}

type initResponse struct {
	KeysBase64    []string `json:"keys_base64"`
	Threshold     int      `json:"threshold"`
	TenantID      string   `json:"tenant_id"`
	ClientID      string   `json:"client_id"`
	ClientSecret  string   `json:"client_secret"`
	Vault         string   `json:"vault"`
	Subscription  string   `json:"subscription_id"`
	ResourceGroup string   `json:"resource_group"`
}

type unsealBody struct {
	Key   string `json:"key"`
	Reset bool   `json:"reset"`
}

func (h *Handler) serveSys(w http.ResponseWriter, r *http.Request, ev *audit.Event) {
	ctx := r.Context()
	rq := &request{h: h, w: w, r: r, ev: ev}
	op := strings.TrimPrefix(r.URL.Path, "/sys/")
	var err error
	switch {
	case op == "seal-status" && r.Method == http.MethodGet:
		ev.Operation = "SealStatus"
		var st barrier.Status
		if st, err = h.operator.Status(ctx); err == nil {
			writeJSON(w, http.StatusOK, h.statusOut(st))
		}
	case op == "init" && r.Method == http.MethodPost:
		ev.Operation = "Initialize"
		var b initBody
		if err = rq.decode(&b); err != nil {
			break
		}
		var res *InitResult
		if res, err = h.operator.Init(ctx, b.SecretShares, b.SecretThreshold); err != nil {
			if errors.Is(err, barrier.ErrAlreadyInitialized) {
				err = badParam("Keyward is already initialized.")
			} else if !errors.Is(err, barrier.ErrSealed) {
				err = badParam("Initialization failed: %s", err.Error())
			}
			break
		}
		out := initResponse{Threshold: res.Threshold, TenantID: res.TenantID, ClientID: res.ClientID,
			ClientSecret: res.ClientSecret, Vault: res.Vault, Subscription: res.Subscription, ResourceGroup: res.ResourceGroup}
		for _, s := range res.Shares {
			out.KeysBase64 = append(out.KeysBase64, base64.StdEncoding.EncodeToString(s))
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, out)
	case op == "unseal" && r.Method == http.MethodPost:
		ev.Operation = "Unseal"
		var b unsealBody
		if err = rq.decode(&b); err != nil {
			break
		}
		if b.Reset {
			h.operator.ResetUnseal()
			var st barrier.Status
			if st, err = h.operator.Status(ctx); err == nil {
				writeJSON(w, http.StatusOK, h.statusOut(st))
			}
			break
		}
		share, derr := decodeShare(b.Key)
		if derr != nil {
			err = badParam("The unseal key is not valid base64 or hex.")
			break
		}
		st, uerr := h.operator.Unseal(ctx, share)
		clear(share)
		switch {
		case uerr == nil:
			writeJSON(w, http.StatusOK, h.statusOut(st))
		case errors.Is(uerr, barrier.ErrBadShares):
			err = badParam("Unseal failed: the shares given do not reconstruct the unseal key. Progress has been reset.")
		case errors.Is(uerr, barrier.ErrDuplicateShare):
			err = badParam("This share was already given in the current unseal attempt.")
		case errors.Is(uerr, barrier.ErrMalformedShare):
			err = badParam("The unseal key has the wrong length.")
		case errors.Is(uerr, barrier.ErrNotInitialized):
			err = badParam("Keyward is not initialized.")
		default:
			err = uerr
		}
	case op == "seal" && r.Method == http.MethodPost:
		ev.Operation = "Seal"
		if err = h.authorizeOperator(r, ev, authz.SysSeal); err == nil {
			if err = h.operator.Seal(ctx); err == nil {
				writeJSON(w, http.StatusNoContent, nil)
			}
		}
	case op == "rotate-signing-key" && r.Method == http.MethodPost:
		ev.Operation = "RotateSigningKey"
		if h.seal.Sealed() {
			err = barrier.ErrSealed
			break
		}
		if err = h.authorizeOperator(r, ev, authz.SysRotateSigning); err == nil {
			var kid string
			if kid, err = h.authority.RotateSigningKey(ctx); err == nil {
				writeJSON(w, http.StatusOK, map[string]string{"kid": kid})
			}
		}
	default:
		err = &apiError{status: http.StatusNotFound, code: "NotFound", message: "The requested resource was not found."}
	}
	if err != nil {
		h.writeErr(w, r, err)
	}
}

// authorizeOperator checks a management-audience bearer token and asks the
// authorizer whether its principal may perform action on its own tenant.
func (h *Handler) authorizeOperator(r *http.Request, ev *audit.Event, action authz.Action) error {
	if h.seal.Sealed() {
		return barrier.ErrSealed
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		ev.Reason = "no bearer token"
		return &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: "A bearer token for the management resource is required."}
	}
	mr := h.cfg.ManagementResource()
	claims, reason, err := h.authority.Validate(strings.TrimSpace(tok), []string{mr, strings.TrimSuffix(mr, "/")})
	if err != nil {
		ev.Reason = reason
		return &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: "The bearer token is invalid: " + reason + "."}
	}
	ev.Caller.TenantID, ev.Caller.ObjectID, ev.Caller.AppID = claims.TenantID, claims.ObjectID, firstNonEmpty(claims.AZP, claims.AppID)
	p := authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: ev.Caller.AppID}
	// Sealing and key rotation act on the whole instance: only the
	// operator tenant's administrators may, never another tenant's.
	scope := authz.Scope{TenantID: h.operator.OperatorTenant()}
	if !strings.EqualFold(claims.TenantID, scope.TenantID) {
		ev.Reason = "caller is not in the operator tenant"
		ev.Result = audit.Denied
		return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "ForbiddenByRbac",
			message: "Caller is not authorized to perform action '" + string(action) + "' on this Keyward instance."}
	}
	if d := h.authz.Authorize(p, action, scope); !d.Allowed {
		ev.Reason = d.Reason
		ev.Result = audit.Denied
		return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "ForbiddenByRbac",
			message: "Caller is not authorized to perform action '" + string(action) + "'."}
	}
	return nil
}

func decodeShare(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return hex.DecodeString(s)
}
