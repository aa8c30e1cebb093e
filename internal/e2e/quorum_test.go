package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/securitydomain"
	"github.com/keyward/keyward/internal/skr"
)

// TestQuorumApprovalPurge is issue 20's proof of quorum approval: with a
// 2-of-3 policy on key purge, an administrator's PurgeDeletedKey (official
// azkeys client) answers ApprovalRequired and changes nothing; the
// requester cannot approve their own request; two other approvers approve
// (concurrently) and the key is purged exactly once, as the requester; a
// rejected and an expired request leave their keys recoverable; the audit
// log holds the requester, every approver and each outcome.
func TestQuorumApprovalPurge(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	ctx := context.Background()
	admin := devObjectID(t, e)
	a, b := newSP(t, e, "approver-a"), newSP(t, e, "approver-b")
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	scope := "https://vault.localhost:" + port(e) + "/.default"
	token := func(cred azcore.TokenCredential) string {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Token
	}
	call := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		return do(t, e, method, vaultURL+path+"?api-version=7.5", token(cred), "application/json", body)
	}

	// The policy: purges need 2 approvals among admin, a and b (the
	// requester's never counts); requests expire after 10 minutes.
	pol := `{"operations":["KeyPurge","SecretPurge"],"approvers":["` + admin + `","` + a.ObjectID + `","` + b.ObjectID + `"],"approvalsRequired":2,"expirySeconds":600}`
	// A bad policy is refused, Azure-shaped, and changes nothing.
	if r := call(e.Credential(), http.MethodPut, "/quorumpolicy", `{"operations":["KeyGet"],"approvers":["x"],"approvalsRequired":1}`); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `"code":"BadParameter"`) {
		t.Fatalf("bad policy: %d %s", r.Status, r.Body)
	}
	if r := call(e.Credential(), http.MethodGet, "/quorumpolicy", ""); r.Status != http.StatusNotFound {
		t.Fatalf("policy after a refused one: %d %s", r.Status, r.Body)
	}
	if r := call(e.Credential(), http.MethodPut, "/quorumpolicy", pol); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	if r := call(e.Credential(), http.MethodGet, "/quorumpolicy", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"approvalsRequired":2`) {
		t.Fatalf("get policy: %d %s", r.Status, r.Body)
	}
	// The policy protects itself: one administrator cannot remove it.
	if r := call(e.Credential(), http.MethodDelete, "/quorumpolicy", ""); r.Status != http.StatusAccepted || !strings.Contains(r.Body, `"code":"ApprovalRequired"`) {
		t.Fatalf("delete policy alone: %d %s", r.Status, r.Body)
	}

	keys := keysFor(t, e, e.Info.VaultURL, e.Credential())
	deleted := func(name string) {
		if _, err := keys.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.DeleteKey(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	// purge asks for the purge with the official client and returns the
	// approval request's ID from the pending-approval error.
	purge := func(name string) string {
		_, err := keys.PurgeDeletedKey(ctx, name, nil)
		re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
		var body struct {
			Error    struct{ Message string }
			Approval struct{ ID, State, Requester, Operation string }
		}
		if err := json.NewDecoder(re.RawResponse.Body).Decode(&body); err != nil {
			t.Fatalf("202 body: %v", err)
		}
		id := body.Approval.ID
		if id == "" || body.Approval.State != "Pending" || body.Approval.Requester != strings.ToLower(admin) || body.Approval.Operation != "KeyPurge" ||
			!strings.Contains(body.Error.Message, id) || !strings.Contains(body.Error.Message, "/approvals/"+id+"/approve") {
			t.Fatalf("pending approval body: %+v", body)
		}
		if !strings.Contains(re.RawResponse.Header.Get("Location"), "/approvals/"+id) {
			t.Fatalf("Location %q", re.RawResponse.Header.Get("Location"))
		}
		// Nothing changed: the key is still recoverable.
		if _, err := keys.GetDeletedKey(ctx, name, nil); err != nil {
			t.Fatalf("%s after the diverted purge: %v", name, err)
		}
		return id
	}

	deleted("quorum-approved")
	id := purge("quorum-approved")

	// The requester's own approval is refused.
	if r := call(e.Credential(), http.MethodPost, "/approvals/"+id+"/approve", ""); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "SelfApprovalForbidden") {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	// A principal that is no approver cannot see the request.
	other := newSP(t, e, "not-an-approver")
	if r := call(other.Cred, http.MethodPost, "/approvals/"+id+"/approve", ""); r.Status != http.StatusNotFound {
		t.Fatalf("stranger approval: %d %s", r.Status, r.Body)
	}
	if r := call(a.Cred, http.MethodGet, "/approvals", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, id) {
		t.Fatalf("list as approver: %d %s", r.Status, r.Body)
	}
	// Two approvers approve at the same time: the purge runs once.
	var wg sync.WaitGroup
	results := make([]httpResult, 2)
	for i, p := range []principal{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = call(p.Cred, http.MethodPost, "/approvals/"+id+"/approve", "")
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.Status != http.StatusOK {
			t.Fatalf("approve: %d %s", r.Status, r.Body)
		}
	}
	var final struct {
		State        string
		ResultStatus int
		Approvals    []struct{ ObjectID string }
	}
	r := call(a.Cred, http.MethodGet, "/approvals/"+id, "")
	if err := json.Unmarshal([]byte(r.Body), &final); err != nil || final.State != "Executed" || final.ResultStatus != http.StatusNoContent || len(final.Approvals) != 2 {
		t.Fatalf("after approvals: %d %s", r.Status, r.Body)
	}
	_, err := keys.GetDeletedKey(ctx, "quorum-approved", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	// A late decision changes nothing.
	if r := call(a.Cred, http.MethodPost, "/approvals/"+id+"/approve", ""); r.Status != http.StatusConflict {
		t.Fatalf("approve after execution: %d %s", r.Status, r.Body)
	}

	// Rejected: one approver rejects; the other's approval cannot revive it.
	deleted("quorum-rejected")
	rej := purge("quorum-rejected")
	if r := call(a.Cred, http.MethodPost, "/approvals/"+rej+"/reject", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Rejected"`) {
		t.Fatalf("reject: %d %s", r.Status, r.Body)
	}
	if r := call(b.Cred, http.MethodPost, "/approvals/"+rej+"/approve", ""); r.Status != http.StatusConflict {
		t.Fatalf("approve a rejected request: %d %s", r.Status, r.Body)
	}
	if _, err := keys.GetDeletedKey(ctx, "quorum-rejected", nil); err != nil {
		t.Fatalf("rejected purge changed the key: %v", err)
	}

	// Expired: the clock passes the request's expiry; approvals do nothing.
	deleted("quorum-expired")
	exp := purge("quorum-expired")
	if r := call(a.Cred, http.MethodPost, "/approvals/"+exp+"/approve", ""); r.Status != http.StatusOK {
		t.Fatalf("first approval: %d %s", r.Status, r.Body)
	}
	clk.Advance(11 * time.Minute)
	if r := call(b.Cred, http.MethodPost, "/approvals/"+exp+"/approve", ""); r.Status != http.StatusConflict || !strings.Contains(r.Body, "ApprovalExpired") {
		t.Fatalf("approve an expired request: %d %s", r.Status, r.Body)
	}
	if r := call(b.Cred, http.MethodGet, "/approvals/"+exp, ""); !strings.Contains(r.Body, `"state":"Expired"`) {
		t.Fatalf("expired request: %d %s", r.Status, r.Body)
	}
	if _, err := keys.GetDeletedKey(ctx, "quorum-expired", nil); err != nil {
		t.Fatalf("expired purge changed the key: %v", err)
	}

	// Break-glass: an operator with a threshold of the unseal shares runs
	// a pending request without its approvals; wrong shares change nothing.
	deleted("quorum-breakglass")
	bg := purge("quorum-breakglass")
	mtok, err := e.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
	if err != nil {
		t.Fatal(err)
	}
	override := func(share string) httpResult {
		return do(t, e, http.MethodPost, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/sys/quorum/override", mtok.Token, "application/json",
			`{"approval":"`+bg+`","keys":["`+share+`"]}`)
	}
	if r := override(base64.StdEncoding.EncodeToString(make([]byte, 32))); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "BreakGlassRefused") {
		t.Fatalf("break-glass with a wrong share: %d %s", r.Status, r.Body)
	}
	if _, err := keys.GetDeletedKey(ctx, "quorum-breakglass", nil); err != nil {
		t.Fatalf("refused break-glass changed the key: %v", err)
	}
	share, err := os.ReadFile(filepath.Join(e.DataDir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}
	if r := override(strings.TrimSpace(string(share))); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) || !strings.Contains(r.Body, `"breakGlass":"`+strings.ToLower(admin)+`"`) {
		t.Fatalf("break-glass: %d %s", r.Status, r.Body)
	}
	_, err = keys.GetDeletedKey(ctx, "quorum-breakglass", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	if r := override(strings.TrimSpace(string(share))); r.Status != http.StatusConflict {
		t.Fatalf("second break-glass: %d %s", r.Status, r.Body)
	}
	findAudit(t, e, "the break-glass purge", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == bg && ev.Approval.Outcome == "breakglass" && ev.Operation == "KeyPurge" &&
			strings.HasPrefix(ev.Reason, "BREAK-GLASS") && ev.Caller.ObjectID == strings.ToLower(admin)
	})
	findAudit(t, e, "the refused break-glass", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == bg && ev.Operation == "QuorumBreakGlass" && ev.Status == http.StatusForbidden
	})

	// The audit log: the requester's diverted purges, every decision, and
	// exactly one executed purge, as the requester, naming both approvers.
	findAudit(t, e, "the executed purge", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Operation == "KeyPurge"
	})
	var executed, pending, refusedSelf, approved []audit.Event
	outcomes := map[string]string{}
	for _, ev := range auditEvents(t, e) {
		if ev.Approval == nil {
			continue
		}
		switch {
		case ev.Approval.ID == id && ev.Approval.Outcome == "executed":
			executed = append(executed, ev)
		case ev.Approval.ID == id && ev.Approval.Outcome == "pending":
			pending = append(pending, ev)
		case ev.Approval.ID == id && ev.Operation == "ApprovalApprove" && ev.Caller.ObjectID == admin:
			refusedSelf = append(refusedSelf, ev)
		case ev.Approval.ID == id && ev.Approval.Outcome == "approved" && ev.Status == http.StatusOK:
			approved = append(approved, ev)
		case ev.Approval.ID == rej || ev.Approval.ID == exp:
			if ev.Operation == "ApprovalReject" || ev.Approval.Outcome == "expired" {
				outcomes[ev.Approval.ID] = ev.Approval.Outcome
			}
		}
	}
	if len(pending) == 0 || pending[0].Caller.ObjectID != admin || pending[0].Status != http.StatusAccepted || pending[0].Operation != "KeyPurge" {
		t.Fatalf("pending purge events: %+v", pending)
	}
	if len(refusedSelf) == 0 || refusedSelf[len(refusedSelf)-1].Status != http.StatusForbidden {
		t.Fatalf("self approval events: %+v", refusedSelf)
	}
	voters := map[string]bool{}
	for _, ev := range approved {
		voters[ev.Caller.ObjectID] = true
	}
	if !voters[a.ObjectID] || !voters[b.ObjectID] {
		t.Fatalf("approval events by %v, want %s and %s", voters, a.ObjectID, b.ObjectID)
	}
	// One execution (a second line with the same request ID may complete
	// the commit-time event: count request IDs).
	runs := map[string]bool{}
	final204 := false
	for _, ev := range executed {
		runs[ev.RequestID] = true
		final204 = final204 || ev.Status == http.StatusNoContent
		if ev.Caller.ObjectID != strings.ToLower(admin) || ev.CorrelationID != id {
			t.Fatalf("executed purge event: %+v", ev)
		}
		got := slices.Clone(ev.Approval.Approvers)
		slices.Sort(got)
		want := []string{strings.ToLower(a.ObjectID), strings.ToLower(b.ObjectID)}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("executed purge names approvers %v, want %v", got, want)
		}
	}
	if len(runs) != 1 || !final204 {
		t.Fatalf("the approved purge ran %d times (204 recorded: %v)", len(runs), final204)
	}
	if outcomes[rej] != "rejected" || outcomes[exp] != "expired" {
		t.Fatalf("rejected/expired outcomes in the audit log: %v", outcomes)
	}
}

// TestQuorumApprovalARMVaultDelete: the quorum step runs in ARM's routing
// too. With a vault policy on VaultDelete, the administrator's delete
// through the official armkeyvault client answers ApprovalRequired and the
// vault stays; an approver's approval on the vault's data plane deletes
// it, once, as the requester, through ARM's own handler.
func TestQuorumApprovalARMVaultDelete(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	admin := devObjectID(t, e)
	a := newSP(t, e, "arm-approver")
	const name = "quorum-arm"
	createVault(t, e, e.Credential(), name, true, nil)
	vaultURL := strings.TrimSuffix(vaultURLOf(e, name), "/")
	scope := "https://vault.localhost:" + port(e) + "/.default"
	call := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, e, method, vaultURL+path+"?api-version=7.5", tok.Token, "application/json", body)
	}
	if r := call(e.Credential(), http.MethodPut, "/quorumpolicy", `{"operations":["VaultDelete","VaultAccessPolicyAdd","RoleAssignmentCreate"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}

	// A role assignment at the vault's scope waits too, then is made once.
	assignments := assignmentsARM(t, e, e.Credential())
	raName := newGUID()
	_, err := assignments.Create(ctx, vaultScope(e, name), raName, armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"),
			PrincipalID:      to.Ptr(e.Info.UnprivilegedObjectID),
		}}, nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var ra struct {
		Approval struct{ ID, Operation string }
	}
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&ra); err != nil || ra.Approval.Operation != "RoleAssignmentCreate" {
		t.Fatalf("role assignment 202: %+v %v", ra, err)
	}
	if _, err := assignments.Get(ctx, vaultScope(e, name), raName, nil); err == nil {
		t.Fatal("the role assignment exists before approval")
	}
	if r := call(a.Cred, http.MethodPost, "/approvals/"+ra.Approval.ID+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve the role assignment: %d %s", r.Status, r.Body)
	}
	if got, err := assignments.Get(ctx, vaultScope(e, name), raName, nil); err != nil || !strings.EqualFold(*got.Properties.PrincipalID, e.Info.UnprivilegedObjectID) {
		t.Fatalf("the approved role assignment: %v", err)
	}
	vaults := vaultsARM(t, e, e.Credential())
	_, err = vaults.Delete(ctx, e.Info.ResourceGroup, name, nil)
	re = wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var body struct {
		Approval struct{ ID, Operation, Requester string }
	}
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&body); err != nil || body.Approval.Operation != "VaultDelete" || body.Approval.Requester != strings.ToLower(admin) {
		t.Fatalf("202 body: %+v %v", body, err)
	}
	if _, err := vaults.Get(ctx, e.Info.ResourceGroup, name, nil); err != nil {
		t.Fatalf("the vault is gone before approval: %v", err)
	}
	id := body.Approval.ID
	r := call(a.Cred, http.MethodPost, "/approvals/"+id+"/approve", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	_, err = vaults.Get(ctx, e.Info.ResourceGroup, name, nil)
	wantErr(t, err, http.StatusNotFound, "ResourceNotFound")
	ev := findAudit(t, e, "the approved vault delete", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Service == "management"
	})
	if ev.Operation != "VaultDelete" || ev.Caller.ObjectID != strings.ToLower(admin) || !slices.Contains(ev.Approval.Approvers, strings.ToLower(a.ObjectID)) {
		t.Fatalf("executed event: %+v %+v", ev, ev.Approval)
	}
}

// TestQuorumApprovalPool: a managed HSM pool's own policy protects its key
// purge (azkeys against the pool); the approval is decided on the pool's
// data plane and the purge runs once, as the requester, under the pool's
// local RBAC.
func TestQuorumApprovalPool(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "pool-approver")
	if st, b := hsmCall(t, e, e.Credential(), "dev", http.MethodPut, "/quorumpolicy", map[string]any{
		"operations": []string{"KeyPurge"}, "approvers": []string{a.ObjectID}, "approvalsRequired": 1}); st != http.StatusOK {
		t.Fatalf("set pool policy: %d %s", st, b)
	}
	kc := keysFor(t, e, e.Info.ManagedHSMURL, e.Credential())
	if _, err := kc.ImportKey(ctx, "quorum-pool", azkeys.ImportKeyParameters{HSM: to.Ptr(true),
		Key: &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeOct), K: make([]byte, 32)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.DeleteKey(ctx, "quorum-pool", nil); err != nil {
		t.Fatal(err)
	}
	_, err := kc.PurgeDeletedKey(ctx, "quorum-pool", nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var body struct{ Approval struct{ ID string } }
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&body); err != nil || body.Approval.ID == "" {
		t.Fatalf("202 body: %v", err)
	}
	if _, err := kc.GetDeletedKey(ctx, "quorum-pool", nil); err != nil {
		t.Fatalf("the diverted purge changed the key: %v", err)
	}
	// The vault's approval API does not show a pool's request.
	if r := do(t, e, http.MethodGet, strings.TrimSuffix(e.Info.VaultURL, "/")+"/approvals/"+body.Approval.ID+"?api-version=7.5", vaultTokenFor(t, e, a.Cred), "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("pool request on the vault host: %d %s", r.Status, r.Body)
	}
	st, b := hsmCall(t, e, a.Cred, "dev", http.MethodPost, "/approvals/"+body.Approval.ID+"/approve", nil)
	if st != http.StatusOK || !strings.Contains(string(b), `"state":"Executed"`) {
		t.Fatalf("approve on the pool: %d %s", st, b)
	}
	_, err = kc.GetDeletedKey(ctx, "quorum-pool", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound")
	findAudit(t, e, "the approved pool purge", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == body.Approval.ID && ev.Approval.Outcome == "executed" && ev.Service == "managedhsm" && ev.Operation == "KeyPurge"
	})
}

func vaultTokenFor(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential) string {
	t.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault.localhost:" + port(e) + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// TestQuorumApprovalTenantPolicy: a tenant-wide policy, set on the
// management host by the tenant's access administrator, protects every
// vault without a policy of its own; only such an administrator may set it.
func TestQuorumApprovalTenantPolicy(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "tenant-approver")
	mgmt := func(cred azcore.TokenCredential, method, body string) httpResult {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/tenantPolicy?api-version=2026-01-01", tok.Token, "application/json", body)
	}
	pol := `{"operations":["SecretPurge"],"approvers":["` + a.ObjectID + `"],"approvalsRequired":1}`
	unpriv := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret)
	if r := mgmt(unpriv, http.MethodPut, pol); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "AuthorizationFailed") {
		t.Fatalf("tenant policy by an unprivileged principal: %d %s", r.Status, r.Body)
	}
	if r := mgmt(e.Credential(), http.MethodPut, `{"operations":["SecretPurge"],"approvalsRequired":1}`); r.Status != http.StatusBadRequest {
		t.Fatalf("bad tenant policy: %d %s", r.Status, r.Body)
	}
	if r := mgmt(e.Credential(), http.MethodPut, pol); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	if r := mgmt(e.Credential(), http.MethodGet, ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"scope":"tenant/`) {
		t.Fatalf("get tenant policy: %d %s", r.Status, r.Body)
	}
	secrets := secretsFor(t, e, e.Info.VaultURL, e.Credential())
	if _, err := secrets.SetSecret(ctx, "tenant-q", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.DeleteSecret(ctx, "tenant-q", nil); err != nil {
		t.Fatal(err)
	}
	_, err := secrets.PurgeDeletedSecret(ctx, "tenant-q", nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var body struct {
		Approval struct{ ID, PolicyScope string }
	}
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&body); err != nil || !strings.HasPrefix(body.Approval.PolicyScope, "tenant/") {
		t.Fatalf("202 body: %+v %v", body, err)
	}
	r := do(t, e, http.MethodPost, strings.TrimSuffix(e.Info.VaultURL, "/")+"/approvals/"+body.Approval.ID+"/approve?api-version=7.5", vaultTokenFor(t, e, a.Cred), "", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	_, err = secrets.GetDeletedSecret(ctx, "tenant-q", nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	if r := mgmt(e.Credential(), http.MethodDelete, ""); r.Status != http.StatusOK {
		t.Fatalf("delete tenant policy: %d %s", r.Status, r.Body)
	}
}

// TestQuorumApprovalKeyRelease: with a policy on key release, the official
// azkeys Release answers ApprovalRequired and releases nothing; once two
// approvers approve, the release runs once as the requester and its answer
// (the signed release JWS) is kept sealed for the requester alone: GET
// /approvals/{id}/result delivers it once (approvers get 403, strangers
// 404, a second read 404); the approvals' answers and the audit log never
// carry it.
func TestQuorumApprovalKeyRelease(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	if e.Info.Attestation == nil {
		t.Fatal("the dev server has no attestation authority")
	}
	admin := devObjectID(t, e)
	a, b := newSP(t, e, "release-approver-a"), newSP(t, e, "release-approver-b")
	stranger := newSP(t, e, "release-stranger")
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	call := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		return do(t, e, method, vaultURL+path+"?api-version=7.5", vaultTokenFor(t, e, cred), "application/json", body)
	}
	pol := `{"operations":["KeyRelease"],"approvers":["` + a.ObjectID + `","` + b.ObjectID + `"],"approvalsRequired":2,"expirySeconds":600}`
	if r := call(e.Credential(), http.MethodPut, "/quorumpolicy", pol); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}

	keys := keysFor(t, e, e.Info.VaultURL, e.Credential())
	relPol := `{"anyOf":[{"allOf":[{"claim":"x-ms-quorum-test","equals":"yes"}],"authority":"` + e.Info.Attestation.Issuer + `"}],"version":"1.0.0"}`
	if _, err := keys.CreateKey(ctx, "quorum-release", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048)),
		KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)}, ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(relPol)}}, nil); err != nil {
		t.Fatal(err)
	}
	la, err := skr.LoadOrCreateLocalAuthority(filepath.Dir(e.Info.Attestation.KeyFile), e.Info.Attestation.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	runtime, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := la.Mint(map[string]any{"x-ms-quorum-test": "yes"}, &runtime.PublicKey, time.Now(), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = keys.Release(ctx, "quorum-release", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok}, nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var pending struct {
		Approval struct{ ID, Operation, State string }
	}
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&pending); err != nil || pending.Approval.Operation != "KeyRelease" || pending.Approval.State != "Pending" {
		t.Fatalf("pending release: %+v %v", pending, err)
	}
	id := pending.Approval.ID
	// Before the run there is nothing to deliver.
	if r := call(e.Credential(), http.MethodGet, "/approvals/"+id+"/result", ""); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "ResultNotAvailable") {
		t.Fatalf("result while pending: %d %s", r.Status, r.Body)
	}
	if r := call(a.Cred, http.MethodPost, "/approvals/"+id+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Pending"`) {
		t.Fatalf("first approval: %d %s", r.Status, r.Body)
	}
	r := call(b.Cred, http.MethodPost, "/approvals/"+id+"/approve", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) || !strings.Contains(r.Body, `"result":"Available"`) || strings.Contains(r.Body, "eyJ") {
		t.Fatalf("quorum approval (must not carry the released key): %d %s", r.Status, r.Body)
	}
	// Only the requester receives the result: an approver gets 403, a
	// stranger 404, and neither consumes it.
	if r := call(a.Cred, http.MethodGet, "/approvals/"+id+"/result", ""); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "NotTheRequester") {
		t.Fatalf("result as an approver: %d %s", r.Status, r.Body)
	}
	if r := call(stranger.Cred, http.MethodGet, "/approvals/"+id+"/result", ""); r.Status != http.StatusNotFound {
		t.Fatalf("result as a stranger: %d %s", r.Status, r.Body)
	}
	r = call(e.Credential(), http.MethodGet, "/approvals/"+id+"/result", "")
	var res struct{ Value string }
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &res) != nil || strings.Count(res.Value, ".") != 2 {
		t.Fatalf("result as the requester: %d %s", r.Status, r.Body)
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(res.Value, ".")[1])
	if err != nil || !strings.Contains(string(payload), `/keys/quorum-release/`) || !strings.Contains(string(payload), `"key_hsm"`) {
		t.Fatalf("release JWS payload: %v %.300s", err, payload)
	}
	// Delivered once.
	if r := call(e.Credential(), http.MethodGet, "/approvals/"+id+"/result", ""); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "ResultNotAvailable") {
		t.Fatalf("second read: %d %s", r.Status, r.Body)
	}
	if r := call(e.Credential(), http.MethodGet, "/approvals/"+id, ""); !strings.Contains(r.Body, `"result":"Delivered"`) {
		t.Fatalf("request after delivery: %d %s", r.Status, r.Body)
	}
	// The audit log names the run and the delivery, never the released key.
	findAudit(t, e, "the executed release", func(ev audit.Event) bool {
		return ev.Operation == "KeyRelease" && ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" &&
			ev.Caller.ObjectID == admin && ev.Status == http.StatusOK
	})
	findAudit(t, e, "the delivery", func(ev audit.Event) bool {
		return ev.Operation == "ApprovalResultGet" && ev.Approval != nil && ev.Approval.Outcome == "result-delivered" && ev.Status == http.StatusOK
	})
	raw, err := os.ReadFile(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), res.Value[:40]) || strings.Contains(string(raw), strings.Split(res.Value, ".")[2]) {
		t.Fatal("the released key's JWS is in the audit log")
	}
}

// TestQuorumApprovalSecurityDomainDownload: a new managed HSM pool's policy
// protects its security domain download (its activation); the download
// answers ApprovalRequired and activates nothing; once approved it runs
// once as the requester, and the security domain is kept for the requester
// alone (GET /approvals/{id}/result on the pool's host, once).
func TestQuorumApprovalSecurityDomainDownload(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "sd-approver")
	hc, err := armkeyvault.NewManagedHsmsClient(e.Info.SubscriptionID, e.Credential(), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	poller, err := hc.BeginCreateOrUpdate(ctx, e.Info.ResourceGroup, "qpool", armkeyvault.ManagedHsm{
		Location: to.Ptr(e.Info.Location), SKU: &armkeyvault.ManagedHsmSKU{Family: to.Ptr(armkeyvault.ManagedHsmSKUFamilyB), Name: to.Ptr(armkeyvault.ManagedHsmSKUNameStandardB1)},
		Properties: &armkeyvault.ManagedHsmProperties{TenantID: to.Ptr(e.Info.TenantID), InitialAdminObjectIDs: []*string{to.Ptr(e.Info.ObjectID)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st, b := hsmCall(t, e, e.Credential(), "qpool", http.MethodPut, "/quorumpolicy", map[string]any{
		"operations": []string{"HSMSecurityDomainDownload"}, "approvers": []string{a.ObjectID}, "approvalsRequired": 1}); st != http.StatusOK {
		t.Fatalf("set pool policy: %d %s", st, b)
	}
	var certs []any
	for i := 0; i < 3; i++ {
		_, der := custodian(t)
		certs = append(certs, map[string]any{"kty": "RSA", "x5c": []string{b64std(der)}})
	}
	st, raw := hsmCall(t, e, e.Credential(), "qpool", http.MethodPost, "/securitydomain/download", map[string]any{"certificates": certs, "required": 2})
	var pending struct {
		Error    struct{ Code string }
		Approval struct{ ID, Operation string }
	}
	if st != http.StatusAccepted || json.Unmarshal(raw, &pending) != nil || pending.Error.Code != "ApprovalRequired" || pending.Approval.Operation != "HSMSecurityDomainDownload" {
		t.Fatalf("diverted download: %d %s", st, raw)
	}
	id := pending.Approval.ID
	active := func() armkeyvault.ActivationStatus {
		got, err := hc.Get(ctx, e.Info.ResourceGroup, "qpool", nil)
		if err != nil {
			t.Fatal(err)
		}
		return *got.Properties.SecurityDomainProperties.ActivationStatus
	}
	if s := active(); s != armkeyvault.ActivationStatusNotActivated {
		t.Fatalf("after the diverted download: %s", s)
	}
	st, raw = hsmCall(t, e, a.Cred, "qpool", http.MethodPost, "/approvals/"+id+"/approve", nil)
	if st != http.StatusOK || !strings.Contains(string(raw), `"state":"Executed"`) || !strings.Contains(string(raw), `"result":"Available"`) || strings.Contains(string(raw), "EncData") {
		t.Fatalf("approve: %d %s", st, raw)
	}
	if s := active(); s != armkeyvault.ActivationStatusActive {
		t.Fatalf("after the approved download: %s", s)
	}
	if st, raw := hsmCall(t, e, a.Cred, "qpool", http.MethodGet, "/approvals/"+id+"/result", nil); st != http.StatusForbidden || !strings.Contains(string(raw), "NotTheRequester") {
		t.Fatalf("result as the approver: %d %s", st, raw)
	}
	st, raw = hsmCall(t, e, e.Credential(), "qpool", http.MethodGet, "/approvals/"+id+"/result", nil)
	var dl struct{ Value string }
	if st != http.StatusAccepted || json.Unmarshal(raw, &dl) != nil {
		t.Fatalf("result as the requester: %d %s", st, raw)
	}
	doc, err := securitydomain.Parse([]byte(dl.Value))
	if err != nil || doc.SharedKeys == nil || len(doc.SharedKeys.EncShares) != 3 || doc.SharedKeys.Required != 2 {
		t.Fatalf("security domain from the result: %v", err)
	}
	if st, raw := hsmCall(t, e, e.Credential(), "qpool", http.MethodGet, "/approvals/"+id+"/result", nil); st != http.StatusNotFound || !strings.Contains(string(raw), "ResultNotAvailable") {
		t.Fatalf("second read: %d %s", st, raw)
	}
	findAudit(t, e, "the approved download", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Service == "managedhsm" && ev.Operation == "HSMSecurityDomainDownload"
	})
}

// TestQuorumApprovalKeyMgmtCredentials: the tenant's policy protects a
// keymgmt KMS provider write that carries credentials. Vault's Go client
// gets the Vault-shaped pending answer (202, data.approval, a warning
// naming ApprovalRequired) and nothing is written; the request is decided
// on the management host's tenant-level approval API and then runs once,
// as the requester.
func TestQuorumApprovalKeyMgmtCredentials(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "kms-approver")
	stranger := newSP(t, e, "kms-stranger")
	mgmt := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok.Token, "application/json", body)
	}
	if r := mgmt(e.Credential(), http.MethodPut, "tenantPolicy", `{"operations":["KeyMgmtKMSCredentialsChange"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	vc := vaultClient(t, e)
	caPEM, err := os.ReadFile(e.Info.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := vc.Logical().Write("keymgmt/kms/quorum-kv", map[string]any{
		"provider": "azurekeyvault", "key_collection": "dev",
		"credentials": map[string]any{"client_id": e.Info.ClientID, "client_secret": e.Info.ClientSecret,
			"tenant_id": e.Info.TenantID, "authority_host": e.Info.AuthorityHost, "vault_url": e.Info.VaultURL, "ca_cert": string(caPEM)},
	})
	if err != nil || sec == nil || len(sec.Warnings) != 1 || !strings.Contains(sec.Warnings[0], "ApprovalRequired") {
		t.Fatalf("diverted KMS write: %+v %v", sec, err)
	}
	appr, _ := sec.Data["approval"].(map[string]any)
	id, _ := appr["id"].(string)
	if id == "" || appr["operation"] != "KeyMgmtKMSCredentialsChange" || appr["state"] != "Pending" || strings.Contains(sec.Warnings[0], e.Info.ClientSecret) {
		t.Fatalf("pending approval: %v", sec.Data)
	}
	if s, err := vc.Logical().Read("keymgmt/kms/quorum-kv"); err != nil || s != nil {
		t.Fatalf("the diverted write changed something: %+v %v", s, err)
	}
	// The tenant-level approval API: the requester cannot approve, a
	// stranger cannot see it, the approver lists and approves it.
	if r := mgmt(e.Credential(), http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "SelfApprovalForbidden") {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := mgmt(stranger.Cred, http.MethodGet, "approvals/"+id, ""); r.Status != http.StatusNotFound {
		t.Fatalf("stranger: %d %s", r.Status, r.Body)
	}
	if r := mgmt(a.Cred, http.MethodGet, "approvals", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, id) {
		t.Fatalf("list as the approver: %d %s", r.Status, r.Body)
	}
	// A vault's approval API does not show a tenant-level request.
	if r := do(t, e, http.MethodGet, strings.TrimSuffix(e.Info.VaultURL, "/")+"/approvals/"+id+"?api-version=7.5", vaultTokenFor(t, e, a.Cred), "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("tenant request on a vault host: %d %s", r.Status, r.Body)
	}
	if r := mgmt(a.Cred, http.MethodPost, "approvals/"+id+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	d := mustRead(t, vc, "keymgmt/kms/quorum-kv")
	if d["provider"] != "azurekeyvault" || d["key_collection"] != "dev" || d["credentials"] != nil {
		t.Fatalf("KMS after the approved write: %v", d)
	}
	findAudit(t, e, "the approved KMS write", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == id && ev.Approval.Outcome == "executed" && ev.Service == "keymgmt" &&
			ev.Operation == "KeyMgmtKMSCredentialsChange" && ev.Status < 300
	})
	raw, err := os.ReadFile(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), e.Info.ClientSecret) {
		t.Fatal("the KMS credentials are in the audit log")
	}
}

// TestQuorumApprovalRoleAssignmentAboveVault: the tenant's policy on
// RoleAssignmentCreate holds a role assignment at a subscription's scope
// (official armauthorization client: 202 ApprovalRequired, nothing made);
// it is decided on the management host's tenant-level approval API and
// then made once, as the requester, through ARM's routing.
func TestQuorumApprovalRoleAssignmentAboveVault(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	a := newSP(t, e, "ra-approver")
	mgmt := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
		if err != nil {
			t.Fatal(err)
		}
		return do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/providers/Keyward.Quorum/"+path+"?api-version=2026-01-01", tok.Token, "application/json", body)
	}
	if r := mgmt(e.Credential(), http.MethodPut, "tenantPolicy", `{"operations":["RoleAssignmentCreate"],"approvers":["`+a.ObjectID+`"],"approvalsRequired":1}`); r.Status != http.StatusOK {
		t.Fatalf("set tenant policy: %d %s", r.Status, r.Body)
	}
	assignments := assignmentsARM(t, e, e.Credential())
	scope := "/subscriptions/" + e.Info.SubscriptionID
	raName := newGUID()
	_, err := assignments.Create(ctx, scope, raName, armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6"),
			PrincipalID:      to.Ptr(e.Info.UnprivilegedObjectID),
		}}, nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var ra struct {
		Error    struct{ Message string }
		Approval struct{ ID, Operation, PolicyScope string }
	}
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&ra); err != nil || ra.Approval.Operation != "RoleAssignmentCreate" ||
		!strings.HasPrefix(ra.Approval.PolicyScope, "tenant/") || !strings.Contains(ra.Error.Message, "/providers/Keyward.Quorum/approvals/"+ra.Approval.ID+"/approve") {
		t.Fatalf("role assignment 202: %+v %v", ra, err)
	}
	if _, err := assignments.Get(ctx, scope, raName, nil); err == nil {
		t.Fatal("the role assignment exists before approval")
	}
	if r := mgmt(e.Credential(), http.MethodPost, "approvals/"+ra.Approval.ID+"/approve", ""); r.Status != http.StatusForbidden {
		t.Fatalf("self approval: %d %s", r.Status, r.Body)
	}
	if r := mgmt(a.Cred, http.MethodPost, "approvals/"+ra.Approval.ID+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"state":"Executed"`) {
		t.Fatalf("approve: %d %s", r.Status, r.Body)
	}
	if got, err := assignments.Get(ctx, scope, raName, nil); err != nil || !strings.EqualFold(*got.Properties.PrincipalID, e.Info.UnprivilegedObjectID) {
		t.Fatalf("the approved role assignment: %v", err)
	}
	findAudit(t, e, "the approved role assignment", func(ev audit.Event) bool {
		return ev.Approval != nil && ev.Approval.ID == ra.Approval.ID && ev.Approval.Outcome == "executed" && ev.Service == "management" && ev.Operation == "RoleAssignmentCreate"
	})
}
