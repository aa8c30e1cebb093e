package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// sinkRig restarts a dev server on one data directory with a chosen set of
// HTTP audit sinks (one local TLS collector, a path per sink).
type sinkRig struct {
	t   *testing.T
	dir string
	col *collector
}

func (r *sinkRig) sink(path string) server.AuditSinkConfig {
	return server.AuditSinkConfig{Type: "http", URL: r.col.srv.URL + path, CAFile: r.col.caFile,
		Header: map[string]string{"Authorization": "Splunk test-token"}}
}

// id is the identity of the sink at path (server.SinkIdentity).
func (r *sinkRig) id(path string) string { return "http:" + strings.ToLower(r.col.srv.URL) + path }

func (r *sinkRig) start(paths ...string) *kwtest.Env {
	var sinks []server.AuditSinkConfig
	for _, p := range paths {
		sinks = append(sinks, r.sink(p))
	}
	return kwtest.Start(r.t, kwtest.Options{DataDir: r.dir, Audit: server.AuditConfig{Sinks: sinks}})
}

func sysURL(e *kwtest.Env, path string) string {
	return strings.TrimSuffix(e.Info.AuthorityHost, "/") + path
}

// unsealDev gives a sealed dev server its unseal share.
func unsealDev(t *testing.T, e *kwtest.Env) httpResult {
	t.Helper()
	share, err := os.ReadFile(filepath.Join(e.DataDir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}
	return do(t, e, http.MethodPost, sysURL(e, "/sys/unseal"), "", "application/json", `{"key":"`+strings.TrimSpace(string(share))+`"}`)
}

func knownSinks(t *testing.T, e *kwtest.Env, tok string) (known []string, protected bool) {
	t.Helper()
	r := do(t, e, http.MethodGet, sysURL(e, "/sys/audit/sinks"), tok, "", "")
	var out struct {
		Known                   []string
		RemovalRequiresApproval bool
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &out) != nil {
		t.Fatalf("GET /sys/audit/sinks: %d %s", r.Status, r.Body)
	}
	if strings.Contains(r.Body, "test-token") {
		t.Fatalf("a sink's header in its identity: %s", r.Body)
	}
	return out.Known, out.RemovalRequiresApproval
}

// TestQuorumApprovalAuditSinkRemove: with AuditSinkRemove in the operator
// tenant's policy (2 of 3), a restart without a known audit sink stays
// sealed and the unseal is refused (409 AuditSinkRemovalNotApproved, the
// sink named); the removal is requested (202), the requester cannot
// approve it, two approvers do (Executed); the restart without the sink
// then unseals, consumes the approval and audits the removal with both
// approvers; removing the other sink without approval is refused again.
func TestQuorumApprovalAuditSinkRemove(t *testing.T) {
	rig := &sinkRig{t: t, dir: t.TempDir(), col: newCollector(t)}
	e := rig.start("/a", "/b")
	admin := strings.ToLower(devObjectID(t, e))
	a, b, c := newSP(t, e, "sink-approver-a"), newSP(t, e, "sink-approver-b"), newSP(t, e, "sink-approver-c")
	adminTok := tokenFor(t, e.Credential(), mgmtScope(e))
	if r := do(t, e, http.MethodPut, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/tenantPolicy?api-version=2026-01-01", adminTok, "application/json",
		`{"operations":["AuditSinkRemove"],"approvers":["`+a.ObjectID+`","`+b.ObjectID+`","`+c.ObjectID+`"],"approvalsRequired":2}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	if known, protected := knownSinks(t, e, adminTok); !slices.Equal(known, []string{rig.id("/a"), rig.id("/b")}) || !protected {
		t.Fatalf("known sinks %v, protected %v", known, protected)
	}
	e.Server.Close()

	// Without /b and without approval: sealed, and the unseal is refused.
	refused := func(e *kwtest.Env, sink string) {
		t.Helper()
		if !e.Server.Sealed() {
			t.Fatalf("started unsealed without audit sink %s", sink)
		}
		r := unsealDev(t, e)
		var out struct {
			Error struct {
				Code, Message string
				InnerError    struct{ Code string }
			}
		}
		if r.Status != http.StatusConflict || json.Unmarshal([]byte(r.Body), &out) != nil || out.Error.Code != "Conflict" ||
			out.Error.InnerError.Code != "AuditSinkRemovalNotApproved" || !strings.Contains(out.Error.Message, "'"+sink+"'") ||
			!strings.Contains(out.Error.Message, "/sys/audit/sinks/remove") || !e.Server.Sealed() {
			t.Fatalf("unseal without %s: %d %s (sealed %v)", sink, r.Status, r.Body, e.Server.Sealed())
		}
	}
	e = rig.start("/a")
	refused(e, rig.id("/b"))
	e.Server.Close()

	// With /b back: unsealed; the removal is requested and approved.
	e = rig.start("/a", "/b")
	if e.Server.Sealed() {
		t.Fatal("sealed with every known sink configured")
	}
	adminTok = tokenFor(t, e.Credential(), mgmtScope(e))
	cred := func(p principal) string {
		return tokenFor(t, e.CredentialFor(e.Info.TenantID, p.AppID, p.Secret), mgmtScope(e))
	}
	tokA, tokB, tokC := cred(a), cred(b), cred(c)
	remove := func(sink string) httpResult {
		return do(t, e, http.MethodPost, sysURL(e, "/sys/audit/sinks/remove"), adminTok, "application/json", `{"sink":"`+sink+`"}`)
	}
	if r := remove("http:https://elsewhere.example/x"); r.Status != http.StatusBadRequest {
		t.Fatalf("removal of an unknown sink: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, http.MethodPost, sysURL(e, "/sys/audit/sinks/remove"), tokA, "application/json", `{"sink":"`+rig.id("/b")+`"}`); r.Status != http.StatusForbidden {
		t.Fatalf("removal requested by a non-operator: %d %s", r.Status, r.Body)
	}
	r := remove(rig.id("/b"))
	var pending struct {
		Error    struct{ Code, Message string }
		Approval struct{ ID, Operation, Target, Requester, State string }
	}
	if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &pending) != nil || pending.Error.Code != "ApprovalRequired" ||
		pending.Approval.Operation != "AuditSinkRemove" || pending.Approval.Target != "sys/audit/sinks/"+rig.id("/b") ||
		pending.Approval.Requester != admin || pending.Approval.State != "Pending" || !strings.Contains(r.Header.Get("Location"), "/approvals/"+pending.Approval.ID) {
		t.Fatalf("removal request: %d %s", r.Status, r.Body)
	}
	id := pending.Approval.ID
	quorumAPI := func(tok, method, path string) httpResult {
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok, "application/json", "")
	}
	if r := quorumAPI(adminTok, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "SelfApprovalForbidden") {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := quorumAPI(tokA, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Pending"`) {
		t.Fatalf("first approval: %d %s", r.Status, r.Body)
	}
	if r := quorumAPI(tokB, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) || !strings.Contains(r.Body, `"resultStatus":200`) {
		t.Fatalf("second approval: %d %s", r.Status, r.Body)
	}
	if r := quorumAPI(tokC, http.MethodPost, "approvals/"+id+"/approve"); r.Status != http.StatusConflict {
		t.Fatalf("a third approval: %d %s", r.Status, r.Body)
	}
	if e.Server.Sealed() {
		t.Fatal("an approved sink removal sealed the server")
	}
	e.Server.Close()

	// Without /b, approved: unsealed, the approval consumed, the removal
	// audited with both approvers.
	e = rig.start("/a")
	if e.Server.Sealed() {
		t.Fatal("sealed after an approved removal")
	}
	ev := findAudit(t, e, "the approved sink removal", func(ev audit.Event) bool {
		return ev.Operation == "AuditSinkRemove" && ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "consumed"
	})
	if ev.Service != "sys" || ev.Status != http.StatusOK || ev.Approval.Requester != admin || !strings.Contains(ev.Reason, rig.id("/b")) ||
		!slices.Contains(ev.Approval.Approvers, strings.ToLower(a.ObjectID)) || !slices.Contains(ev.Approval.Approvers, strings.ToLower(b.ObjectID)) {
		t.Fatalf("removal event: %+v %+v", ev, ev.Approval)
	}
	adminTok = tokenFor(t, e.Credential(), mgmtScope(e))
	tokA = tokenFor(t, e.CredentialFor(e.Info.TenantID, a.AppID, a.Secret), mgmtScope(e))
	if r := quorumAPI(tokA, http.MethodGet, "approvals/"+id); r.Status != http.StatusOK || !strings.Contains(r.Body, `"consumed":"`) {
		t.Fatalf("the consumed request: %d %s", r.Status, r.Body)
	}
	if known, _ := knownSinks(t, e, adminTok); !slices.Equal(known, []string{rig.id("/a")}) {
		t.Fatalf("known sinks after the removal: %v", known)
	}
	e.Server.Close()

	// Removing /a too, without approval: refused again (the approval of
	// /b was for /b, and it is used).
	e = rig.start()
	refused(e, rig.id("/a"))
	for _, ev := range auditEvents(t, e) {
		if ev.Operation == "AuditSinkRemove" && strings.Contains(ev.Reason, rig.id("/a")) {
			t.Fatalf("a refused removal was audited as done: %+v", ev)
		}
	}
	e.Server.Close()

	// Break-glass: with /a back, its removal is requested and run at once
	// with the unseal share (a wrong share is refused); the restart
	// without /a unseals, and the removal's event says break-glass.
	e = rig.start("/a")
	if e.Server.Sealed() {
		t.Fatal("sealed with every known sink configured")
	}
	adminTok = tokenFor(t, e.Credential(), mgmtScope(e))
	r = do(t, e, http.MethodPost, sysURL(e, "/sys/audit/sinks/remove"), adminTok, "application/json", `{"sink":"`+rig.id("/a")+`"}`)
	pending.Approval.ID = ""
	if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &pending) != nil || pending.Approval.ID == "" {
		t.Fatalf("removal request for break-glass: %d %s", r.Status, r.Body)
	}
	id3 := pending.Approval.ID
	share, err := os.ReadFile(filepath.Join(e.DataDir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}
	override := func(key string) httpResult {
		return do(t, e, http.MethodPost, sysURL(e, "/sys/quorum/override"), adminTok, "application/json", `{"approval":"`+id3+`","keys":["`+key+`"]}`)
	}
	if r := override(strings.Repeat("00", 33)); r.Status != http.StatusForbidden {
		t.Fatalf("break-glass with a wrong share: %d %s", r.Status, r.Body)
	}
	if r := override(strings.TrimSpace(string(share))); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("break-glass removal: %d %s", r.Status, r.Body)
	}
	e.Server.Close()
	e = rig.start()
	if e.Server.Sealed() {
		t.Fatal("sealed after a break-glass removal")
	}
	bg := findAudit(t, e, "the break-glass sink removal", func(ev audit.Event) bool {
		return ev.Operation == "AuditSinkRemove" && ev.Method == "UNSEAL" && ev.Approval != nil && ev.Approval.ID == id3
	})
	if bg.Approval.Outcome != "breakglass" || !strings.Contains(bg.Reason, "BREAK-GLASS") || !strings.Contains(bg.Reason, rig.id("/a")) {
		t.Fatalf("break-glass removal event: %+v %+v", bg, bg.Approval)
	}
}

// TestAuditSinkRemoveAudited: without a policy naming AuditSinkRemove, a
// removal needs no approval (the request answers 200 and stores nothing),
// and the unseal without the sink records it: event AuditSinkRemove, the
// known set updated. Adding a sink is never restricted.
func TestAuditSinkRemoveAudited(t *testing.T) {
	rig := &sinkRig{t: t, dir: t.TempDir(), col: newCollector(t)}
	e := rig.start("/a")
	tok := tokenFor(t, e.Credential(), mgmtScope(e))
	if known, protected := knownSinks(t, e, tok); !slices.Equal(known, []string{rig.id("/a")}) || protected {
		t.Fatalf("known sinks %v, protected %v", known, protected)
	}
	if r := do(t, e, http.MethodPost, sysURL(e, "/sys/audit/sinks/remove"), tok, "application/json", `{"sink":"`+rig.id("/a")+`"}`); r.Status != http.StatusOK ||
		!strings.Contains(r.Body, `"approvalRequired":false`) {
		t.Fatalf("removal without a policy: %d %s", r.Status, r.Body)
	}
	e.Server.Close()

	e = rig.start("/b") // /a removed, /b added
	if e.Server.Sealed() {
		t.Fatal("sealed: a removal without a policy must not need approval")
	}
	ev := findAudit(t, e, "the sink removal", func(ev audit.Event) bool {
		return ev.Operation == "AuditSinkRemove" && strings.Contains(ev.Reason, rig.id("/a"))
	})
	if ev.Service != "sys" || ev.Approval != nil || ev.Status != http.StatusOK || strings.Contains(ev.Reason, "test-token") {
		t.Fatalf("removal event: %+v", ev)
	}
	tok = tokenFor(t, e.Credential(), mgmtScope(e))
	if known, _ := knownSinks(t, e, tok); !slices.Equal(known, []string{rig.id("/b")}) {
		t.Fatalf("known sinks: %v", known)
	}
}
