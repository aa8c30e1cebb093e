package api

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/quorum"
)

// The tenant's quorum policy (docs/QUORUM.md), on the management host:
//
//	GET|PUT|DELETE https://management.{suffix}/providers/Keyward.Quorum/tenantPolicy?api-version=…
//
// It applies to every vault and pool of the caller's tenant that has no
// policy of its own. Like the directory, it is the tenant's: reading needs
// Keyward/directory/read and writing Keyward/directory/write on the tenant
// root scope (the tenant's directory administrators). A step of serveManagement (after authentication,
// api-version and throttling), answered in ARM's error shape.

const tenantPolicyPath = "/providers/keyward.quorum/tenantpolicy"

func isTenantPolicyPath(r *http.Request) bool {
	return strings.ToLower(strings.TrimSuffix(r.URL.Path, "/")) == tenantPolicyPath
}

// serveTenantPolicy answers the tenant policy's requests.
func (h *Handler) serveTenantPolicy(w http.ResponseWriter, r *http.Request, claims *identity.Claims) bool {
	ev := audit.EventFrom(r.Context())
	ev.Service = "management"
	ev.Caller.TenantID, ev.Caller.ObjectID, ev.Caller.AppID = claims.TenantID, claims.ObjectID, firstNonEmpty(claims.AZP, claims.AppID)
	var op string
	var action authz.Action
	switch r.Method {
	case http.MethodGet:
		op, action = "QuorumTenantPolicyGet", authz.DirectoryRead
	case http.MethodPut:
		op, action = "QuorumTenantPolicySet", authz.DirectoryWrite
	case http.MethodDelete:
		op, action = "QuorumTenantPolicyDelete", authz.DirectoryWrite
	default:
		ev.Operation = "QuorumTenantPolicy"
		writeJSON(w, http.StatusMethodNotAllowed, body("MethodNotAllowed", "The method is not allowed on this resource.", ""))
		return true
	}
	ev.Operation = op
	p := authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: ev.Caller.AppID,
		Delegated: claims.IDType == "user" || claims.Scope != ""}
	if d := h.authz.Authorize(p, action, authz.Scope{TenantID: claims.TenantID}); !d.Allowed {
		ev.Result, ev.Reason = audit.Denied, d.Reason+"; missing "+string(action)
		ev.ErrorCode = "AuthorizationFailed"
		writeJSON(w, http.StatusForbidden, body("AuthorizationFailed", "The client '"+claims.ObjectID+"' does not have authorization to perform action '"+string(action)+"' over scope '/'.", ""))
		return true
	}
	ev.Authz = "rbac"
	ctx := r.Context()
	scope := quorum.TenantScope(claims.TenantID)
	fail := func(err error) bool {
		status, b, _ := toWire(err)
		if b.Error.InnerError != nil {
			ev.ErrorCode = b.Error.Code + "/" + b.Error.InnerError.Code
		}
		b.Error.InnerError = nil // ARM's shape: code and message
		writeJSON(w, status, b)
		return true
	}
	if r.Method != http.MethodGet && h.divertTenantPolicy(w, r, op, scope, p) {
		return true
	}
	switch r.Method {
	case http.MethodGet:
		pol, err := h.quorum.Policy(ctx, scope)
		if err != nil {
			return fail(err)
		}
		if pol == nil {
			return fail(&quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNoPolicy, Msg: "The tenant has no quorum policy."})
		}
		writeJSON(w, http.StatusOK, pol)
	case http.MethodPut:
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
		if err != nil {
			return fail(badParam("The request body could not be read."))
		}
		pol, err := quorum.ParsePolicy(scope, raw)
		if err != nil {
			return fail(err)
		}
		if err := h.quorum.SetPolicy(ctx, pol); err != nil {
			return fail(err)
		}
		writeJSON(w, http.StatusOK, pol)
	case http.MethodDelete:
		if err := h.quorum.DeletePolicy(ctx, scope); err != nil {
			return fail(err)
		}
		writeJSON(w, http.StatusOK, map[string]string{"scope": scope})
	}
	return true
}

// divertTenantPolicy is the quorum step of the tenant policy's own changes:
// a tenant policy that names QuorumTenantPolicySet or
// QuorumTenantPolicyDelete protects itself (opt-in; a vault's always
// does). The request waits on the management host's tenant-level
// approvals; the approved one is replayed here, authorized again.
func (h *Handler) divertTenantPolicy(w http.ResponseWriter, r *http.Request, op, scope string, p authz.Principal) bool {
	ctx := r.Context()
	if h.quorum == nil || replaying(ctx) {
		return false
	}
	pol, err := h.quorum.Match(ctx, op, scope)
	if err != nil {
		h.quorumFail(w, r, "management", err)
		return true
	}
	if pol == nil {
		return false
	}
	body, err := h.quorumBody(w, r)
	if err != nil {
		h.quorumFail(w, r, "management", err)
		return true
	}
	req, err := h.submitTenant(r, pol, op, "tenantPolicy", "tenantpolicy", p, body)
	if err != nil {
		h.quorumFail(w, r, "management", err)
		return true
	}
	base := strings.TrimSuffix(h.cfg.ManagementResource(), "/") + "/providers/Keyward.Quorum/approvals/" + req.ID
	msg := fmt.Sprintf("Operation %s requires %d approval(s) under the tenant's quorum policy, which protects itself (the requester's own approval does not count). "+
		"Approval request %s was created and expires at %s; nothing was changed. An approver approves it with POST %s/approve?api-version=%s "+
		"or 'keyward approval approve %s --tenant-level'; once approved the change runs once, as the requester.",
		op, pol.Required, req.ID, req.Expires.Format(time.RFC3339), base, tenantPolicyAPIVersion, req.ID)
	w.Header().Set("Location", base+"?api-version="+tenantPolicyAPIVersion)
	audit.EventFrom(ctx).ErrorCode = "ApprovalRequired"
	writeJSON(w, http.StatusAccepted, approvalRequired{Error: wireErrorBody{Code: "ApprovalRequired", Message: msg}, Approval: h.approvalOut(req)})
	return true
}
