package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// sealWatchSink notes, for every event it writes, whether the server was
// sealed at that moment.
type sealWatchSink struct {
	audit.Sink
	sealed func() bool
	mu     sync.Mutex
	at     map[string]bool // request ID of an executed Seal event → sealed when written
}

func (s *sealWatchSink) Write(ctx context.Context, ev *audit.Event) error {
	if ev.Operation == "Seal" && ev.Approval != nil && ev.Approval.Outcome != "pending" {
		s.mu.Lock()
		if s.sealed != nil {
			s.at[ev.RequestID] = s.sealed()
		}
		s.mu.Unlock()
	}
	return s.Sink.Write(ctx, ev)
}

// TestQuorumApprovalSeal: the operator tenant's policy protects /sys/seal
// (2 of 3). The operator's seal answers 202 ApprovalRequired and Keyward
// stays unsealed; the requester cannot approve; one approval leaves it
// unsealed; the second seals it, once, after the request was recorded
// Executed and the executed event (every approver) was written. After the
// unseal the request reads Executed and cannot be approved again. A second
// seal request is run at once by break-glass with the unseal share.
func TestQuorumApprovalSeal(t *testing.T) {
	watch := &sealWatchSink{at: map[string]bool{}}
	e := kwtest.Start(t, kwtest.Options{WrapAuditSink: func(s audit.Sink) audit.Sink { watch.Sink = s; return watch }})
	watch.mu.Lock()
	watch.sealed = e.Server.Sealed
	watch.mu.Unlock()
	admin := strings.ToLower(devObjectID(t, e))
	a, b, c := newSP(t, e, "seal-approver-a"), newSP(t, e, "seal-approver-b"), newSP(t, e, "seal-approver-c")
	quorumAPI := func(tok, method, path string) httpResult {
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok, "application/json", "")
	}
	adminTok := tokenFor(t, e.Credential(), mgmtScope(e))
	tokA, tokB, tokC := tokenFor(t, a.Cred, mgmtScope(e)), tokenFor(t, b.Cred, mgmtScope(e)), tokenFor(t, c.Cred, mgmtScope(e))
	if r := do(t, e, http.MethodPut, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/tenantPolicy?api-version=2026-01-01", adminTok, "application/json",
		`{"operations":["Seal"],"approvers":["`+a.ObjectID+`","`+b.ObjectID+`","`+c.ObjectID+`"],"approvalsRequired":2}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	base := strings.TrimSuffix(e.Info.AuthorityHost, "/")
	seal := func() string {
		t.Helper()
		r := do(t, e, http.MethodPost, base+"/sys/seal", adminTok, "", "")
		var out struct {
			Error    struct{ Code, Message string }
			Approval struct{ ID, Operation, Requester, State, PolicyScope string }
		}
		if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &out) != nil || out.Error.Code != "ApprovalRequired" ||
			out.Approval.Operation != "Seal" || out.Approval.Requester != admin || out.Approval.State != "Pending" || !strings.HasPrefix(out.Approval.PolicyScope, "tenant/") ||
			!strings.Contains(r.Header.Get("Location"), "/providers/Keyward.Quorum/approvals/"+out.Approval.ID) {
			t.Fatalf("seal under quorum: %d %s %s", r.Status, r.Header.Get("Location"), r.Body)
		}
		if e.Server.Sealed() {
			t.Fatal("sealed before approval")
		}
		return out.Approval.ID
	}
	id := seal()
	if r := quorumAPI(adminTok, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "SelfApprovalForbidden") {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := quorumAPI(tokA, http.MethodGet, "approvals"); r.Status != http.StatusOK || !strings.Contains(r.Body, id) {
		t.Fatalf("approver's list: %d %s", r.Status, r.Body)
	}
	if r := quorumAPI(tokA, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Pending"`) {
		t.Fatalf("first approval: %d %s", r.Status, r.Body)
	}
	if e.Server.Sealed() {
		t.Fatal("sealed after one approval of two")
	}
	if r := quorumAPI(tokB, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) || !strings.Contains(r.Body, `"resultStatus":204`) {
		t.Fatalf("second approval: %d %s", r.Status, r.Body)
	}
	if !e.Server.Sealed() {
		t.Fatal("not sealed after the quorum was met")
	}
	// The audit log: the request, both decisions, and the execution with
	// every approver, written while Keyward was still unsealed.
	evs := auditEvents(t, e)
	idx := func(what string, pred func(audit.Event) bool) (int, audit.Event) {
		t.Helper()
		for i, ev := range evs {
			if pred(ev) {
				return i, ev
			}
		}
		t.Fatalf("no audit event: %s", what)
		return 0, audit.Event{}
	}
	of := func(op, outcome, caller string) func(audit.Event) bool {
		return func(ev audit.Event) bool {
			return ev.Approval != nil && ev.Approval.ID == id && ev.Operation == op && ev.Approval.Outcome == outcome && (caller == "" || ev.Caller.ObjectID == caller)
		}
	}
	iReq, _ := idx("the pending seal", of("Seal", "pending", admin))
	iA, _ := idx("a's approval", of("ApprovalApprove", "approved", strings.ToLower(a.ObjectID)))
	iB, _ := idx("b's approval", of("ApprovalApprove", "approved", strings.ToLower(b.ObjectID)))
	iRun, run := idx("the executed seal", of("Seal", "executed", admin))
	if !(iReq < iA && iA < iB && iB < iRun) || run.Service != "sys" || run.Status != http.StatusNoContent || run.CorrelationID != id ||
		!slices.Contains(run.Approval.Approvers, strings.ToLower(a.ObjectID)) || !slices.Contains(run.Approval.Approvers, strings.ToLower(b.ObjectID)) {
		t.Fatalf("audit order %d %d %d %d; executed event %+v %+v", iReq, iA, iB, iRun, run, run.Approval)
	}
	n := 0
	for _, ev := range evs {
		if ev.Operation == "Seal" && ev.Status == http.StatusNoContent {
			n++
		}
	}
	watch.mu.Lock()
	sealedAtWrite, seen := watch.at[run.RequestID]
	watch.mu.Unlock()
	if n != 1 || !seen || sealedAtWrite {
		t.Fatalf("seals in the audit log: %d; executed event seen by the sink %v, written while sealed %v", n, seen, sealedAtWrite)
	}

	share, err := os.ReadFile(filepath.Join(e.DataDir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}
	unseal := func() {
		t.Helper()
		if r := do(t, e, http.MethodPost, base+"/sys/unseal", "", "application/json", `{"key":"`+strings.TrimSpace(string(share))+`"}`); r.Status != http.StatusOK || e.Server.Sealed() {
			t.Fatalf("unseal: %d %s", r.Status, r.Body)
		}
	}
	unseal()
	if r := quorumAPI(tokA, http.MethodGet, "approvals/"+id); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("the request after the unseal: %d %s", r.Status, r.Body)
	}
	if r := quorumAPI(tokC, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusConflict || e.Server.Sealed() {
		t.Fatalf("a third approval: %d %s (sealed %v)", r.Status, r.Body, e.Server.Sealed())
	}

	// Break-glass: a wrong share is refused; the unseal share runs a
	// pending seal at once, audited loudly.
	id2 := seal()
	override := func(key string) httpResult {
		return do(t, e, http.MethodPost, base+"/sys/quorum/override", adminTok, "application/json", `{"approval":"`+id2+`","keys":["`+key+`"]}`)
	}
	if r := override(strings.Repeat("00", 33)); r.Status != http.StatusForbidden || e.Server.Sealed() {
		t.Fatalf("break-glass with a wrong share: %d %s", r.Status, r.Body)
	}
	if r := override(strings.TrimSpace(string(share))); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) || !e.Server.Sealed() {
		t.Fatalf("break-glass seal: %d %s (sealed %v)", r.Status, r.Body, e.Server.Sealed())
	}
	bg := findAudit(t, e, "the break-glass seal", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id2 && ev.Operation == "Seal" && ev.Approval.Outcome == "breakglass"
	})
	if !strings.HasPrefix(bg.Reason, "BREAK-GLASS") || bg.Status != http.StatusNoContent {
		t.Fatalf("break-glass event: %+v", bg)
	}
	unseal()
	if r := quorumAPI(tokA, http.MethodGet, "approvals/"+id2); r.Status != http.StatusOK || !strings.Contains(r.Body, `"breakGlass":"`+admin+`"`) {
		t.Fatalf("the overridden request: %d %s", r.Status, r.Body)
	}
}

// TestQuorumApprovalTenantPolicySelfProtected: a tenant policy that names
// QuorumTenantPolicyDelete and QuorumTenantPolicySet protects itself, so a
// directory administrator cannot remove a seal policy alone: the delete
// and the replacement answer 202 and change nothing; the requester cannot
// approve; once approved each runs once, as the requester.
func TestQuorumApprovalTenantPolicySelfProtected(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	a := newSP(t, e, "tenant-policy-approver")
	adminTok, tokA := tokenFor(t, e.Credential(), mgmtScope(e)), tokenFor(t, a.Cred, mgmtScope(e))
	api := func(tok, method, path, body string) httpResult {
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok, "application/json", body)
	}
	if r := api(adminTok, http.MethodPut, "tenantPolicy", `{"operations":["Seal","QuorumTenantPolicySet","QuorumTenantPolicyDelete"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	pendingID := func(r httpResult, op string) string {
		t.Helper()
		var out struct {
			Error    struct{ Code string }
			Approval struct{ ID, Operation string }
		}
		if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &out) != nil || out.Error.Code != "ApprovalRequired" || out.Approval.Operation != op {
			t.Fatalf("%s under the tenant policy: %d %s", op, r.Status, r.Body)
		}
		return out.Approval.ID
	}
	del := pendingID(api(adminTok, http.MethodDelete, "tenantPolicy", ""), "QuorumTenantPolicyDelete")
	set := pendingID(api(adminTok, http.MethodPut, "tenantPolicy", `{"operations":["KeyPurge"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`), "QuorumTenantPolicySet")
	if r := api(adminTok, http.MethodGet, "tenantPolicy", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"Seal"`) {
		t.Fatalf("the policy changed before approval: %d %s", r.Status, r.Body)
	}
	if r := api(adminTok, http.MethodPost, "approvals/"+del+"/approve", ""); r.Status != http.StatusForbidden {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := api(tokA, http.MethodPost, "approvals/"+set+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve the replacement: %d %s", r.Status, r.Body)
	}
	if r := api(adminTok, http.MethodGet, "tenantPolicy", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"KeyPurge"`) || strings.Contains(r.Body, `"Seal"`) {
		t.Fatalf("the approved replacement: %d %s", r.Status, r.Body)
	}
	// The replacement no longer protects itself: the pending delete still
	// runs, once approved, as the requester.
	if r := api(tokA, http.MethodPost, "approvals/"+del+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve the delete: %d %s", r.Status, r.Body)
	}
	if r := api(adminTok, http.MethodGet, "tenantPolicy", ""); r.Status != http.StatusNotFound {
		t.Fatalf("the approved delete: %d %s", r.Status, r.Body)
	}
	findAudit(t, e, "the executed tenant policy delete", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == del && ev.Approval.Outcome == "executed" && ev.Operation == "QuorumTenantPolicyDelete" && ev.Status == http.StatusOK
	})
}
