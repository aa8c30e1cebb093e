package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/quorum"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/skr"
)

// TestQuorumApprovalSweep: the sweep job, on the injected clock, writes a
// pending request past its expiry Expired (audited ApprovalExpire) and
// deletes a stored result (a released key) 24 h after its run (audited
// ApprovalResultExpire); the expired purge changed nothing, the result is
// no longer delivered.
func TestQuorumApprovalSweep(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	ctx := context.Background()
	if e.Info.Attestation == nil {
		t.Fatal("the dev server has no attestation authority")
	}
	a := newSP(t, e, "sweep-approver")
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	call := func(cred azcore.TokenCredential, method, path, body string) httpResult {
		return do(t, e, method, vaultURL+path+"?api-version=7.5", vaultTokenFor(t, e, cred), "application/json", body)
	}
	pol := `{"operations":["SecretPurge","KeyRelease"],"approvers":["` + a.ObjectID + `"],"approvalsRequired":1,"expirySeconds":120}`
	if r := call(e.Credential(), http.MethodPut, "/quorumpolicy", pol); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	// A purge left pending.
	sc, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.SetSecret(ctx, "sweep-s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.DeleteSecret(ctx, "sweep-s", nil); err != nil {
		t.Fatal(err)
	}
	_, err = sc.PurgeDeletedSecret(ctx, "sweep-s", nil)
	re := wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	var pending struct{ Approval struct{ ID string } }
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&pending); err != nil || pending.Approval.ID == "" {
		t.Fatalf("pending purge: %v", err)
	}
	purgeID := pending.Approval.ID

	// A release, approved: its result is stored for the requester.
	keys := keysFor(t, e, e.Info.VaultURL, e.Credential())
	relPol := `{"anyOf":[{"allOf":[{"claim":"x-ms-sweep-test","equals":"yes"}],"authority":"` + e.Info.Attestation.Issuer + `"}],"version":"1.0.0"}`
	if _, err := keys.CreateKey(ctx, "sweep-release", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048)),
		KeyAttributes: &azkeys.KeyAttributes{Exportable: to.Ptr(true)}, ReleasePolicy: &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(relPol)}}, nil); err != nil {
		t.Fatal(err)
	}
	la, err := skr.LoadOrCreateLocalAuthority(filepath.Dir(e.Info.Attestation.KeyFile), e.Info.Attestation.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := la.Mint(map[string]any{"x-ms-sweep-test": "yes"}, &rt.PublicKey, clk.Now(), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = keys.Release(ctx, "sweep-release", "", azkeys.ReleaseParameters{TargetAttestationToken: &tok}, nil)
	re = wantErr(t, err, http.StatusAccepted, "ApprovalRequired")
	if err := json.NewDecoder(re.RawResponse.Body).Decode(&pending); err != nil || pending.Approval.ID == purgeID {
		t.Fatalf("pending release: %v", err)
	}
	relID := pending.Approval.ID
	if r := call(a.Cred, http.MethodPost, "/approvals/"+relID+"/approve", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"result":"Available"`) {
		t.Fatalf("approve the release: %d %s", r.Status, r.Body)
	}
	q := e.Server.Quorum()
	advance := func(d time.Duration) {
		t.Helper()
		since := clk.Now().Add(time.Second) // a run the advance triggers, not an earlier one
		clk.Advance(d)
		if err := e.Server.Jobs().WaitRunSince(ctx, server.JobQuorumSweep, since); err != nil {
			t.Fatal(err)
		}
	}

	// Past the request's expiry: the job writes it Expired.
	advance(3 * time.Minute)
	if r, err := q.Get(ctx, purgeID); err != nil || r.State != quorum.Expired {
		t.Fatalf("stored state of the expired request: %+v %v", r, err)
	}
	ev := findAudit(t, e, "the sweep's expiry", func(ev audit.Event) bool {
		return ev.Operation == "ApprovalExpire" && ev.Approval != nil && ev.Approval.ID == purgeID
	})
	if ev.Method != "JOB" || ev.Approval.Outcome != quorum.SweptExpired || ev.Approval.Operation != "SecretPurge" || ev.Service != "vault" {
		t.Fatalf("expiry event: %+v %+v", ev, ev.Approval)
	}
	if ok, err := q.StoredResult(ctx, relID); err != nil || !ok {
		t.Fatalf("the release's result before 24 h: %v %v", ok, err)
	}
	// 24 h after the run: the job deletes the result. Fresh credentials:
	// tokens issued before the advance have expired on the server's clock.
	advance(quorum.ResultTTL)
	if ok, err := q.StoredResult(ctx, relID); err != nil || ok {
		t.Fatalf("the release's result after 24 h and the sweep: %v %v", ok, err)
	}
	if r, err := q.Get(ctx, relID); err != nil || r.Result != quorum.ResultExpired || r.State != quorum.Executed {
		t.Fatalf("stored request after the result sweep: %+v %v", r, err)
	}
	findAudit(t, e, "the sweep's result deletion", func(ev audit.Event) bool {
		return ev.Operation == "ApprovalResultExpire" && ev.Approval != nil && ev.Approval.ID == relID && ev.Approval.Outcome == quorum.SweptResultExpired
	})
	admin := e.CredentialFor(e.Info.TenantID, e.Info.ClientID, e.Info.ClientSecret)
	if r := call(admin, http.MethodGet, "/approvals/"+relID+"/result", ""); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "ResultNotAvailable") {
		t.Fatalf("result after the sweep: %d %s", r.Status, r.Body)
	}
	approver := e.CredentialFor(e.Info.TenantID, a.AppID, a.Secret)
	if r := call(approver, http.MethodPost, "/approvals/"+purgeID+"/approve", ""); r.Status != http.StatusConflict || !strings.Contains(r.Body, "Approval") {
		t.Fatalf("approve the expired purge: %d %s", r.Status, r.Body)
	}
	if r := call(admin, http.MethodGet, "/deletedsecrets/sweep-s", ""); r.Status != http.StatusOK {
		t.Fatalf("the expired purge's secret: %d %s", r.Status, r.Body)
	}
}
