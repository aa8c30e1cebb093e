package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestAlertRulesAPI (issue #17 item 4): an alert rule made on the
// management plane (Microsoft.Insights/alertRules on a vault) fires on its
// pattern produced through azsecrets and reaches a config webhook exactly
// once per threshold; bad bodies and URL destinations get ARM's 400 and
// change nothing; a principal without Microsoft.Insights/alertRules/write
// gets 403; after DELETE the same sequence, which was just shown to alert,
// no longer does (a control rule proves the events were seen).
func TestAlertRulesAPI(t *testing.T) {
	rcv := &alertReceiver{secret: []byte("alert-rules-api-secret"), byRule: map[string]int{}, grid: map[string]int{}}
	hookSrv := httptest.NewTLSServer(rcv)
	defer hookSrv.Close()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	e := kwtest.Start(t, kwtest.Options{Clock: clk, EventRoots: hookSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Alerts: server.AlertsConfig{Webhooks: []server.AlertWebhook{{Name: "hook", URL: hookSrv.URL + "/hook", Secret: string(rcv.secret)}}}})
	ctx := context.Background()
	vname := devVaultName(e)
	if _, err := clientFor(t, e, e.Info.VaultURL, e.Credential()).SetSecret(ctx, "watched", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSuffix(e.Info.ManagementURL, "/") + vaultScope(e, vname) + "/providers/Microsoft.Insights/alertRules"
	const q = "?api-version=2023-03-15-preview"
	admin := tokenFor(t, e.Credential(), mgmtScope(e))
	body := `{"properties":{"severity":"high","threshold":2,"window":"1m","cooldown":"1m","destinations":["hook"],
		"filter":{"operations":["SecretGet"],"results":["denied"]}}}`
	put := func(tok, name, b string, want int) string {
		t.Helper()
		r := do(t, e, http.MethodPut, base+"/"+name+q, tok, "application/json", b)
		if r.Status != want {
			t.Fatalf("PUT %s: %d %s, want %d", name, r.Status, r.Body, want)
		}
		return r.Body
	}
	ruleID := vaultScope(e, vname) + "/providers/Microsoft.Insights/alertRules/denied-reads"
	controlID := vaultScope(e, vname) + "/providers/Microsoft.Insights/alertRules/control"

	// Bad input: ARM's 400, nothing stored.
	for _, b := range []string{`{}`, `not json`, `{"properties":{"destinations":["https://127.0.0.1:1/x"]}}`,
		`{"properties":{"destinations":["hook"],"url":"https://127.0.0.1:1/x"}}`, `{"properties":{"destinations":["hook"],"filter":{"vaults":["other"]}}}`,
		`{"properties":{"destinations":["nope"]}}`, `{"properties":{"destinations":["hook"],"window":"0s"}}`} {
		if rb := put(admin, "denied-reads", b, http.StatusBadRequest); !strings.Contains(rb, `"error"`) || !strings.Contains(rb, `"code"`) {
			t.Fatalf("%s: %s", b, rb)
		}
	}
	put(admin, "bad%20name", body, http.StatusBadRequest)
	if r := do(t, e, http.MethodGet, base+"/denied-reads"+q, admin, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("a refused PUT stored a rule: %d %s", r.Status, r.Body)
	}

	// Authorization: a data role without ARM actions is refused; Secrets
	// Officer (its Actions carry Microsoft.Insights/alertRules/*) may.
	user := newSP(t, e, "alert-rules-user")
	assign(t, e, e.Credential(), vaultScope(e, vname), authz.RoleKeyVaultSecretsUser, user.ObjectID)
	if rb := put(tokenFor(t, user.Cred, mgmtScope(e)), "denied-reads", body, http.StatusForbidden); !strings.Contains(rb, "AuthorizationFailed") ||
		!strings.Contains(rb, "Microsoft.Insights/alertRules/write") {
		t.Fatalf("refusal: %s", rb)
	}
	officer := newSP(t, e, "alert-rules-officer")
	assign(t, e, e.Credential(), vaultScope(e, vname), authz.RoleKeyVaultSecretsOfficer, officer.ObjectID)
	if rb := put(tokenFor(t, officer.Cred, mgmtScope(e)), "denied-reads", body, http.StatusCreated); !strings.Contains(rb, `"type":"Microsoft.Insights/alertRules"`) ||
		!strings.Contains(strings.ToLower(rb), strings.ToLower(`"id":"`+ruleID+`"`)) || !strings.Contains(rb, `"window":"1m0s"`) {
		t.Fatalf("created: %s", rb)
	}
	put(admin, "control", body, http.StatusCreated)
	put(admin, "control", body, http.StatusOK) // unchanged update
	if r := do(t, e, http.MethodGet, base+q, admin, "", ""); r.Status != http.StatusOK || strings.Count(r.Body, `"type":"Microsoft.Insights/alertRules"`) != 2 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, http.MethodDelete, base+"/denied-reads"+q, tokenFor(t, user.Cred, mgmtScope(e)), "", ""); r.Status != http.StatusForbidden {
		t.Fatalf("delete by the data role: %d %s", r.Status, r.Body)
	}

	// The pattern: two denied reads by a principal without a data role.
	stranger := newSP(t, e, "alert-rules-stranger")
	sc := clientFor(t, e, e.Info.VaultURL, stranger.Cred)
	pattern := func() {
		t.Helper()
		for range 2 {
			if _, err := sc.GetSecret(ctx, "watched", "", nil); err == nil {
				t.Fatal("the stranger read the secret")
			}
		}
	}
	deliveries := func(rule string, want int) {
		t.Helper()
		waitFor(t, rule+" webhook deliveries", func() bool { h, _ := rcv.counts(rule); return h >= want })
		if h, _ := rcv.counts(rule); h != want {
			t.Fatalf("%s: %d webhook deliveries, want %d", rule, h, want)
		}
	}
	pattern()
	deliveries(ruleID, 1)
	deliveries(controlID, 1)
	clk.Advance(2 * time.Minute) // past window and cooldown
	pattern()
	deliveries(ruleID, 2) // the same sequence alerts again while the rule exists
	deliveries(controlID, 2)

	// Deleted: the sequence no longer alerts under the rule, while the
	// control rule shows it was observed.
	if r := do(t, e, http.MethodDelete, base+"/denied-reads"+q, admin, "", ""); r.Status != http.StatusOK {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, http.MethodDelete, base+"/denied-reads"+q, admin, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("second delete: %d %s", r.Status, r.Body)
	}
	if err := e.Server.Jobs().RunOnce(ctx, server.JobRefresh); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	pattern()
	deliveries(controlID, 3)
	e.Server.Alerts().Wait()
	if h, _ := rcv.counts(ruleID); h != 2 {
		t.Fatalf("the deleted rule delivered %d alerts, want still 2", h)
	}
	for _, a := range e.Server.Alerts().Recent() {
		if a.Rule == ruleID && a.Time.After(clk.Now().Add(-time.Minute)) {
			t.Fatalf("the deleted rule fired: %+v", a)
		}
	}

	if !e.Server.Alerts().Has(controlID) || e.Server.Alerts().Has(ruleID) {
		t.Fatal("after the delete and a refresh the engine should run the control rule alone")
	}

	// A purged vault's rule does not pass to a new vault of the same name.
	createVault(t, e, e.Credential(), "alertrulevault", true, nil)
	tmpBase := strings.TrimSuffix(e.Info.ManagementURL, "/") + vaultScope(e, "alertrulevault") + "/providers/Microsoft.Insights/alertRules"
	tmpID := vaultScope(e, "alertrulevault") + "/providers/Microsoft.Insights/alertRules/inherited"
	if r := do(t, e, http.MethodPut, tmpBase+"/inherited"+q, admin, "application/json", body); r.Status != http.StatusCreated {
		t.Fatalf("PUT on the second vault: %d %s", r.Status, r.Body)
	}
	if !e.Server.Alerts().Has(tmpID) {
		t.Fatal("the second vault's rule is not installed")
	}
	vc := vaultsARM(t, e, e.Credential())
	if _, err := vc.Delete(ctx, e.Info.ResourceGroup, "alertrulevault", nil); err != nil {
		t.Fatal(err)
	}
	pp, err := vc.BeginPurgeDeleted(ctx, "alertrulevault", e.Info.Location, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	createVault(t, e, e.Credential(), "alertrulevault", true, nil)
	if err := e.Server.Jobs().RunOnce(ctx, server.JobRefresh); err != nil {
		t.Fatal(err)
	}
	if e.Server.Alerts().Has(tmpID) {
		t.Fatal("a new vault under a purged vault's name inherited its alert rule")
	}
}
