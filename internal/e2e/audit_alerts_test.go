package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// alertReceiver takes signed alert webhooks and Event Grid posts.
type alertReceiver struct {
	secret []byte
	mu     sync.Mutex
	byRule map[string]int // signed webhook deliveries
	grid   map[string]int // Event Grid deliveries
	bad    int
}

func (a *alertReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.URL.Path == "/grid" {
		var evs []struct {
			EventType string       `json:"eventType"`
			Data      alerts.Alert `json:"data"`
		}
		if json.Unmarshal(body, &evs) != nil || len(evs) != 1 || evs[0].EventType != "Keyward.Audit.AlertRaised" {
			a.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a.grid[evs[0].Data.Rule]++
		return
	}
	var al alerts.Alert
	if !alerts.VerifySignature(a.secret, body, r.Header.Get(alerts.SignatureHeader)) || json.Unmarshal(body, &al) != nil {
		a.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.byRule[al.Rule]++
}

func (a *alertReceiver) counts(rule string) (int, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byRule[rule], a.grid[rule]
}

// TestAuditAlertsBuiltinRules (issue #17): each built-in rule fires once
// when its pattern is produced through the SDKs (or the operator API),
// respects its cooldown on the injected clock, and its alert reaches a
// signed-webhook receiver, an Event Grid receiver and a real SMTP server.
func TestAuditAlertsBuiltinRules(t *testing.T) {
	rcv := &alertReceiver{secret: []byte("alert-signing-secret"), byRule: map[string]int{}, grid: map[string]int{}}
	hookSrv := httptest.NewTLSServer(rcv)
	defer hookSrv.Close()
	mb := startMailbox(t)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	var failing fullDiskSink
	e := kwtest.Start(t, kwtest.Options{Clock: clk, EventRoots: hookSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		SMTP:          &server.SMTPConfig{Addr: mb.addr, From: "keyward@vault.test", Username: "keyward", Password: "mail-secret", TLS: "none"},
		WrapAuditSink: func(s audit.Sink) audit.Sink { failing.Sink = s; return &failing },
		Alerts: server.AlertsConfig{
			Webhooks:  []server.AlertWebhook{{Name: "hook", URL: hookSrv.URL + "/hook", Secret: string(rcv.secret)}},
			EventGrid: []server.AlertEventGrid{{Name: "grid", URL: hookSrv.URL + "/grid", Topic: "keyward"}},
			Email:     []server.AlertEmail{{Name: "mail", To: []string{"secadmin@vault.test"}}},
		}})
	ctx := context.Background()
	fired := func(rule string) int {
		n := 0
		for _, a := range e.Server.Alerts().Recent() {
			if a.Rule == rule {
				n++
			}
		}
		return n
	}
	// Each rule's alert reaches the webhook (signed), Event Grid and mail.
	delivered := func(rule string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			h, g := rcv.counts(rule)
			m := 0
			for _, msg := range mb.all() {
				if strings.Contains(msg.msg.Header.Get("Subject"), "] "+rule) {
					m++
				}
			}
			if h == want && g == want && m == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: webhook %d, Event Grid %d, mail %d deliveries, want %d each", rule, h, g, m, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	expect := func(rule string, want int) {
		t.Helper()
		if n := fired(rule); n != want {
			t.Fatalf("%s fired %d times, want %d", rule, n, want)
		}
		delivered(rule, want)
	}

	// first-read: a principal's first read of an object, once per object.
	sc := clientFor(t, e, e.Info.VaultURL, e.Credential())
	for _, name := range []string{"alert-a", "alert-b"} {
		if _, err := sc.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := sc.GetSecret(ctx, "alert-a", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	expect("first-read", 1)
	if _, err := sc.GetSecret(ctx, "alert-b", "", nil); err != nil {
		t.Fatal(err)
	}
	expect("first-read", 2)

	// purge-or-vault-delete, with its cooldown per vault.
	for _, name := range []string{"alert-a", "alert-b"} {
		if _, err := sc.DeleteSecret(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.PurgeDeletedSecret(ctx, name, nil); err != nil {
			t.Fatal(err)
		}
	}
	expect("purge-or-vault-delete", 1) // the second purge is within the cooldown

	// access-change: role assignments through the ARM SDK.
	sp := newSP(t, e, "alerted")
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), authz.RoleKeyVaultSecretsUser, sp.ObjectID)
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), authz.RoleKeyVaultReader, sp.ObjectID)
	expect("access-change", 1)

	// network-rule-change: a vault PATCH with network rules.
	if _, err := vaultsARM(t, e, e.Credential()).Update(ctx, e.Info.ResourceGroup, devVaultName(e), armkeyvault.VaultPatchParameters{
		Properties: &armkeyvault.VaultPatchProperties{NetworkACLs: &armkeyvault.NetworkRuleSet{
			DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionAllow), Bypass: to.Ptr(armkeyvault.NetworkRuleBypassOptionsAzureServices)}}}, nil); err != nil {
		t.Fatal(err)
	}
	expect("network-rule-change", 1)

	// seal-change: sealed and unsealed through the operator API.
	base := strings.TrimSuffix(e.Info.AuthorityHost, "/")
	mgmtTok := tokenFor(t, e.Credential(), mgmtScope(e))
	if r := do(t, e, http.MethodPost, base+"/sys/seal", mgmtTok, "", ""); r.Status != http.StatusNoContent {
		t.Fatalf("seal: %d %s", r.Status, r.Body)
	}
	share, err := os.ReadFile(filepath.Join(e.DataDir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}
	if r := do(t, e, http.MethodPost, base+"/sys/unseal", "", "application/json", `{"key":"`+strings.TrimSpace(string(share))+`"}`); r.Status != http.StatusOK {
		t.Fatalf("unseal: %d %s", r.Status, r.Body)
	}
	expect("seal-change", 2) // one for the seal, one for the unseal

	// auth-failure-burst: ten 401s from one address; the SDK's challenges
	// above may have fired it already, so start past window and cooldown.
	clk.Advance(16 * time.Minute)
	n0 := fired("auth-failure-burst")
	burst := func() {
		for range 10 {
			if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", "", "", ""); r.Status != http.StatusUnauthorized {
				t.Fatalf("no token: %d", r.Status)
			}
		}
	}
	burst()
	expect("auth-failure-burst", n0+1)
	burst()
	if fired("auth-failure-burst") != n0+1 {
		t.Fatal("auth-failure-burst fired again within its cooldown")
	}
	clk.Advance(16 * time.Minute)
	burst()
	expect("auth-failure-burst", n0+2)

	// audit-sink-failing: raised by a job on the injected clock.
	failing.full.Store(true)
	if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", "", "", ""); r.Status != http.StatusServiceUnavailable {
		t.Fatalf("with the audit sink failing: %d", r.Status)
	}
	since := clk.Now().Add(time.Second) // a run the advance triggers, not an earlier one
	clk.Advance(31 * time.Second)
	if err := e.Server.Jobs().WaitRunSince(ctx, server.JobAuditAlerts, since); err != nil {
		t.Fatal(err)
	}
	expect("audit-sink-failing", 1)
	since = clk.Now().Add(time.Second)
	clk.Advance(31 * time.Second)
	if err := e.Server.Jobs().WaitRunSince(ctx, server.JobAuditAlerts, since); err != nil {
		t.Fatal(err)
	}
	if fired("audit-sink-failing") != 1 {
		t.Fatal("audit-sink-failing fired again within its cooldown")
	}
	failing.full.Store(false)
	if rcv.bad != 0 {
		t.Fatalf("%d deliveries were unsigned or malformed", rcv.bad)
	}
}
