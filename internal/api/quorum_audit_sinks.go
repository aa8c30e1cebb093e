package api

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/quorum"
)

// Audit sink removal under quorum (docs/QUORUM.md): the server records the
// audit sinks it runs with; an unseal that finds one gone is a removal,
// always audited, and refused when the operator tenant's policy protects
// AuditSinkRemove and no approved request for that sink is unused.
//
//	GET  /sys/audit/sinks          the known and the configured sinks' identities
//	POST /sys/audit/sinks/remove   {"sink":"<identity>"}: asks for the permission
//
// Both need Keyward/sys/seal/action in the operator tenant, as /sys/seal.

// AuditSinkInventory is the optional capability of the Operator to report
// the audit sinks' identities (*server.Server has it): the known ones, as
// the barrier records them, and those of the running configuration.
type AuditSinkInventory interface {
	AuditSinkIdentities(ctx context.Context) (known, configured []string, err error)
}

type auditSinksWire struct {
	Known      []string `json:"known"`
	Configured []string `json:"configured"`
	// RemovalRequiresApproval: the operator tenant's policy protects
	// AuditSinkRemove.
	RemovalRequiresApproval bool `json:"removalRequiresApproval"`
}

func (h *Handler) sinkInventory() (AuditSinkInventory, error) {
	inv, ok := h.operator.(AuditSinkInventory)
	if !ok {
		return nil, badParam("Audit sink inventory is not available.")
	}
	return inv, nil
}

func (h *Handler) sinkRemovalPolicy(ctx context.Context) (*quorum.Policy, error) {
	if h.quorum == nil {
		return nil, nil
	}
	return h.quorum.Match(ctx, "AuditSinkRemove", quorum.TenantScope(h.operator.OperatorTenant()))
}

func sysAuditSinks(h *Handler, rq *request) error {
	inv, err := h.sinkInventory()
	if err != nil {
		return err
	}
	ctx := rq.r.Context()
	known, configured, err := inv.AuditSinkIdentities(ctx)
	if err != nil {
		return err
	}
	pol, err := h.sinkRemovalPolicy(ctx)
	if err != nil {
		return err
	}
	out := auditSinksWire{Known: append([]string{}, known...), Configured: append([]string{}, configured...), RemovalRequiresApproval: pol != nil}
	writeJSON(rq.w, http.StatusOK, out)
	return nil
}

type sinkRemoveBody struct {
	Sink string `json:"sink"`
}

// sysAuditSinkRemove asks for the permission to remove a known audit sink.
// Under a policy naming AuditSinkRemove: a tenant-level approval request
// (202 ApprovalRequired, decided on the management host); once approved it
// is Executed, and the next unseal without the sink consumes it. Without
// such a policy no permission is needed: 200, nothing stored (the removal
// is audited at the unseal all the same).
func (h *Handler) sysAuditSinkRemove(rq *request, claims *identity.Claims) error {
	inv, err := h.sinkInventory()
	if err != nil {
		return err
	}
	body, err := h.quorumBody(rq.w, rq.r)
	if err != nil {
		return err
	}
	var b sinkRemoveBody
	if err := decodeJSON(body, &b); err != nil {
		return err
	}
	ctx := rq.r.Context()
	known, _, err := inv.AuditSinkIdentities(ctx)
	if err != nil {
		return err
	}
	if b.Sink == "" || len(b.Sink) > 400 || !slices.Contains(known, b.Sink) {
		return badParam("sink must be the identity of a known audit sink (GET /sys/audit/sinks lists them).")
	}
	pol, err := h.sinkRemovalPolicy(ctx)
	if err != nil {
		return err
	}
	if pol == nil {
		writeJSON(rq.w, http.StatusOK, map[string]any{"sink": b.Sink, "approvalRequired": false,
			"message": "No quorum policy protects AuditSinkRemove: remove the sink from the configuration and restart; the unseal records the removal in the audit log."})
		return nil
	}
	p := authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: rq.ev.Caller.AppID,
		Delegated: claims.IDType == "user" || claims.Scope != ""}
	req, err := h.submitTenant(rq.r, pol, "AuditSinkRemove", quorum.SinkRemovalTarget(b.Sink), "sys", p, body)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(h.cfg.ManagementResource(), "/") + "/providers/Keyward.Quorum/approvals/" + req.ID
	msg := fmt.Sprintf("Removing audit sink '%s' requires %d approval(s) under the operator tenant's quorum policy (the requester's own approval does not count). "+
		"Approval request %s was created and expires at %s. An approver approves it with POST %s/approve?api-version=%s "+
		"or 'keyward approval approve %s --tenant-level'; once approved, remove the sink from the configuration and restart: the unseal uses the approval once.",
		b.Sink, pol.Required, req.ID, req.Expires.Format(time.RFC3339), base, tenantPolicyAPIVersion, req.ID)
	rq.w.Header().Set("Location", base+"?api-version="+tenantPolicyAPIVersion)
	rq.ev.ErrorCode = "ApprovalRequired"
	writeJSON(rq.w, http.StatusAccepted, approvalRequired{Error: wireErrorBody{Code: "ApprovalRequired", Message: msg}, Approval: h.approvalOut(req)})
	return nil
}
