package console_test

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestConsoleDeviceSignInCSRFAndExpiry drives the console over HTTP (no
// browser): sign-in with the device flow, a self-signed certificate made
// and downloaded through the certificates page, forms refused without the
// session's CSRF token or from another origin, and the session ending
// after 30 idle minutes (injected clock).
func TestConsoleDeviceSignInCSRFAndExpiry(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	ui := e.Info.UIURL
	origin := strings.TrimSuffix(strings.TrimSuffix(ui, "ui/"), "/")
	carol := newUser(t, e, "carol")
	vaultScope := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/dev"
	assign(t, e, vaultScope, "00482a5a-887f-4fb3-b363-3b7fe8e74483", carol.oid)                              // Key Vault Administrator
	assign(t, e, "/subscriptions/"+e.Info.SubscriptionID, "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", carol.oid) // Owner

	jar, _ := cookiejar.New(nil)
	c := *e.HTTP
	c.Jar = jar
	post := func(u string, form url.Values, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// Device flow: the console shows a code, the user signs in on the
	// token service's device page, the console's poll makes the session.
	_, page := post(ui+"auth/device", nil, nil)
	m := regexp.MustCompile(`id="usercode">([A-Z]{4}-[A-Z]{4})<`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no user code on the device page:\n%s", page)
	}
	resp, page := post(ui+"auth/device/poll", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Waiting for you") {
		t.Fatalf("poll before sign-in: %d\n%s", resp.StatusCode, page)
	}
	resp, page = post(strings.TrimSuffix(e.Info.AuthorityHost, "/")+"/device", url.Values{"user_code": {m[1]}, "username": {carol.name},
		"password": {carol.password}, "totp": {identity.TOTPCode(carol.totp, identity.TOTPStep(clk.Now()))}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("device page sign-in: %d\n%s", resp.StatusCode, page)
	}
	resp, page = post(ui+"auth/device/poll", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="who">`+carol.name+`<`) {
		t.Fatalf("after the device sign-in: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)[1]

	// A self-signed certificate through the certificates page.
	form := url.Values{"csrf": {csrf}, "name": {"web-cert"}, "subject": {"CN=web.example.test"}, "validity": {"6"}}
	resp, page = post(ui+"vaults/dev/certificates", form, map[string]string{"Origin": origin})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "CN=web.example.test") || !strings.Contains(resp.Request.URL.Path, "/certificates/web-cert") {
		t.Fatalf("create certificate: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	resp, der := get(ui + "vaults/dev/certificates/web-cert/download")
	cert, err := x509.ParseCertificate([]byte(der))
	if resp.StatusCode != http.StatusOK || err != nil || cert.Subject.CommonName != "web.example.test" {
		t.Fatalf("download: %d %v", resp.StatusCode, err)
	}

	// An access policy for the unprivileged principal, through ARM.
	form = url.Values{"csrf": {csrf}, "object_id": {e.Info.UnprivilegedObjectID}, "secrets": {"get, list"}}
	resp, page = post(ui+"vaults/dev/accesspolicies/add", form, map[string]string{"Origin": origin})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Access policies saved.") || !strings.Contains(page, e.Info.UnprivilegedObjectID) {
		t.Fatalf("add access policy: %d %s\n%s", resp.StatusCode, resp.Request.URL, page)
	}

	// Forms without the session's token, or from another site, change nothing.
	form = url.Values{"name": {"forged"}, "value": {"x"}}
	if resp, page = post(ui+"vaults/dev/secrets", form, nil); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "CSRFTokenInvalid") {
		t.Fatalf("no CSRF token: %d\n%s", resp.StatusCode, page)
	}
	form.Set("csrf", csrf)
	if resp, page = post(ui+"vaults/dev/secrets", form, map[string]string{"Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "CrossSiteRequest") {
		t.Fatalf("cross-site form: %d\n%s", resp.StatusCode, page)
	}
	if resp, page = post(ui+"vaults/dev/secrets", form, map[string]string{"Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site (Sec-Fetch-Site) form: %d\n%s", resp.StatusCode, page)
	}
	if _, page = get(ui + "vaults/dev/secrets"); strings.Contains(page, "forged") {
		t.Fatal("a refused form created a secret")
	}

	// A vault name that is not one never becomes a host the console calls.
	if resp, page = get(ui + "vaults/evil.example%2F/secrets"); resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "VaultNotFound") {
		t.Fatalf("odd vault name: %d\n%s", resp.StatusCode, page)
	}

	// Managed HSMs and key distribution (read-only pages): Carol, Owner on
	// the subscription, lists the dev pool through ARM; its keys are the
	// pool's local RBAC's to allow, and she has no role there, so the page
	// says why instead. With Key Management Reader at the tenant root she
	// sees the engine's keys and where they are distributed.
	resp, page = get(ui + "hsms")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `href="/ui/hsms/dev"`) {
		t.Fatalf("managed HSM list: %d\n%s", resp.StatusCode, page)
	}
	resp, page = get(ui + "hsms/dev")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "managedhsm") || !strings.Contains(page, "The keys could not be listed") {
		t.Fatalf("managed HSM page: %d\n%s", resp.StatusCode, page)
	}
	if resp, page = get(ui + "hsms/no-such-pool"); resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "ManagedHsmNotFound") {
		t.Fatalf("unknown pool: %d\n%s", resp.StatusCode, page)
	}
	if resp, page = get(ui + "keymgmt"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("key distribution without a keymgmt role: %d\n%s", resp.StatusCode, page)
	}
	// (At the tenant root, where only Keyward's bootstrap assigns: the
	// dev administrator may not.)
	if _, err := e.Server.Management().Assign(context.Background(), authz.Assignment{TenantID: e.Info.TenantID, Scope: "/",
		RoleDefinitionID: authz.RoleKeyManagementReader, PrincipalID: carol.oid, PrincipalType: "User", CreatedBy: "test"}); err != nil {
		t.Fatal(err)
	}
	tok, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	kreq, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(e.Info.KeymgmtAddress, "/")+"/v1/keymgmt/key/console-listed", strings.NewReader(`{"type":"aes256-gcm96"}`))
	kreq.Header.Set("Authorization", "Bearer "+tok.Token)
	kresp, err := e.HTTP.Do(kreq)
	if err != nil {
		t.Fatal(err)
	}
	kresp.Body.Close()
	if kresp.StatusCode/100 != 2 {
		t.Fatalf("keymgmt key: %d", kresp.StatusCode)
	}
	if resp, page = get(ui + "keymgmt"); resp.StatusCode != http.StatusOK || !strings.Contains(page, "console-listed") || !strings.Contains(page, "aes256-gcm96") {
		t.Fatalf("key distribution page: %d\n%s", resp.StatusCode, page)
	}

	// Quorum approval: the dev administrator's purge waits for carol, who
	// approves it on the vault's approvals page.
	devCall := func(method, path, body string) (int, string) {
		t.Helper()
		tok, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://vault." + strings.SplitN(e.Info.VaultURL, ".vault.", 2)[1] + ".default"}})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(method, strings.TrimSuffix(e.Info.VaultURL, "/")+path+"?api-version=7.5", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := devCall(http.MethodPut, "/quorumpolicy", `{"operations":["SecretPurge"],"approvers":["`+carol.oid+`"],"approvalsRequired":1}`); st != http.StatusOK {
		t.Fatalf("set quorum policy: %d %s", st, b)
	}
	devCall(http.MethodPut, "/secrets/quorum-ui", `{"value":"v"}`)
	devCall(http.MethodDelete, "/secrets/quorum-ui", "")
	st, b := devCall(http.MethodDelete, "/deletedsecrets/quorum-ui", "")
	idm := regexp.MustCompile(`"approval":\{"id":"([0-9a-f-]+)"`).FindStringSubmatch(b)
	if st != http.StatusAccepted || idm == nil {
		t.Fatalf("purge: %d %s", st, b)
	}
	if resp, page = get(ui + "vaults/dev/approvals"); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="approval-`+idm[1]+`"`) || !strings.Contains(page, "Pending") {
		t.Fatalf("approvals page: %d\n%s", resp.StatusCode, page)
	}
	resp, page = post(ui+"vaults/dev/approvals/"+idm[1]+"/approve", url.Values{"csrf": {csrf}}, map[string]string{"Origin": origin})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Approval request "+idm[1]+": Executed.") {
		t.Fatalf("approve in the console: %d\n%s", resp.StatusCode, page)
	}
	if st, _ := devCall(http.MethodGet, "/deletedsecrets/quorum-ui", ""); st != http.StatusNotFound {
		t.Fatalf("the approved purge did not run: %d", st)
	}

	// A tenant-level request (a role assignment at the subscription, under
	// the tenant's policy): carol approves it on the console's tenant
	// Approvals page, which calls the management host's approval API.
	mgmtCall := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, strings.TrimSuffix(e.Info.ManagementURL, "/")+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, b := mgmtCall(http.MethodPut, "/providers/Keyward.Quorum/tenantPolicy?api-version=2026-01-01", `{"operations":["RoleAssignmentCreate"],"approvers":["`+carol.oid+`"],"approvalsRequired":1}`); st != http.StatusOK {
		t.Fatalf("set the tenant policy: %d %s", st, b)
	}
	sub := "/subscriptions/" + e.Info.SubscriptionID
	st, b = mgmtCall(http.MethodPut, sub+"/providers/Microsoft.Authorization/roleAssignments/3f1c9d2e-5b7a-4c1e-9f00-0a1b2c3d4e5f?api-version=2022-04-01",
		`{"properties":{"roleDefinitionId":"`+sub+`/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6","principalId":"`+e.Info.UnprivilegedObjectID+`"}}`)
	idm = regexp.MustCompile(`"approval":\{"id":"([0-9a-f-]+)"`).FindStringSubmatch(b)
	if st != http.StatusAccepted || idm == nil {
		t.Fatalf("role assignment above the vault: %d %s", st, b)
	}
	if resp, page = get(ui + "approvals"); resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="approval-`+idm[1]+`"`) || !strings.Contains(page, "RoleAssignmentCreate") ||
		!strings.Contains(page, `action="/ui/approvals/`+idm[1]+`/approve"`) {
		t.Fatalf("tenant approvals page: %d\n%s", resp.StatusCode, page)
	}
	if _, page = get(ui + "vaults/dev/approvals"); strings.Contains(page, idm[1]) {
		t.Fatal("the vault's approvals page shows a tenant-level request")
	}
	resp, page = post(ui+"approvals/"+idm[1]+"/approve", url.Values{"csrf": {csrf}}, map[string]string{"Origin": origin})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Approval request "+idm[1]+": Executed.") {
		t.Fatalf("approve a tenant-level request in the console: %d\n%s", resp.StatusCode, page)
	}
	if st, b := mgmtCall(http.MethodGet, sub+"/providers/Microsoft.Authorization/roleAssignments/3f1c9d2e-5b7a-4c1e-9f00-0a1b2c3d4e5f?api-version=2022-04-01", ""); st != http.StatusOK {
		t.Fatalf("the approved role assignment: %d %s", st, b)
	}

	// 30 idle minutes end the session.
	clk.Advance(31 * time.Minute)
	resp, page = get(ui + "vaults/dev/secrets")
	if resp.Request.URL.Path != "/ui/signin" || strings.Contains(page, `id="who"`) {
		t.Fatalf("an idle session still works: %s", resp.Request.URL)
	}
}
