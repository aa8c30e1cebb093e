package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAuditReportAPI (issues #17, #18): the audit report API on the
// management plane returns a vault's events, filtered and paged newest
// first, and its key-usage report, to a principal holding Reader on the
// vault; a Key Vault data role is refused with ARM's AuthorizationFailed;
// bad parameters get 400 InvalidQueryParameter; no event carries the value.
func TestAuditReportAPI(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	const value = "audit-report-secret-value-7f3a"
	sc := clientFor(t, e, e.Info.VaultURL, e.Credential())
	if _, err := sc.SetSecret(ctx, "reported", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := sc.GetSecret(ctx, "reported", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	officer := newSP(t, e, "audit-officer")
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), authz.RoleKeyVaultSecretsOfficer, officer.ObjectID)
	auditor := newSP(t, e, "auditor")
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), authz.RoleReader, auditor.ObjectID)
	// A denied read by the auditor (Reader has no data actions).
	if _, err := clientFor(t, e, e.Info.VaultURL, auditor.Cred).GetSecret(ctx, "reported", "", nil); err == nil {
		t.Fatal("Reader read a secret value")
	}

	base := strings.TrimSuffix(e.Info.ManagementURL, "/") + vaultScope(e, devVaultName(e)) + "/providers/Keyward.Audit/"
	auditorTok := tokenFor(t, auditor.Cred, mgmtScope(e))
	type page struct {
		Value []struct {
			OperationName string `json:"operationName"`
			ResultType    string `json:"resultType"`
			Vault         string `json:"vault"`
			Seq           int64  `json:"seq"`
			Result        string `json:"result"`
			Caller        struct {
				ObjectID string `json:"oid"`
			} `json:"caller"`
			Properties struct {
				ID string `json:"id"`
			} `json:"properties"`
		} `json:"value"`
		NextLink string `json:"nextLink"`
	}
	get := func(tok, u string, want int) (page, string) {
		t.Helper()
		r := do(t, e, http.MethodGet, u, tok, "", "")
		if r.Status != want {
			t.Fatalf("GET %s: %d %s", u, r.Status, r.Body)
		}
		if strings.Contains(r.Body, value) {
			t.Fatal("the audit report holds the secret value")
		}
		var p page
		if want == http.StatusOK {
			if err := json.Unmarshal([]byte(r.Body), &p); err != nil {
				t.Fatal(err)
			}
		}
		return p, r.Body
	}

	// The data role is refused; Reader is allowed.
	_, body := get(tokenFor(t, officer.Cred, mgmtScope(e)), base+"events?api-version=2026-01-01", http.StatusForbidden)
	if !strings.Contains(body, "AuthorizationFailed") || !strings.Contains(body, "Microsoft.Insights/logs/read") {
		t.Fatalf("refusal: %s", body)
	}
	p, _ := get(auditorTok, base+"events?api-version=2026-01-01&operation=SecretGet&$top=2", http.StatusOK)
	if len(p.Value) != 2 || p.NextLink == "" || p.Value[0].Seq <= p.Value[1].Seq {
		t.Fatalf("first page: %+v", p)
	}
	seen := map[int64]bool{}
	n := 0
	for u := base + "events?api-version=2026-01-01&operation=SecretGet&result=allowed&$top=2"; u != ""; {
		p, _ := get(auditorTok, u, http.StatusOK)
		for _, ev := range p.Value {
			if ev.OperationName != "SecretGet" || !strings.EqualFold(ev.Vault, devVaultName(e)) || seen[ev.Seq] {
				t.Fatalf("event %+v (duplicate: %v)", ev, seen[ev.Seq])
			}
			seen[ev.Seq] = true
			n++
		}
		u = p.NextLink
	}
	if n != 3 { // by the administrator
		t.Fatalf("%d allowed SecretGet events, want 3", n)
	}
	p, _ = get(auditorTok, base+"events?api-version=2026-01-01&result=denied&principal="+auditor.ObjectID, http.StatusOK)
	if len(p.Value) != 1 || p.Value[0].OperationName != "SecretGet" || p.Value[0].Caller.ObjectID != auditor.ObjectID || p.Value[0].Result != "denied" {
		t.Fatalf("denied events of the auditor: %+v", p)
	}
	p, _ = get(auditorTok, base+"events?api-version=2026-01-01&to=2000-01-01T00:00:00Z", http.StatusOK)
	if len(p.Value) != 0 {
		t.Fatalf("events before 2000: %+v", p)
	}

	// Bad input: Azure-shaped 400, and the unknown vault 404.
	for _, q := range []string{"$top=0", "$top=x", "result=maybe", "from=yesterday", "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"$skiptoken=-3", "$skiptoken=007", "color=red", "operation=a&operation=b"} {
		_, body := get(auditorTok, base+"events?api-version=2026-01-01&"+q, http.StatusBadRequest)
		if !strings.Contains(body, `"InvalidQueryParameter"`) {
			t.Fatalf("%s: %s", q, body)
		}
	}
	missing := strings.Replace(base, "/vaults/"+devVaultName(e)+"/", "/vaults/no-such-vault-x/", 1)
	get(tokenFor(t, e.Credential(), mgmtScope(e)), missing+"events?api-version=2026-01-01", http.StatusNotFound)

	// The key-usage report.
	r := do(t, e, http.MethodGet, base+"usage?api-version=2026-01-01&from="+url.QueryEscape("2000-01-01T00:00:00Z"), auditorTok, "", "")
	var usage struct {
		Value []struct {
			Object  string `json:"object"`
			Callers []struct {
				ObjectID   string         `json:"callerObjectId"`
				Operations map[string]int `json:"operations"`
				Denied     int            `json:"denied"`
			} `json:"callers"`
		} `json:"value"`
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &usage) != nil {
		t.Fatalf("usage: %d %s", r.Status, r.Body)
	}
	found := false
	for _, o := range usage.Value {
		if strings.HasSuffix(o.Object, "/secrets/reported") {
			for _, c := range o.Callers {
				if c.ObjectID == auditor.ObjectID && c.Denied == 1 && c.Operations["SecretGet"] == 1 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Fatalf("usage report lacks the auditor's denied read: %s", r.Body)
	}
}
