package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/quorum"
)

// Tenant-level approvals (docs/QUORUM.md): requests that act on no vault or
// pool (today: a keymgmt KMS provider's credentials) are held by the
// tenant's policy and decided on the management host:
//
//	GET  https://management.{suffix}/providers/Keyward.Quorum/approvals[/{id}]?api-version=2026-01-01
//	POST …/approvals/{id}/approve, …/approvals/{id}/reject
//	GET  …/approvals/{id}/result
//
// With the vault's rules: the request's approvers decide (no RBAC action),
// anyone else gets 404, the requester cannot approve.

const tenantApprovalsPath = "/providers/keyward.quorum/approvals"

func isTenantApprovalPath(r *http.Request) bool {
	p := strings.ToLower(strings.TrimSuffix(r.URL.Path, "/"))
	return p == tenantApprovalsPath || strings.HasPrefix(p, tenantApprovalsPath+"/")
}

// tenantOwned reports whether r is a tenant-level request of tenant.
func tenantOwned(r *quorum.Request, tenant string) bool {
	return r.Vault == "" && r.Pool == "" && strings.EqualFold(r.TenantID, tenant)
}

// serveTenantApprovals is the approval API of tenant-level requests.
func (h *Handler) serveTenantApprovals(w http.ResponseWriter, r *http.Request, claims *identity.Claims) {
	ev := audit.EventFrom(r.Context())
	ev.Service, ev.Authz = "management", "quorum"
	ev.Caller.TenantID, ev.Caller.ObjectID, ev.Caller.AppID = claims.TenantID, claims.ObjectID, firstNonEmpty(claims.AZP, claims.AppID)
	p := authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: ev.Caller.AppID,
		Delegated: claims.IDType == "user" || claims.Scope != ""}
	rest := strings.Trim(r.URL.Path[len(tenantApprovalsPath):], "/")
	parts := strings.Split(rest, "/")
	var id, verb string
	if rest != "" {
		id = parts[0]
		if len(parts) > 1 {
			verb = strings.ToLower(parts[1])
		}
		if len(parts) > 2 {
			verb = "?"
		}
	}
	rq := &request{h: h, w: w, r: r, ev: ev, principal: p, params: map[string]string{"id": id}, query: r.URL.Query(), apiVersion: r.URL.Query().Get("api-version")}
	var err error
	switch {
	case id == "" && r.Method == http.MethodGet:
		ev.Operation = "ApprovalList"
		err = h.listTenantApprovals(rq)
	case id != "" && verb == "" && r.Method == http.MethodGet:
		ev.Operation = "ApprovalGet"
		var a *quorum.Request
		if a, err = h.tenantApproval(rq, id); err == nil {
			writeJSON(w, http.StatusOK, h.approvalOut(a))
		}
	case (verb == "approve" || verb == "reject") && r.Method == http.MethodPost:
		ev.Operation = "ApprovalApprove"
		if verb == "reject" {
			ev.Operation = "ApprovalReject"
		}
		err = h.decide(rq, verb == "approve", h.tenantApproval)
	case verb == "operation" && r.Method == http.MethodGet:
		ev.Operation = "ApprovalOperationGet"
		err = h.approvalOperation(rq)
	case verb == "result" && r.Method == http.MethodGet:
		ev.Operation = "ApprovalResultGet"
		err = h.approvalResult(rq, h.tenantApproval)
	default:
		ev.Operation = "Approval"
		err = &apiError{status: http.StatusNotFound, code: "NotFound", message: "No such approval API route."}
	}
	if err != nil {
		h.writeErr(w, r, err)
	}
}

func (h *Handler) tenantApproval(rq *request, id string) (*quorum.Request, error) {
	r, err := h.quorum.Get(rq.r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !tenantOwned(r, rq.principal.TenantID) || !r.Involves(rq.principal.ObjectID, h.voterGroups(rq.principal.TenantID, rq.principal.ObjectID)) {
		return nil, &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNotFound, Msg: fmt.Sprintf("Approval request %s was not found.", clipString(id, 64))}
	}
	return r, nil
}

func (h *Handler) listTenantApprovals(rq *request) error {
	groups := h.voterGroups(rq.principal.TenantID, rq.principal.ObjectID)
	state := rq.query.Get("state")
	now := h.clock.Now()
	list, err := h.quorum.List(rq.r.Context(), func(r *quorum.Request) bool {
		return tenantOwned(r, rq.principal.TenantID) && r.Involves(rq.principal.ObjectID, groups) &&
			(state == "" || strings.EqualFold(string(r.Effective(now)), state))
	})
	if err != nil {
		return err
	}
	out := page[approvalWire]{Value: make([]approvalWire, 0, len(list))}
	for _, r := range list {
		out.Value = append(out.Value, h.approvalOut(r))
	}
	writeJSON(rq.w, http.StatusOK, out)
	return nil
}

// divertKeyMgmt is the quorum step of the keymgmt surface
// (keymgmtapi.Surface.Quorum): the tenant's policy; the pending answer is
// Vault-shaped: 202 with {"data":{"approval":…},"warnings":[…]}.
func (h *Handler) divertKeyMgmt(w http.ResponseWriter, r *http.Request, op string, p authz.Principal, body []byte) bool {
	if h.quorum == nil || replaying(r.Context()) {
		return false
	}
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	pol, err := h.quorum.Match(ctx, op, quorum.TenantScope(p.TenantID))
	if err != nil || pol == nil {
		if err != nil {
			h.log.Error("quorum policy lookup failed", "request_id", ev.RequestID, "error", err)
			writeJSON(w, http.StatusInternalServerError, map[string][]string{"errors": {"internal error"}})
			return true
		}
		return false
	}
	target := strings.TrimPrefix(r.URL.Path, "/v1/keymgmt/")
	req, err := h.submitTenant(r, pol, op, target, "keymgmt", p, body)
	if err != nil {
		h.log.Error("storing an approval request failed", "request_id", ev.RequestID, "error", err)
		writeJSON(w, http.StatusInternalServerError, map[string][]string{"errors": {"internal error"}})
		return true
	}
	base := strings.TrimSuffix(h.cfg.ManagementResource(), "/") + "/providers/Keyward.Quorum/approvals/" + req.ID
	msg := fmt.Sprintf("ApprovalRequired: operation %s on %s requires %d approval(s) under the tenant's quorum policy (the requester's own does not count). "+
		"Approval request %s was created and expires at %s; nothing was changed. An approver approves it with POST %s/approve?api-version=%s; "+
		"once approved the write runs once, as the requester.", op, target, pol.Required, req.ID, req.Expires.Format(time.RFC3339), base, tenantPolicyAPIVersion)
	w.Header().Set("Location", base+"?api-version="+tenantPolicyAPIVersion)
	ev.ErrorCode = "ApprovalRequired"
	writeJSON(w, http.StatusAccepted, map[string]any{"data": map[string]any{"approval": h.approvalOut(req)}, "warnings": []string{msg}})
	return true
}

// tenantPolicyAPIVersion is the api-version of Keyward.Quorum's routes.
const tenantPolicyAPIVersion = "2026-01-01"

// submitTenant stores r as a tenant-level approval request under pol and
// sets the audit event of the diverted request.
func (h *Handler) submitTenant(r *http.Request, pol *quorum.Policy, op, target, surface string, p authz.Principal, body []byte) (*quorum.Request, error) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	req := &quorum.Request{ID: quorum.NewID(), TenantID: p.TenantID, Requester: p.ObjectID, Operation: op, Target: clipString(target, 512),
		Replay: quorum.Replay{Surface: surface, Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Host: r.Host,
			Body: body, AppID: p.AppID, Delegated: p.Delegated, IP: ev.Caller.IP}}
	ev.Status, ev.Reason = http.StatusAccepted, "approval required"
	ev.Approval = &audit.Approval{ID: req.ID, Operation: op, Requester: strings.ToLower(p.ObjectID), Outcome: "pending"}
	if err := h.quorum.Submit(ctx, pol, req); err != nil {
		ev.Status, ev.Reason, ev.Approval = 0, "", nil
		return nil, err
	}
	return req, nil
}

// divertARMTenant is the quorum step of an ARM role assignment above a
// vault's scope (subscription, resource group, root): the tenant's policy
// (RoleAssignmentCreate); decided on the management host. The pending
// answer is ARM's error shape with status 202, as for a vault's.
func (h *Handler) divertARMTenant(w http.ResponseWriter, r *http.Request, op string, p authz.Principal) bool {
	ctx := r.Context()
	pol, err := h.quorum.Match(ctx, op, quorum.TenantScope(p.TenantID))
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
	target := strings.TrimPrefix(r.URL.Path, "/")
	req, err := h.submitTenant(r, pol, op, target, "management", p, body)
	if err != nil {
		h.quorumFail(w, r, "management", err)
		return true
	}
	base := strings.TrimSuffix(h.cfg.ManagementResource(), "/") + "/providers/Keyward.Quorum/approvals/" + req.ID
	msg := fmt.Sprintf("Operation %s on %s requires %d approval(s) under the tenant's quorum policy (the requester's own approval does not count). "+
		"Approval request %s was created and expires at %s; nothing was changed. An approver approves it with POST %s/approve?api-version=%s; "+
		"once approved the operation runs once, as the requester.", op, clipString(target, 512), pol.Required, req.ID, req.Expires.Format(time.RFC3339), base, tenantPolicyAPIVersion)
	loc := base
	if op == "DeletedVaultPurge" || op == "ManagedHsmDelete" || op == "DeletedManagedHsmPurge" {
		// The SDK's poller takes the 202 as accepted and polls Location:
		// point it at the operation's status, not the request's record.
		loc += "/operation"
	}
	w.Header().Set("Location", loc+"?api-version="+tenantPolicyAPIVersion)
	audit.EventFrom(ctx).ErrorCode = "ApprovalRequired"
	writeJSON(w, http.StatusAccepted, approvalRequired{Error: wireErrorBody{Code: "ApprovalRequired", Message: msg}, Approval: h.approvalOut(req)})
	return true
}

// armTargetExists reports whether what an ARM request of op names exists:
// the deleted vault or pool of a purge (…/{name}/purge), the pool of a
// delete (…/managedHSMs/{name}).
func (h *Handler) armTargetExists(r *http.Request, op string) bool {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 2 {
		return false
	}
	var err error
	switch op {
	case "DeletedVaultPurge":
		_, err = h.vaults.DeletedVault(r.Context(), segs[len(segs)-2])
	case "DeletedManagedHsmPurge":
		if h.pools == nil {
			return false
		}
		_, err = h.pools.GetDeleted(segs[len(segs)-2])
	case "ManagedHsmDelete":
		if h.pools == nil {
			return false
		}
		_, err = h.pools.Get(segs[len(segs)-1])
	default:
		return false
	}
	return err == nil
}

// approvalOperation answers GET …/approvals/{id}/operation, the Location of
// an ARM long-running operation that waits for its approvers (a deleted
// vault's purge): as ARM's operation status, so the SDKs' pollers follow
// it. Pending or running: 202 with Retry-After; executed: 200; rejected,
// expired or failed: 409 with an ARM error. The body is the request.
func (h *Handler) approvalOperation(rq *request) error {
	a, err := h.tenantApproval(rq, rq.params["id"])
	if err != nil {
		return err
	}
	switch st := a.Effective(h.clock.Now()); st {
	case quorum.Pending, quorum.Executing:
		rq.w.Header().Set("Retry-After", "10")
		writeJSON(rq.w, http.StatusAccepted, h.approvalOut(a))
	case quorum.Executed, quorum.Overruled:
		writeJSON(rq.w, http.StatusOK, h.approvalOut(a))
	default:
		msg := fmt.Sprintf("Approval request %s of operation %s is %s; the operation did not run.", a.ID, a.Operation, st)
		if st == quorum.Failed {
			msg = fmt.Sprintf("Approval request %s of operation %s was approved; the operation ran and failed with status %d.", a.ID, a.Operation, a.Status)
		}
		return &apiError{status: http.StatusConflict, code: "Approval" + string(st), message: msg}
	}
	return nil
}
