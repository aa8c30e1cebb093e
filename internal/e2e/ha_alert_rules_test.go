package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
)

// TestHAAlertRulesReload: an alert rule created through node A's
// management plane reaches node B's engine by B's refresh job, fires there
// on a pattern produced against B, and leaves B's engine when deleted
// through A.
func TestHAAlertRulesReload(t *testing.T) {
	ctx := context.Background()
	rcv := &alertReceiver{secret: []byte("ha-alert-rules-secret"), byRule: map[string]int{}, grid: map[string]int{}}
	hookSrv := httptest.NewTLSServer(rcv)
	defer hookSrv.Close()
	roots := hookSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	cfg := server.AlertsConfig{Webhooks: []server.AlertWebhook{{Name: "hook", URL: hookSrv.URL + "/hook", Secret: string(rcv.secret)}}}
	dsn := pgtest.Start(t).NewDatabase(t)
	a := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn, EventRoots: roots, Alerts: cfg})
	bDir := t.TempDir()
	copyDevFiles(t, a.DataDir, bDir)
	b := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn, DataDir: bDir, EventRoots: roots, Alerts: cfg})

	sa := clientFor(t, a, a.Info.VaultURL, a.Credential())
	if _, err := sa.SetSecret(ctx, "ha-watched", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	vname := devVaultName(a)
	url := strings.TrimSuffix(a.Info.ManagementURL, "/") + vaultScope(a, vname) + "/providers/Microsoft.Insights/alertRules/ha-denied?api-version=2023-03-15-preview"
	ruleID := vaultScope(a, vname) + "/providers/Microsoft.Insights/alertRules/ha-denied"
	admin := tokenFor(t, a.Credential(), mgmtScope(a))
	if r := do(t, a, http.MethodPut, url, admin, "application/json",
		`{"properties":{"threshold":2,"window":"1m","cooldown":"1h","destinations":["hook"],"filter":{"operations":["SecretGet"],"results":["denied"]}}}`); r.Status != http.StatusCreated {
		t.Fatalf("PUT on A: %d %s", r.Status, r.Body)
	}
	if err := b.Server.Jobs().RunOnce(ctx, server.JobRefresh); err != nil {
		t.Fatal(err)
	}
	if !b.Server.Alerts().Has(ruleID) {
		t.Fatal("B's refresh job did not install the rule made on A")
	}

	stranger := newSP(t, a, "ha-alert-stranger")
	sb := clientFor(t, b, b.Info.VaultURL, b.CredentialFor(b.Info.TenantID, stranger.AppID, stranger.Secret))
	for range 2 {
		if _, err := sb.GetSecret(ctx, "ha-watched", "", nil); err == nil {
			t.Fatal("the stranger read the secret on B")
		}
	}
	waitFor(t, "the delivery from B's engine", func() bool { h, _ := rcv.counts(ruleID); return h >= 1 })
	if h, _ := rcv.counts(ruleID); h != 1 {
		t.Fatalf("%d deliveries from B's engine, want 1", h)
	}
	fired := 0
	for _, al := range b.Server.Alerts().Recent() {
		if al.Rule == ruleID {
			fired++
		}
	}
	if fired != 1 {
		t.Fatalf("B's engine fired the rule %d times, want 1", fired)
	}

	if r := do(t, a, http.MethodDelete, url, admin, "", ""); r.Status != http.StatusOK {
		t.Fatalf("DELETE on A: %d %s", r.Status, r.Body)
	}
	if err := b.Server.Jobs().RunOnce(ctx, server.JobRefresh); err != nil {
		t.Fatal(err)
	}
	if b.Server.Alerts().Has(ruleID) {
		t.Fatal("B still runs the rule deleted on A")
	}
}
