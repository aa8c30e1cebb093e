package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/mhsm"
)

// The managed HSM pool surface (AZURE-API.md §5): {pool}.managedhsm.{suffix}.
// It is the data-plane pipeline with three differences: the token audience
// and challenge resource are https://managedhsm.{suffix}[:port]; the pool's
// local RBAC authorizes (never Azure RBAC on vaults); a pool that is not
// activated serves no key operation. The Keys API routes and handlers are
// the vault's (keyRoutes), with the pool's data actions.

// ManagedHSMResource is the token audience of pools and their challenge
// resource: https://managedhsm.{suffix}[:port].
func (c Config) ManagedHSMResource() string {
	return "https://" + c.hostPort("managedhsm."+c.DNSSuffix)
}

// poolKeyActions maps the Keys API's vault actions to the pool's.
var poolKeyActions = map[authz.Action]authz.Action{
	authz.KeysRead: authz.HSMKeysRead, authz.KeysCreate: authz.HSMKeysCreate, authz.KeysImport: authz.HSMKeysImport,
	authz.KeysUpdate: authz.HSMKeysWrite, authz.KeysDelete: authz.HSMKeysDelete, authz.KeysBackup: authz.HSMKeysBackup,
	authz.KeysRestore: authz.HSMKeysRestore, authz.KeysRotate: authz.HSMKeysRotate, authz.KeysEncrypt: authz.HSMKeysEncrypt,
	authz.KeysDecrypt: authz.HSMKeysDecrypt, authz.KeysWrap: authz.HSMKeysWrap, authz.KeysUnwrap: authz.HSMKeysUnwrap,
	authz.KeysSign: authz.HSMKeysSign, authz.KeysVerify: authz.HSMKeysVerify, authz.KeysRelease: authz.HSMKeysRelease,
	authz.KeysRotationRead: authz.HSMKeysRead, authz.KeysRotationWrite: authz.HSMKeysWrite,
	authz.KeysRecover: authz.HSMDeletedKeysRecov, authz.KeysPurge: authz.HSMDeletedKeysPurge,
}

// poolRoutes is the pool surface: its own operations first (literal
// segments before the Keys API's parameters), then the Keys API.
func poolRoutes() []kwroute {
	const k = "keys"
	out := []kwroute{
		{Method: http.MethodPost, Pattern: "/rng", Op: "HSMGetRandomBytes", Object: "rng", Action: authz.HSMRNG, Handle: poolRNG},
		{Method: http.MethodGet, Pattern: "/settings", Op: "HSMSettingList", Object: "settings", Action: authz.HSMSettings, Handle: poolSettings},
		{Method: http.MethodGet, Pattern: "/settings/{setting}", Op: "HSMSettingGet", Object: "settings", Action: authz.HSMSettings, Handle: poolSetting},
		{Method: http.MethodPatch, Pattern: "/settings/{setting}", Op: "HSMSettingUpdate", Object: "settings", Action: authz.HSMSettings, Handle: poolSetSetting},
	}
	out = append(out, poolSecurityDomainRoutes()...)
	out = append(out, poolQuorumRoutes()...)
	out = append(out, poolBackupRoutes()...)
	for _, scope := range []string{"", "/keys", "/keys/{key}"} {
		out = append(out, poolRBACRoutes(scope)...)
	}
	for _, rt := range keyRoutes() {
		a, ok := poolKeyActions[rt.Action]
		if !ok {
			continue // an operation pools do not offer
		}
		if rt.Pattern == "/deletedkeys" || rt.Pattern == "/deletedkeys/{name}" && rt.Method == http.MethodGet {
			a = authz.HSMDeletedKeysRead
		}
		rt.Action, rt.Object = a, k
		out = append(out, rt)
	}
	return out
}

// poolOpen reports whether a route works on a pool that is not activated:
// the security domain, role management, settings.
func poolOpen(rt *kwroute) bool {
	return rt.Object == "securitydomain" || rt.Object == "rbac" || rt.Object == "settings" || rt.Object == "approvals" || rt.Object == "quorumpolicy"
}

// Pools is the pool domain as the surface uses it (*mhsm.Service).
type Pools = *mhsm.Service

func (h *Handler) servePool(w http.ResponseWriter, r *http.Request, name string, ev *audit.Event) {
	if h.seal.Sealed() {
		h.writeErr(w, r, barrier.ErrSealed)
		return
	}
	if h.pools == nil {
		h.writeErr(w, r, &apiError{status: http.StatusNotFound, code: "NotFound", message: "Managed HSM pools are not available on this Keyward instance."})
		return
	}
	p, err := h.pools.Get(name)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	setHeader(w.Header(), hdrRegion, p.Location)
	setHeader(w.Header(), hdrServiceVersion, "keyward/1")
	rt, params, allowed := h.poolRoutes.Match(r.Method, r.URL.EscapedPath())
	if rt != nil {
		ev.Operation = rt.Op
	}
	// 1. Authentication, before anything about the request is looked at.
	claims, reason, err := h.authenticatePool(r, p)
	if err != nil {
		ev.Reason = reason
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s%s", resource="%s"`,
			h.authority.BaseURL(), p.TenantID, h.cfg.ManagedHSMResource()))
		msg := "Request is missing a Bearer or PoP token."
		if !errors.Is(err, errNoToken) {
			msg = "The bearer token is invalid: " + reason + "."
		}
		h.writeErr(w, r, &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: msg})
		return
	}
	ev.Caller.TenantID, ev.Caller.ObjectID, ev.Caller.AppID = claims.TenantID, claims.ObjectID, firstNonEmpty(claims.AZP, claims.AppID)
	// 2. api-version.
	q := r.URL.Query()
	apiVersion := q.Get("api-version")
	ev.APIVersion = clipString(apiVersion, 32)
	if _, known := apiVersionOrder[apiVersion]; !known {
		h.writeErr(w, r, badParam("The specified version (%s) is not recognized. Consider using the latest supported version (%s).", clipString(apiVersion, 32), latestVersion))
		return
	}
	// 3. Route.
	if rt == nil {
		if allowed {
			h.writeErr(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", message: "The requested method is not allowed on this resource."})
			return
		}
		h.writeErr(w, r, &apiError{status: http.StatusNotFound, code: "NotFound", message: "The requested resource was not found."})
		return
	}
	rq := &request{
		h: h, w: w, r: r, ev: ev, vault: &p.Container, pool: p, params: params, query: q, apiVersion: apiVersion,
		base: "https://" + r.Host,
		principal: authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID,
			AppID: firstNonEmpty(claims.AZP, claims.AppID)},
	}
	key := ""
	if rt.Object == "keys" {
		key = params["name"]
		if key != "" {
			ev.ObjectID = rq.objectURL("keys", key, params["version"])
		}
	}
	if rt.Object == "rbac" {
		key = params["key"]
	}
	// 4. Local RBAC: the pool's own assignments, nothing else. The
	// approval routes have none: the request's approvers decide
	// (quorum.go).
	ok, err := rt.Action == "", error(nil)
	if !ok {
		ok, err = h.pools.Authorize(r.Context(), p, h.poolPrincipals(claims), rt.Action, key)
	}
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	if !ok {
		ev.Result = audit.Denied
		ev.Reason = "managed HSM local RBAC: missing " + string(rt.Action)
		h.writeErr(w, r, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "AccessDenied",
			message: fmt.Sprintf("Caller is not authorized to perform action on resource.\r\nIf role assignments were changed recently, please observe propagation time.\r\nCaller: appid=%s;oid=%s\r\nAction: '%s'\r\nResource: '%s'\r\nManaged HSM: %s;location=%s\r\n",
				rq.principal.AppID, rq.principal.ObjectID, rt.Action, poolResource(rt, key), p.Name, p.Location)})
		return
	}
	// 5. Activation.
	if !p.Active() && !poolOpen(rt) {
		h.writeErr(w, r, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "HSMNotActivated",
			message: "The managed HSM is not activated. Download its security domain (POST /securitydomain/download) to activate it."})
		return
	}
	if h.throttle != nil {
		if d := h.throttle.Allow(p.Container.ID, rq.principal.TenantID, rq.principal.ObjectID); !d.Allowed {
			h.throttled(w, r, d)
			return
		}
	}
	// 6. Quorum approval (quorum.go).
	if h.divertPool(rq, rt) {
		return
	}
	if err := rt.Handle(rq); err != nil {
		h.writeErr(w, r, err)
	}
}

func poolResource(rt *kwroute, key string) string {
	if key != "" {
		return "/keys/" + strings.ToLower(key)
	}
	if rt.Object == "keys" {
		return "/keys"
	}
	return "/"
}

// poolPrincipals is the caller and the groups it belongs to.
// poolPrincipals are the caller and every group it belongs to, nested
// groups included (from Deps.Groups, else the authorization index, as the
// vaults' RBAC decides), for pool role assignments.
func (h *Handler) poolPrincipals(c *identity.Claims) []string {
	out := []string{c.ObjectID}
	if h.groups != nil {
		return append(out, h.groups(c.TenantID, c.ObjectID)...)
	}
	if e, ok := h.authz.(*authz.Engine); ok {
		out = append(out, e.Index().MemberOf(c.TenantID, c.ObjectID)...)
	}
	return out
}

func (h *Handler) authenticatePool(r *http.Request, p *mhsm.Pool) (*identity.Claims, string, error) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, "no bearer token", errNoToken
	}
	aud := h.cfg.ManagedHSMResource()
	claims, reason, err := h.authority.Validate(strings.TrimSpace(tok), []string{aud, aud + "/"})
	if err != nil {
		return nil, reason, err
	}
	if !strings.EqualFold(claims.TenantID, p.TenantID) {
		return nil, "token is for another tenant", identity.ErrInvalidToken
	}
	return claims, "", nil
}

// --- rng ---

type rngBody struct {
	Count *int `json:"count"`
}

func poolRNG(rq *request) error {
	var b rngBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Count == nil || *b.Count < 1 || *b.Count > 128 {
		return badParam("count must be between 1 and 128.")
	}
	buf := make([]byte, *b.Count)
	rand.Read(buf)
	return rq.reply(http.StatusOK, map[string]b64url{"value": buf})
}

// --- settings ---

func poolSettings(rq *request) error {
	s, err := rq.h.pools.Settings(rq.r.Context(), rq.pool)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, map[string]any{"settings": s})
}

func poolSetting(rq *request) error {
	s, err := rq.h.pools.Setting(rq.r.Context(), rq.pool, rq.params["setting"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, s)
}

func poolSetSetting(rq *request) error {
	var b struct {
		Value *string `json:"value"`
	}
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Value == nil {
		return badParam("value is required.")
	}
	s, err := rq.h.pools.SetSetting(rq.r.Context(), rq.pool, rq.params["setting"], *b.Value)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, s)
}

// poolError words mhsm's errors (one row per kind, in toWire).
func poolError(e *mhsm.Error) (int, wireError) {
	switch e.Kind {
	case errs.NotFound:
		return http.StatusNotFound, body(map[bool]string{true: "NotFound", false: e.Code}[e.Code == "PoolNotFound"], e.Msg, "")
	case errs.Conflict:
		return http.StatusConflict, body("Conflict", e.Msg, e.Code)
	case errs.BadParameter:
		return http.StatusBadRequest, body("BadParameter", e.Msg, e.Code)
	case errs.Forbidden:
		return http.StatusForbidden, body("Forbidden", e.Msg, e.Code)
	}
	return http.StatusInternalServerError, body("InternalServerError", "The server encountered an internal error.", "")
}
