package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/quorum"
)

// Sealing under quorum (docs/QUORUM.md): POST /sys/seal is protected by the
// operator tenant's policy (the tenant whose administrators may seal). The
// request is a tenant-level one, decided on the management host. Once its
// quorum is met it cannot run like the others, which record their outcome
// after the operation: a sealed barrier can no longer be written. So it is
// finished before it runs: the request is recorded Executed, and the
// operation's audit event (requester, every approver) is accepted by the
// sink before that transaction commits; only then is the instance sealed.

// divertSeal is the quorum step of /sys/seal, after authentication and the
// operator's authorization; it reports whether it answered.
func (h *Handler) divertSeal(rq *request, claims *identity.Claims) bool {
	if h.quorum == nil || replaying(rq.r.Context()) {
		return false
	}
	ctx := rq.r.Context()
	pol, err := h.quorum.Match(ctx, "Seal", quorum.TenantScope(h.operator.OperatorTenant()))
	if err != nil {
		h.writeErr(rq.w, rq.r, err)
		return true
	}
	if pol == nil {
		return false
	}
	p := authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: rq.ev.Caller.AppID,
		Delegated: claims.IDType == "user" || claims.Scope != ""}
	// The body of /sys/seal means nothing: none is kept.
	req, err := h.submitTenant(rq.r, pol, "Seal", "sys/seal", "sys", p, nil)
	if err != nil {
		h.writeErr(rq.w, rq.r, err)
		return true
	}
	base := strings.TrimSuffix(h.cfg.ManagementResource(), "/") + "/providers/Keyward.Quorum/approvals/" + req.ID
	msg := fmt.Sprintf("Sealing Keyward requires %d approval(s) under the operator tenant's quorum policy (the requester's own approval does not count). "+
		"Approval request %s was created and expires at %s; Keyward was not sealed. An approver approves it with POST %s/approve?api-version=%s "+
		"or 'keyward approval approve %s --tenant-level'; once approved Keyward is sealed once, as the requester. "+
		"In an emergency, an operator holding a threshold of the unseal or recovery shares runs it at once with POST /sys/quorum/override (break-glass).",
		pol.Required, req.ID, req.Expires.Format(time.RFC3339), base, tenantPolicyAPIVersion, req.ID)
	rq.w.Header().Set("Location", base+"?api-version="+tenantPolicyAPIVersion)
	rq.ev.ErrorCode = "ApprovalRequired"
	writeJSON(rq.w, http.StatusAccepted, approvalRequired{Error: wireErrorBody{Code: "ApprovalRequired", Message: msg}, Approval: h.approvalOut(req)})
	return true
}

// runSealApproved runs an approved (or overridden) seal, or records an
// approved AuditSinkRemove (quorum_audit_sinks.go) the same way without
// sealing: the requester is
// authorized again; the request is finished (Executed) in a transaction
// whose pre-commit gate records ev, the operation's event; then the
// instance is sealed. If the event or the record cannot be written, the
// instance is not sealed.
func (h *Handler) runSealApproved(ctx context.Context, r *quorum.Request, ev *audit.Event, gate *auditGate, start time.Time) *quorum.Request {
	rp := r.Replay
	ev.Service, ev.Operation = "sys", r.Operation
	fail := func(status int) *quorum.Request {
		ev.Status, ev.Approval.Outcome = status, "failed"
		ev.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		if ev.Result == "" {
			ev.Result = resultFor(ev)
		}
		if !gate.close() {
			if err := h.audit.Record(gate.ctx, ev); err != nil {
				h.log.Error("audit of an approved operation failed", "approval", r.ID, "request_id", ev.RequestID)
			}
		}
		done, err := h.quorum.Finish(ctx, r.ID, status, false) // the gate is closed
		if err != nil {
			h.log.Error("recording an approved operation's outcome failed", "approval", r.ID, "error", err)
			r.State, r.Status = quorum.Failed, status
			return r
		}
		return done
	}
	if r.Operation != "Seal" && r.Operation != "AuditSinkRemove" || h.operator == nil {
		return fail(http.StatusInternalServerError)
	}
	// An approved AuditSinkRemove is a permission: recording it Executed
	// is the operation (the next unseal without the sink consumes it).
	okStatus := http.StatusNoContent
	if r.Operation == "AuditSinkRemove" {
		okStatus = http.StatusOK
	}
	claims := &identity.Claims{TenantID: r.TenantID, ObjectID: r.Requester, AppID: rp.AppID, AZP: rp.AppID}
	if err := h.authorizeOperator(ev, claims, authz.SysSeal); err != nil {
		ev.Reason = "requester no longer authorized: " + ev.Reason
		return fail(http.StatusForbidden)
	}
	ev.Authz = "rbac"
	// Finish before run: the event (outcome executed, status 204) is
	// recorded by the gate before the Executed record commits.
	ev.Status, ev.Result = okStatus, audit.Allowed
	ev.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	done, err := h.quorum.Finish(ctx, r.ID, okStatus, true)
	if err != nil {
		// Not sealed. The request stays Executing (never run again).
		h.log.Error("recording an approved seal before sealing failed; not sealed", "approval", r.ID, "error", err)
		ev.Status, ev.Result, ev.Approval.Outcome = http.StatusServiceUnavailable, audit.Failed, "failed"
		if !gate.close() {
			if err := h.audit.Record(gate.ctx, ev); err != nil {
				h.log.Error("audit of an approved operation failed", "approval", r.ID, "request_id", ev.RequestID)
			}
		}
		r.State, r.Status = quorum.Failed, http.StatusServiceUnavailable
		return r
	}
	if !gate.close() {
		// The commit recorded it (Finish wrote): only a gate that did not
		// run gets here; record it before sealing all the same.
		if err := h.audit.Record(gate.ctx, ev); err != nil {
			h.log.Error("audit of an approved seal failed; not sealed", "approval", r.ID, "request_id", ev.RequestID)
			return done
		}
	}
	if r.Operation != "Seal" {
		return done
	}
	if err := h.operator.Seal(context.WithoutCancel(ctx)); err != nil {
		h.log.Error("sealing after an approved seal request failed", "approval", r.ID, "error", err)
	}
	return done
}
