package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/quorum"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// Quorum approval (docs/QUORUM.md), the pipeline's step between throttling
// and the operation: a request whose operation a quorum policy protects
// (the vault's, else its tenant's) is stored as an approval request and
// answered 202 with an Azure-shaped error body (code ApprovalRequired) that
// names the request and how to approve it; the operation does not run.
// Approvers decide through /approvals on the vault host; the approval that
// meets the quorum re-dispatches the stored request through its routes
// line, as the requester (authorization checked again), exactly once
// (quorum.Decide), with its own audit event that names every approver.

// approvalWire is an approval request as the API shows it (never the
// stored request itself).
type approvalWire struct {
	ID          string        `json:"id"`
	Vault       string        `json:"vault,omitempty"`
	Operation   string        `json:"operation"`
	Target      string        `json:"target"`
	Requester   string        `json:"requester"`
	State       quorum.State  `json:"state"`
	Created     time.Time     `json:"created"`
	Expires     time.Time     `json:"expires"`
	Required    int           `json:"approvalsRequired"`
	Approvals   []quorum.Vote `json:"approvals"`
	Rejections  []quorum.Vote `json:"rejections"`
	Fingerprint string        `json:"requestFingerprint"`
	Status      int           `json:"resultStatus,omitempty"`
	Scope       string        `json:"policyScope"`
	BreakGlass  string        `json:"breakGlass,omitempty"`
	// Result is the state of the operation's answer kept for the requester
	// (quorum.KeepsResult: Available, Delivered, Expired); GET
	// /approvals/{id}/result delivers it once.
	Result string `json:"result,omitempty"`
	// Consumed: when an executed AuditSinkRemove was used by an unseal.
	Consumed time.Time `json:"consumed,omitzero"`
}

func (h *Handler) approvalOut(r *quorum.Request) approvalWire {
	return approvalWire{ID: r.ID, Vault: r.Vault, Operation: r.Operation, Target: r.Target, Requester: r.Requester,
		State: r.Effective(h.clock.Now()), Created: r.Created, Expires: r.Expires, Required: r.Required,
		Approvals: r.Approvals, Rejections: r.Rejections, Fingerprint: r.Fingerprint, Status: r.Status, Scope: r.Scope, BreakGlass: r.BreakGlass,
		Result: r.ResultState(h.clock.Now()), Consumed: r.Consumed}
}

// approvalRequired is the 202 body: an Azure error (what the SDKs read
// from an unexpected status) plus the approval request.
type approvalRequired struct {
	Error    wireErrorBody `json:"error"`
	Approval approvalWire  `json:"approval"`
}

// divert is the quorum step of the data plane: it reports whether it
// answered rq.
func (h *Handler) divert(rq *request, rt *kwroute) bool {
	if h.quorum == nil || !quorum.Protectable(rt.Op) {
		return false
	}
	target := rt.Object
	if n := rq.params["name"]; n != "" {
		target += "/" + n
	}
	return h.submitApproval(rq.w, rq.r, rq.vault, "", rq.principal, rt.Op, target, "vault", rq.base, rq.apiVersion)
}

// divertPool is the quorum step of a managed HSM pool: the pool's policy,
// then its tenant's.
func (h *Handler) divertPool(rq *request, rt *kwroute) bool {
	if h.quorum == nil || !quorum.Protectable(rt.Op) {
		return false
	}
	target := rt.Object
	if n := rq.params["name"]; n != "" {
		target += "/" + n
	}
	return h.submitApproval(rq.w, rq.r, rq.vault, rq.pool.Name, rq.principal, rt.Op, target, "pool", rq.base, rq.apiVersion)
}

// poolQuorumRoutes: a pool's policy is read and written by its
// administrators (local RBAC role management).
func poolQuorumRoutes() []kwroute {
	return quorumRoutes(authz.HSMRoleAssignRead, authz.HSMRoleAssignWrite)
}

// policyScope is the quorum scope of rq's vault or pool.
func policyScope(rq *request) string {
	if rq.pool != nil {
		return quorum.PoolScope(rq.pool.Name)
	}
	return quorum.VaultScope(rq.vault.Name)
}

// owns reports whether approval request r belongs to rq's vault or pool.
func owns(rq *request, r *quorum.Request) bool {
	if rq.pool != nil {
		return strings.EqualFold(r.Pool, rq.pool.Name)
	}
	return r.Pool == "" && strings.EqualFold(r.Vault, rq.vault.Name)
}

// divertARM is the quorum step as ARM's routing calls it (mgmt.QuorumStep):
// after the route's authorization, before its handler.
func (h *Handler) divertARM(w http.ResponseWriter, r *http.Request, op, vaultName string, p authz.Principal) bool {
	if h.quorum == nil || !quorum.Protectable(op) || replaying(r.Context()) {
		return false
	}
	if vaultName == "" {
		// A role assignment above a vault's scope: the tenant's policy,
		// decided on the management host (quorum_tenant_approvals.go).
		// A deleted vault's purge: the tenant's policy too (a deleted
		// vault has no data plane to decide on).
		switch op {
		case "RoleAssignmentCreate", "RoleEligibilityRequest", "RoleAssignmentScheduleRequest":
		case "DeletedVaultPurge", "ManagedHsmDelete", "DeletedManagedHsmPurge":
			// Managed HSM pools too: their ARM requester need not hold
			// the pool's local RBAC, so the tenant decides.
			if !h.armTargetExists(r, op) {
				return false // the handler answers as ARM does
			}
		default:
			return false
		}
		return h.divertARMTenant(w, r, op, p)
	}
	v, err := h.vaults.Vault(vaultName)
	if err != nil {
		return false // the handler answers as ARM does
	}
	base := strings.TrimSuffix(h.cfg.VaultResource(), "/")
	base = "https://" + v.Name + "." + strings.TrimPrefix(base, "https://")
	return h.submitApproval(w, r, v, "", p, op, "vaults/"+v.Name+armObjectSuffix(r.URL.Path, op), "management", base, "7.5")
}

// armObjectSuffix is "/{type}/{name}" for a role assignment at an object's
// scope in a vault (…/vaults/{v}/keys/{k}/providers/Microsoft.Authorization/…),
// else "".
func armObjectSuffix(path, op string) string {
	if op != "RoleAssignmentCreate" && op != "RoleEligibilityRequest" && op != "RoleAssignmentScheduleRequest" {
		return ""
	}
	lower := strings.ToLower(path)
	i := strings.Index(lower, "/providers/microsoft.keyvault/vaults/")
	j := strings.Index(lower, "/providers/microsoft.authorization/")
	if i < 0 || j < i {
		return ""
	}
	segs := strings.Split(strings.Trim(path[i+len("/providers/microsoft.keyvault/vaults/"):j], "/"), "/")
	if len(segs) != 3 {
		return "" // the vault's own scope
	}
	return "/" + clipString(segs[1], 32) + "/" + clipString(segs[2], 127)
}

type replayKey struct{}

// replaying reports whether ctx is an approved operation's re-dispatch.
func replaying(ctx context.Context) bool { return ctx.Value(replayKey{}) != nil }

// submitApproval stores r as an approval request when a policy protects op
// on vault v (the vault's policy, else its tenant's) and answers 202 with
// the ApprovalRequired error; it reports whether it answered. base and
// apiVersion are where the approval API is (the vault's data plane).
func (h *Handler) submitApproval(w http.ResponseWriter, r *http.Request, v *vault.Vault, pool string, principal authz.Principal, op, target, surface, base, apiVersion string) bool {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	scope, owner, where := quorum.VaultScope(v.Name), v.Name, "vault '"+v.Name+"'"
	if pool != "" {
		scope, owner, where = quorum.PoolScope(pool), pool, "managed HSM '"+pool+"'"
	}
	p, err := h.quorum.Match(ctx, op, scope, quorum.TenantScope(v.TenantID))
	if err != nil {
		h.quorumFail(w, r, surface, err)
		return true
	}
	if p == nil {
		return false
	}
	body, err := h.quorumBody(w, r)
	if err != nil {
		h.quorumFail(w, r, surface, err)
		return true
	}
	vaultName := v.Name
	if pool != "" {
		vaultName = ""
	}
	req := &quorum.Request{ID: quorum.NewID(), Vault: vaultName, Pool: pool, TenantID: v.TenantID,
		Requester: principal.ObjectID, Operation: op, Target: target,
		Replay: quorum.Replay{Surface: surface, Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Host: r.Host,
			Body: body, AppID: principal.AppID, Delegated: principal.Delegated, IP: ev.Caller.IP}}
	// The event written when the request is stored says what happened.
	ev.Status, ev.Reason = http.StatusAccepted, "approval required"
	ev.Approval = &audit.Approval{ID: req.ID, Operation: op, Requester: strings.ToLower(principal.ObjectID), Outcome: "pending"}
	if err := h.quorum.Submit(ctx, p, req); err != nil {
		ev.Status, ev.Reason, ev.Approval = 0, "", nil
		h.quorumFail(w, r, surface, err)
		return true
	}
	who := fmt.Sprintf("%d approval(s) from its approvers", p.Required)
	if p.Group != "" {
		who = fmt.Sprintf("%d approval(s) from its approvers or members of group %s", p.Required, p.Group)
	}
	if strings.HasPrefix(p.Scope, "tenant/") {
		where = "the tenant"
	}
	cli := "--vault " + owner
	if pool != "" {
		cli = "--vault-url " + base
	}
	msg := fmt.Sprintf("Operation %s on %s requires approval under the quorum policy of %s (%s; the requester's own approval does not count). "+
		"Approval request %s was created and expires at %s; nothing was changed. An approver approves it with "+
		"POST %s/approvals/%s/approve?api-version=%s or 'keyward approval approve %s %s'; once approved the operation runs once, as the requester.",
		op, target, where, who, req.ID, req.Expires.Format(time.RFC3339), base, req.ID, apiVersion, req.ID, cli)
	w.Header().Set("Location", base+"/approvals/"+req.ID+"?api-version="+apiVersion)
	ev.ErrorCode = "ApprovalRequired"
	writeJSON(w, http.StatusAccepted, approvalRequired{Error: wireErrorBody{Code: "ApprovalRequired", Message: msg}, Approval: h.approvalOut(req)})
	return true
}

// quorumFail words an error of the quorum step on its surface.
func (h *Handler) quorumFail(w http.ResponseWriter, r *http.Request, surface string, err error) {
	if surface == "management" && h.mgmt != nil {
		h.mgmt.Fail(w, r, err)
		return
	}
	h.writeErr(w, r, err)
}

// voterGroups are the direct groups of a caller, from the directory index.
func (h *Handler) voterGroups(tenant, oid string) []string {
	if h.groups != nil {
		return h.groups(tenant, oid)
	}
	if e, ok := h.authz.(*authz.Engine); ok {
		if rec, ok := e.Index().Principal(tenant, oid); ok {
			return rec.Groups
		}
	}
	return nil
}

// vaultApproval returns request id if it belongs to rq's vault and the
// caller requested it or may decide it; anything else is not found.
func (h *Handler) vaultApproval(rq *request, id string) (*quorum.Request, error) {
	r, err := h.quorum.Get(rq.r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !owns(rq, r) || !r.Involves(rq.principal.ObjectID, h.voterGroups(rq.principal.TenantID, rq.principal.ObjectID)) {
		return nil, &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNotFound, Msg: fmt.Sprintf("Approval request %s was not found.", clipString(id, 64))}
	}
	return r, nil
}

func listApprovals(rq *request) error {
	if rq.h.quorum == nil {
		return rq.reply(http.StatusOK, page[approvalWire]{Value: []approvalWire{}})
	}
	groups := rq.h.voterGroups(rq.principal.TenantID, rq.principal.ObjectID)
	state := rq.query.Get("state")
	now := rq.h.clock.Now()
	list, err := rq.h.quorum.List(rq.r.Context(), func(r *quorum.Request) bool {
		return owns(rq, r) && r.Involves(rq.principal.ObjectID, groups) &&
			(state == "" || strings.EqualFold(string(r.Effective(now)), state))
	})
	if err != nil {
		return err
	}
	out := page[approvalWire]{Value: make([]approvalWire, 0, len(list))}
	for _, r := range list {
		out.Value = append(out.Value, rq.h.approvalOut(r))
	}
	return rq.reply(http.StatusOK, out)
}

func getApproval(rq *request) error {
	if rq.h.quorum == nil {
		return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNotFound, Msg: "Quorum approval is not enabled."}
	}
	r, err := rq.h.vaultApproval(rq, rq.params["id"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.h.approvalOut(r))
}

// decideApproval approves or rejects an approval request; the approval
// that meets the quorum runs the operation before answering.
func decideApproval(approve bool) handler {
	return func(rq *request) error {
		h := rq.h
		if h.quorum == nil {
			return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNotFound, Msg: "Quorum approval is not enabled."}
		}
		return h.decide(rq, approve, h.vaultApproval)
	}
}

// decide is decideApproval over lookup (a vault's or pool's requests, or
// the tenant's).
func (h *Handler) decide(rq *request, approve bool, lookup func(*request, string) (*quorum.Request, error)) error {
	{ // (one block: the body of decideApproval before tenant approvals)
		id := rq.params["id"]
		r, err := lookup(rq, id)
		if err != nil {
			return err
		}
		outcome := "approved"
		if !approve {
			outcome = "rejected"
		}
		rq.ev.Approval = &audit.Approval{ID: r.ID, Operation: r.Operation, Requester: r.Requester, Outcome: outcome}
		r, run, err := h.quorum.Decide(rq.r.Context(), id, rq.principal.ObjectID, h.voterGroups(rq.principal.TenantID, rq.principal.ObjectID), approve)
		if err != nil {
			var qe *quorum.Error
			if errors.As(err, &qe) && qe.Reason == quorum.ReasonExpired {
				rq.ev.Approval.Outcome = "expired"
			} else {
				rq.ev.Approval.Outcome = "refused"
			}
			return err
		}
		if run {
			r = h.runApproved(rq, r)
		}
		return rq.reply(http.StatusOK, h.approvalOut(r))
	}
}

// getApprovalResult delivers the stored answer of an approved operation
// (quorum.KeepsResult, e.g. a released key) to its requester, once: it is
// deleted as it is read. Approvers get 403; anyone else 404.
func getApprovalResult(rq *request) error {
	if rq.h.quorum == nil {
		return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNotFound, Msg: "Quorum approval is not enabled."}
	}
	return rq.h.approvalResult(rq, rq.h.vaultApproval)
}

func (h *Handler) approvalResult(rq *request, lookup func(*request, string) (*quorum.Request, error)) error {
	r, err := lookup(rq, rq.params["id"])
	if err != nil {
		return err
	}
	rq.ev.Approval = &audit.Approval{ID: r.ID, Operation: r.Operation, Requester: r.Requester, Outcome: "result-refused"}
	if !strings.EqualFold(r.Requester, rq.principal.ObjectID) {
		return &quorum.Error{Kind: errs.Forbidden, Reason: "NotTheRequester", Msg: fmt.Sprintf("Only the requester of approval request %s receives its result.", r.ID)}
	}
	if r.ResultState(h.clock.Now()) == quorum.ResultAvailable {
		// Set before TakeResult: its commit records the event (the audit
		// gate); a failed take still answers (and records) its error status.
		rq.ev.Approval.Outcome = "result-delivered"
	}
	res, err := h.quorum.TakeResult(rq.r.Context(), r.ID, rq.principal.ObjectID)
	if err != nil {
		return err
	}
	defer clear(res.Body)
	ct := res.ContentType
	if ct == "" {
		ct = "application/json; charset=utf-8"
	}
	rq.w.Header().Set("Content-Type", ct)
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.WriteHeader(res.Status)
	_, _ = rq.w.Write(res.Body) // the header is sent: nothing else to say
	return nil
}

// recorder holds the answer of a re-dispatched operation.
type recorder struct {
	hdr    http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.hdr }
func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

// runApproved runs request r's stored operation, as its requester, once:
// only the caller whose Decide returned run gets here. The operation has
// its own audit event (its own request ID, the approval ID as correlation
// ID) naming the requester as the caller and every approver.
func (h *Handler) runApproved(rq *request, r *quorum.Request) *quorum.Request {
	start := time.Now()
	rp := r.Replay
	vaultName := ""
	if rq.vault != nil {
		vaultName = rq.vault.Name
	}
	ev := &audit.Event{Time: h.clock.Now().UTC(), RequestID: uuid.NewString(), Service: "vault", Vault: vaultName,
		ResourceID: rq.ev.ResourceID, Method: rp.Method, CorrelationID: r.ID, UserAgent: "keyward-quorum",
		Caller:   audit.Caller{TenantID: r.TenantID, ObjectID: r.Requester, AppID: rp.AppID, IP: rp.IP},
		Approval: &audit.Approval{ID: r.ID, Operation: r.Operation, Requester: r.Requester, Approvers: r.ApproverIDs(), Outcome: "executed"}}
	if r.BreakGlass != "" {
		ev.Approval.Outcome, ev.Reason = "breakglass", "BREAK-GLASS: quorum overridden with recovery shares by "+r.BreakGlass
	}
	ev.Properties.RequestURI = "https://" + clipString(rp.Host, 256) + clipString(rp.Path, 2048)
	ctx, cancel := context.WithTimeout(audit.WithEvent(context.WithoutCancel(rq.r.Context()), ev), requestTimeout)
	defer cancel()
	gate := &auditGate{h: h, ev: ev, start: start, ctx: context.WithoutCancel(ctx)}
	ctx = storage.WithPreCommit(ctx, gate)
	rec := &recorder{hdr: http.Header{}}
	finish := func(status int) *quorum.Request {
		var res *quorum.Result
		if status < 400 && quorum.KeepsResult(r.Operation) && rec.body.Len() > 0 {
			// The answer is the requester's alone (a released key): kept
			// sealed with the request, never in the approver's answer or
			// the audit event.
			st := status
			if st == 0 {
				st = http.StatusOK
			}
			res = &quorum.Result{Status: st, ContentType: rec.hdr.Get("Content-Type"), Body: rec.body.Bytes()}
		}
		if status == 0 {
			status = http.StatusOK
		}
		ev.Status = status
		ev.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		if status >= 400 {
			ev.Approval.Outcome = "failed"
		}
		if ev.Result == "" {
			ev.Result = resultFor(ev)
		}
		if !gate.close() {
			if err := h.audit.Record(gate.ctx, ev); err != nil {
				h.log.Error("audit of an approved operation failed", "approval", r.ID, "request_id", ev.RequestID)
			}
		}
		done, err := h.quorum.FinishResult(rq.r.Context(), r.ID, status, status < 400, res)
		clear(rec.body.Bytes())
		if err != nil {
			h.log.Error("recording an approved operation's outcome failed", "approval", r.ID, "error", err)
			r.State, r.Status = quorum.Failed, status
			return r
		}
		return done
	}
	ctx = context.WithValue(ctx, replayKey{}, r.ID)
	r2, err := http.NewRequestWithContext(ctx, rp.Method, "https://"+rp.Host+rp.Path+"?"+rp.RawQuery, bytes.NewReader(rp.Body))
	if err != nil {
		return finish(http.StatusInternalServerError)
	}
	r2.Host = rp.Host
	ev.Path = r2.URL.Path
	if rp.Surface == "sys" {
		// /sys/seal: finished before it runs (quorum_seal.go).
		return h.runSealApproved(ctx, r, ev, gate, start)
	}
	if rp.Surface == "management" {
		// ARM: the stored request goes through mgmt's routing again, which
		// authorizes the requester again; the quorum step lets it pass.
		if h.mgmt == nil {
			return finish(http.StatusInternalServerError)
		}
		ev.Service, ev.Operation = "management", r.Operation
		claims := &identity.Claims{TenantID: r.TenantID, ObjectID: r.Requester, AppID: rp.AppID, AZP: rp.AppID, IDType: "app"}
		if rp.Delegated {
			claims.IDType = "user"
		}
		h.mgmt.Serve(rec, r2, claims, nil) // approved: not throttled again
		if ev.Operation != r.Operation {
			h.log.Error("an approved ARM request named another operation", "approval", r.ID, "operation", ev.Operation)
		}
		return finish(rec.status)
	}
	if rp.Surface == "tenantpolicy" {
		// The tenant policy's own change: served again as the requester,
		// who is authorized again (Keyward/directory/write).
		claims := &identity.Claims{TenantID: r.TenantID, ObjectID: r.Requester, AppID: rp.AppID, AZP: rp.AppID, IDType: "app"}
		if rp.Delegated {
			claims.IDType = "user"
		}
		h.serveTenantPolicy(rec, r2, claims)
		ev.Operation = r.Operation
		return finish(rec.status)
	}
	if rp.Surface == "keymgmt" {
		// Vault's keymgmt API: the surface authorizes the requester again
		// at the tenant; the quorum step lets the replay pass.
		if h.keymgmt == nil {
			return finish(http.StatusInternalServerError)
		}
		ev.Service, ev.Operation = "keymgmt", r.Operation
		h.keymgmt.Serve(rec, r2, authz.Principal{TenantID: r.TenantID, ObjectID: r.Requester, AppID: rp.AppID, Delegated: rp.Delegated})
		ev.Operation = r.Operation
		return finish(rec.status)
	}
	if rq.vault == nil {
		return finish(http.StatusInternalServerError)
	}
	routes := h.routes
	if rq.pool != nil {
		routes = h.poolRoutes
	}
	rt, params, _ := routes.Match(r2.Method, r2.URL.EscapedPath())
	if rt == nil || rt.Op != r.Operation {
		return finish(http.StatusInternalServerError)
	}
	ev.Operation = rt.Op
	q := r2.URL.Query()
	ev.APIVersion = clipString(q.Get("api-version"), 32)
	rq2 := &request{h: h, w: rec, r: r2, ev: ev, vault: rq.vault, pool: rq.pool, params: params, query: q, apiVersion: q.Get("api-version"),
		base:      "https://" + rp.Host,
		principal: authz.Principal{TenantID: r.TenantID, ObjectID: r.Requester, AppID: rp.AppID, Delegated: rp.Delegated}}
	if n := params["name"]; n != "" {
		ev.ObjectID = rq2.objectURL(rt.Object, n, params["version"])
	}
	// The requester must still be allowed to do it.
	if rq.pool != nil {
		ev.Service, ev.Vault = "managedhsm", rq.pool.Name
		claims := &identity.Claims{TenantID: r.TenantID, ObjectID: r.Requester}
		ok, err := h.pools.Authorize(ctx, rq.pool, h.poolPrincipals(claims), rt.Action, params["name"])
		if err != nil || !ok {
			ev.Reason, ev.Result = "requester no longer authorized by the pool's local RBAC", audit.Denied
			return finish(http.StatusForbidden)
		}
		if err := rt.Handle(rq2); err != nil {
			h.writeErr(rec, r2, err)
		}
		return finish(rec.status)
	}
	v := rq.vault
	d := h.authz.Authorize(rq2.principal, rt.Action, authz.Scope{TenantID: v.TenantID, SubscriptionID: v.SubscriptionID,
		ResourceGroup: v.ResourceGroup, Vault: v.Name, ObjectType: rt.Object, ObjectName: params["name"], List: isList(rt)})
	if !d.Allowed {
		ev.Reason, ev.Result = "requester no longer authorized: "+d.Reason, audit.Denied
		return finish(http.StatusForbidden)
	}
	ev.Authz = "rbac"
	if strings.HasPrefix(d.Reason, "Access policy") {
		ev.Authz = "policy"
	}
	if err := rt.Handle(rq2); err != nil {
		h.writeErr(rec, r2, err)
	}
	return finish(rec.status)
}

// Quorum policy of a vault: GET, PUT and DELETE /quorumpolicy. Setting and
// removing it are protected by the policy itself.
func getQuorumPolicy(rq *request) error {
	if rq.h.quorum == nil {
		return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNoPolicy, Msg: "Quorum approval is not enabled."}
	}
	p, err := rq.h.quorum.Policy(rq.r.Context(), policyScope(rq))
	if err != nil {
		return err
	}
	if p == nil {
		return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNoPolicy, Msg: "No quorum policy is set here."}
	}
	return rq.reply(http.StatusOK, p)
}

func putQuorumPolicy(rq *request) error {
	if rq.h.quorum == nil {
		return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNoPolicy, Msg: "Quorum approval is not enabled."}
	}
	raw, err := io.ReadAll(http.MaxBytesReader(rq.w, rq.r.Body, rq.h.cfg.MaxBodyBytes))
	if err != nil {
		return badParam("The request body could not be read.")
	}
	p, err := quorum.ParsePolicy(policyScope(rq), raw)
	if err != nil {
		return err
	}
	if err := rq.h.quorum.SetPolicy(rq.r.Context(), p); err != nil {
		return err
	}
	return rq.reply(http.StatusOK, p)
}

func deleteQuorumPolicy(rq *request) error {
	if rq.h.quorum == nil {
		return &quorum.Error{Kind: errs.NotFound, Reason: quorum.ReasonNoPolicy, Msg: "Quorum approval is not enabled."}
	}
	if err := rq.h.quorum.DeletePolicy(rq.r.Context(), policyScope(rq)); err != nil {
		return err
	}
	return rq.reply(http.StatusOK, map[string]string{"scope": policyScope(rq)})
}

// quorumError words a quorum error (errors.go's table).
func quorumError(e *quorum.Error) (int, wireError) {
	switch e.Kind {
	case errs.NotFound:
		return http.StatusNotFound, body("NotFound", e.Msg, e.Reason)
	case errs.Forbidden:
		return http.StatusForbidden, body("Forbidden", e.Msg, e.Reason)
	case errs.Conflict:
		return http.StatusConflict, body("Conflict", e.Msg, e.Reason)
	}
	return http.StatusBadRequest, body("BadParameter", e.Msg, e.Reason)
}

// ShareVerifier is the optional capability of the Operator to check unseal
// (or recovery) shares without using them (*server.Server has it).
type ShareVerifier interface {
	VerifyShares(ctx context.Context, shares [][]byte) error
}

type overrideBody struct {
	Approval string   `json:"approval"`
	Keys     []string `json:"keys"`
}

// sysQuorumOverride is break-glass (docs/QUORUM.md): an operator of the
// operator tenant (the route's action) who also presents a threshold of
// the unseal or recovery shares runs a pending approval request without
// its approvals. Audited loudly: the request's event and the operation's
// name it, and the log warns.
func sysQuorumOverride(h *Handler, rq *request) error {
	sv, ok := h.operator.(ShareVerifier)
	if !ok || h.quorum == nil {
		return badParam("Break-glass is not available.")
	}
	var b overrideBody
	if err := rq.decode(&b); err != nil {
		return err
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
	ctx := rq.r.Context()
	r, err := h.quorum.Get(ctx, b.Approval)
	if err != nil {
		return err
	}
	rq.ev.Approval = &audit.Approval{ID: r.ID, Operation: r.Operation, Requester: r.Requester, Outcome: "breakglass-refused"}
	rq.ev.Reason = "BREAK-GLASS attempt"
	if err := sv.VerifyShares(ctx, shares); err != nil {
		if errors.Is(err, barrier.ErrBadShares) || errors.Is(err, barrier.ErrMalformedShare) || strings.Contains(err.Error(), "shares are needed") {
			h.log.Warn("BREAK-GLASS refused: bad shares", "approval", r.ID, "operator", rq.ev.Caller.ObjectID)
			return &apiError{status: http.StatusForbidden, code: "Forbidden", message: "Break-glass refused: the shares given are not a threshold of this Keyward's unseal or recovery shares.", inner: "BreakGlassRefused"}
		}
		return err
	}
	rv := &request{h: h, w: rq.w, r: rq.r, ev: rq.ev}
	switch {
	case r.Vault == "" && r.Pool == "":
		// A tenant-level request (keymgmt, ARM above a vault, seal): its
		// surface authorizes the requester again.
	case r.Pool != "":
		if h.pools == nil {
			return badParam("Managed HSM pools are not available.")
		}
		p, err := h.pools.Get(r.Pool)
		if err != nil {
			return err
		}
		rv.pool, rv.vault = p, &p.Container
	default:
		v, err := h.vaults.Vault(r.Vault)
		if err != nil {
			return err
		}
		rv.vault = v
		rq.ev.ResourceID = audit.VaultResourceID(v.SubscriptionID, v.ResourceGroup, v.Name)
	}
	rq.ev.Approval.Outcome = "breakglass"
	rq.ev.Reason = "BREAK-GLASS: quorum overridden with recovery shares"
	r, err = h.quorum.Override(ctx, r.ID, rq.ev.Caller.ObjectID)
	if err != nil {
		rq.ev.Approval.Outcome = "breakglass-refused"
		return err
	}
	h.log.Warn("BREAK-GLASS: quorum approval overridden with recovery shares", "approval", r.ID, "operation", r.Operation,
		"target", r.Target, "vault", r.Vault, "pool", r.Pool, "requester", r.Requester, "operator", rq.ev.Caller.ObjectID)
	r = h.runApproved(rv, r)
	writeJSON(rq.w, http.StatusOK, h.approvalOut(r))
	return nil
}

// quorumBody reads the body a diverted request keeps for its replay. It is
// checked as JSON text now, as the operation's own decoder will check it,
// so a body that would be refused is refused before anyone is asked to
// approve it.
func (h *Handler) quorumBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		return nil, badParam("The request body could not be read.")
	}
	if err := checkText(body); err != nil {
		clear(body)
		return nil, err
	}
	return body, nil
}
