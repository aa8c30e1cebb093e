package api

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/route"
)

// Operator endpoints, shaped after Vault's sys API:
//
//	GET  /sys/seal-status
//	POST /sys/init               {"secret_shares":5,"secret_threshold":3}
//	POST /sys/unseal             {"key":"<share>"} or {"reset":true}
//	POST /sys/seal               (bearer token for the management audience)
//	POST /sys/rotate-signing-key (bearer token for the management audience)
//	GET  /sys/release-signing-keys          (public: the release signers' JWKS)
//	POST /sys/rotate-release-signing-key    (bearer token for the management audience)
//	POST /sys/seal-migrate       {"to":"pkcs11"|"shamir","keys":["<share>",…]} (bearer token)
//	GET  /sys/audit/sinks        (bearer token; quorum_audit_sinks.go)
//	POST /sys/audit/sinks/remove {"sink":"<identity>"} (bearer token)

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

// sysHandler serves one operator endpoint.
type sysHandler = func(h *Handler, rq *request) error

// sysRoutes are the operator endpoints. A route with an Action runs the
// pipeline's steps for it before its handler: the seal gate, authenticate
// (a bearer token for the management audience, as ARM's; bearer) and
// authorize (the action on the operator tenant; authorizeOperator).
var sysRoutes = route.Compile([]route.Route[sysHandler, authz.Action]{
	{Method: http.MethodGet, Pattern: "/sys/seal-status", Op: "SealStatus", Handle: sysSealStatus},
	{Method: http.MethodPost, Pattern: "/sys/init", Op: "Initialize", Handle: sysInit},
	{Method: http.MethodPost, Pattern: "/sys/unseal", Op: "Unseal", Handle: sysUnseal},
	{Method: http.MethodPost, Pattern: "/sys/seal", Op: "Seal", Action: authz.SysSeal, Handle: sysSeal},
	{Method: http.MethodPost, Pattern: "/sys/rotate-signing-key", Op: "RotateSigningKey", Action: authz.SysRotateSigning, Handle: sysRotateSigningKey},
	{Method: http.MethodGet, Pattern: "/sys/release-signing-keys", Op: "ReleaseSigningKeys", Handle: sysReleaseSigningKeys},
	{Method: http.MethodPost, Pattern: "/sys/rotate-release-signing-key", Op: "RotateReleaseSigningKey", Action: authz.SysRotateSigning, Handle: sysRotateReleaseSigningKey},
	{Method: http.MethodPost, Pattern: "/sys/seal-migrate", Op: "SealMigrate", Action: authz.SysSeal, Handle: sysSealMigrate},
	{Method: http.MethodPost, Pattern: "/sys/quorum/override", Op: "QuorumBreakGlass", Action: authz.SysSeal, Handle: sysQuorumOverride},
	{Method: http.MethodGet, Pattern: "/sys/audit/sinks", Op: "AuditSinkList", Action: authz.SysSeal, Handle: sysAuditSinks},
	{Method: http.MethodPost, Pattern: "/sys/audit/sinks/remove", Op: "AuditSinkRemove", Action: authz.SysSeal}, // routeSys: sysAuditSinkRemove
})

// SealMigrator is implemented by an Operator that can move its barrier
// between the shamir and pkcs11 seals.
type SealMigrator interface {
	MigrateSeal(ctx context.Context, to string, shares [][]byte) (barrier.Status, error)
}

type sealMigrateBody struct {
	To   string   `json:"to"`
	Keys []string `json:"keys"`
}

func sysSealMigrate(h *Handler, rq *request) error {
	m, ok := h.operator.(SealMigrator)
	if !ok {
		return badParam("Seal migration is not available.")
	}
	var b sealMigrateBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.To != "pkcs11" && b.To != "shamir" {
		return badParam("to must be pkcs11 or shamir.")
	}
	shares := make([][]byte, 0, len(b.Keys))
	defer func() {
		for _, s := range shares {
			clear(s)
		}
	}()
	for _, k := range b.Keys {
		s, err := decodeShare(k)
		if err != nil {
			return badParam("A share is not valid base64 or hex.")
		}
		shares = append(shares, s)
	}
	st, err := m.MigrateSeal(rq.r.Context(), b.To, shares)
	switch {
	case err == nil:
		writeJSON(rq.w, http.StatusOK, h.statusOut(st))
		return nil
	case errors.Is(err, barrier.ErrBadShares), errors.Is(err, barrier.ErrMalformedShare):
		return badParam("Seal migration failed: the shares given are not a threshold of this Keyward's unseal or recovery shares.")
	case errors.Is(err, barrier.ErrSealed):
		return err
	}
	return badParam("Seal migration failed: %s", err.Error())
}

func (h *Handler) serveSys(w http.ResponseWriter, r *http.Request, ev *audit.Event) {
	rq := &request{h: h, w: w, r: r, ev: ev}
	err := h.routeSys(rq)
	if err != nil {
		h.writeErr(w, r, err)
	}
}

func (h *Handler) routeSys(rq *request) error {
	rt, _, _ := sysRoutes.Match(rq.r.Method, rq.r.URL.Path)
	if rt == nil || rq.r.URL.Path != rt.Pattern {
		return &apiError{status: http.StatusNotFound, code: "NotFound", message: "The requested resource was not found."}
	}
	rq.ev.Operation = rt.Op
	if rt.Action != "" {
		if h.seal.Sealed() { // the seal gate
			return barrier.ErrSealed
		}
		claims, missing, reason := h.bearer(rq.r, h.cfg.ManagementResource())
		if claims == nil {
			rq.ev.Reason = reason
			if missing {
				return &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: "A bearer token for the management resource is required."}
			}
			return &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: "The bearer token is invalid: " + reason + "."}
		}
		if err := h.authorizeOperator(rq.ev, claims, rt.Action); err != nil {
			return err
		}
		if rt.Op == "Seal" && h.divertSeal(rq, claims) {
			return nil
		}
		if rt.Op == "AuditSinkRemove" {
			return h.sysAuditSinkRemove(rq, claims)
		}
	}
	return rt.Handle(h, rq)
}

func sysSealStatus(h *Handler, rq *request) error {
	st, err := h.operator.Status(rq.r.Context())
	if err == nil {
		writeJSON(rq.w, http.StatusOK, h.statusOut(st))
	}
	return err
}

func sysInit(h *Handler, rq *request) error {
	var b initBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	res, err := h.operator.Init(rq.r.Context(), b.SecretShares, b.SecretThreshold)
	if err != nil {
		if errors.Is(err, barrier.ErrAlreadyInitialized) {
			return badParam("Keyward is already initialized.")
		} else if !errors.Is(err, barrier.ErrSealed) {
			return badParam("Initialization failed: %s", err.Error())
		}
		return err
	}
	out := initResponse{Threshold: res.Threshold, TenantID: res.TenantID, ClientID: res.ClientID,
		ClientSecret: res.ClientSecret, Vault: res.Vault, Subscription: res.Subscription, ResourceGroup: res.ResourceGroup}
	for _, s := range res.Shares {
		out.KeysBase64 = append(out.KeysBase64, base64.StdEncoding.EncodeToString(s))
	}
	rq.w.Header().Set("Cache-Control", "no-store")
	writeJSON(rq.w, http.StatusOK, out)
	return nil
}

func sysUnseal(h *Handler, rq *request) error {
	ctx := rq.r.Context()
	var b unsealBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Reset {
		h.operator.ResetUnseal()
		return sysSealStatus(h, rq)
	}
	share, derr := decodeShare(b.Key)
	if derr != nil {
		return badParam("The unseal key is not valid base64 or hex.")
	}
	st, uerr := h.operator.Unseal(ctx, share)
	clear(share)
	switch {
	case uerr == nil:
		writeJSON(rq.w, http.StatusOK, h.statusOut(st))
		return nil
	case errors.Is(uerr, barrier.ErrBadShares):
		return badParam("Unseal failed: the shares given do not reconstruct the unseal key. Progress has been reset.")
	case errors.Is(uerr, barrier.ErrDuplicateShare):
		return badParam("This share was already given in the current unseal attempt.")
	case errors.Is(uerr, barrier.ErrMalformedShare):
		return badParam("The unseal key has the wrong length.")
	case errors.Is(uerr, barrier.ErrNotInitialized):
		return badParam("Keyward is not initialized.")
	case errors.Is(uerr, barrier.ErrRecoveryShares):
		return badParam("This Keyward is sealed by its HSM and unseals itself; recovery shares cannot unseal it (they authorize seal migration).")
	}
	return uerr
}

func sysSeal(h *Handler, rq *request) error {
	err := h.operator.Seal(rq.r.Context())
	if err == nil {
		writeJSON(rq.w, http.StatusNoContent, nil)
	}
	return err
}

func sysRotateSigningKey(h *Handler, rq *request) error {
	kid, err := h.authority.RotateSigningKey(rq.r.Context())
	if err == nil {
		writeJSON(rq.w, http.StatusOK, map[string]string{"kid": kid})
	}
	return err
}

// sysReleaseSigningKeys publishes the release signing keys ({"keys":[JWK
// with x5c, x5t#S256]}, the active one last), as a JWKS is: public, no
// token needed, so a workload can verify a release response's signer.
func sysReleaseSigningKeys(h *Handler, rq *request) error {
	ks, err := h.vaults.ReleaseSigners(rq.r.Context())
	if err != nil {
		return err
	}
	writeJSON(rq.w, http.StatusOK, jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey{}, ks...)})
	return nil
}

func sysRotateReleaseSigningKey(h *Handler, rq *request) error {
	kid, err := h.vaults.RotateReleaseSigner(rq.r.Context())
	if err == nil {
		writeJSON(rq.w, http.StatusOK, map[string]string{"kid": kid})
	}
	return err
}

// authorizeOperator is the authorization step of the operator endpoints:
// the authenticated caller's principal may perform action on its own
// tenant, which must be the operator tenant.
func (h *Handler) authorizeOperator(ev *audit.Event, claims *identity.Claims, action authz.Action) error {
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
