package e2e

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

func setNetwork(t *testing.T, e *kwtest.Env, vault string, acls *armkeyvault.NetworkRuleSet, public *string) {
	t.Helper()
	_, err := vaultsARM(t, e, e.Credential()).Update(context.Background(), e.Info.ResourceGroup, vault, armkeyvault.VaultPatchParameters{
		Properties: &armkeyvault.VaultPatchProperties{NetworkACLs: acls, PublicNetworkAccess: public}}, nil)
	if err != nil {
		t.Fatalf("network rules: %v", err)
	}
}

func ipRules(values ...string) []*armkeyvault.IPRule {
	out := []*armkeyvault.IPRule{}
	for _, v := range values {
		out = append(out, &armkeyvault.IPRule{Value: to.Ptr(v)})
	}
	return out
}

// TestNetworkRules: defaultAction Deny refuses the loopback client with
// 403 ForbiddenByFirewall naming its address, until its address is in
// ipRules; a trusted service bypasses with AzureServices, not with None;
// the management plane is never affected.
func TestNetworkRules(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	vault := devVaultName(e)
	admin := secretsClient(t, e)
	if _, err := admin.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}

	setNetwork(t, e, vault, &armkeyvault.NetworkRuleSet{DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionDeny),
		Bypass: to.Ptr(armkeyvault.NetworkRuleBypassOptionsNone), IPRules: ipRules("10.0.0.0/8", "2001:db8::/32")}, nil)
	_, err := admin.GetSecret(ctx, "s", "", nil)
	wantDenied(t, "loopback not in ipRules", err, authz.CodeFirewall, "Client address: 127.0.0.1")
	findAudit(t, e, "firewall denial", func(ev audit.Event) bool {
		return ev.Operation == "SecretGet" && ev.Result == audit.Denied && ev.ErrorCode == "Forbidden/ForbiddenByFirewall" && ev.Caller.IP == "127.0.0.1"
	})
	// X-Forwarded-For from an untrusted peer is ignored.
	tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.Info.VaultURL+"secrets/s?api-version=7.4", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "ForbiddenByFirewall") {
		t.Fatalf("spoofed X-Forwarded-For: %d %s", resp.StatusCode, body)
	}

	// Management calls are unaffected by the firewall.
	v, err := vaultsARM(t, e, e.Credential()).Get(ctx, e.Info.ResourceGroup, vault, nil)
	if err != nil || *v.Properties.NetworkACLs.DefaultAction != armkeyvault.NetworkRuleActionDeny || len(v.Properties.NetworkACLs.IPRules) != 2 {
		t.Fatalf("management get: %v %+v", err, v.Properties.NetworkACLs)
	}

	// A trusted service, with bypass None, is still refused.
	svc := newSP(t, e, "backup-service")
	assign(t, e, e.Credential(), vaultScope(e, vault), authz.RoleKeyVaultSecretsUser, svc.ObjectID)
	if r := dirCall(t, e, e.Credential(), http.MethodPut, "/providers/Keyward.Directory/servicePrincipals/"+svc.AppID+"/trustedService", map[string]bool{"trusted": true}, nil); r.Status != http.StatusOK {
		t.Fatalf("trust: %d %s", r.Status, r.Body)
	}
	svcClient := secretsFor(t, e, e.Info.VaultURL, svc.Cred)
	_, err = svcClient.GetSecret(ctx, "s", "", nil)
	wantDenied(t, "trusted service, bypass None", err, authz.CodeFirewall, "")
	// Only a directory administrator may mark services trusted.
	if r := dirCall(t, e, svc.Cred, http.MethodPut, "/providers/Keyward.Directory/servicePrincipals/"+svc.AppID+"/trustedService", map[string]bool{"trusted": true}, nil); r.Status != http.StatusForbidden {
		t.Fatalf("a service trusted itself: %d %s", r.Status, r.Body)
	}

	setNetwork(t, e, vault, &armkeyvault.NetworkRuleSet{Bypass: to.Ptr(armkeyvault.NetworkRuleBypassOptionsAzureServices)}, nil)
	if s, err := svcClient.GetSecret(ctx, "s", "", nil); err != nil || *s.Value != "v" {
		t.Fatalf("trusted service with bypass AzureServices: %v", err)
	}
	_, err = admin.GetSecret(ctx, "s", "", nil)
	wantDenied(t, "untrusted admin, bypass AzureServices", err, authz.CodeFirewall, "127.0.0.1")

	// Adding the client's address lets it in.
	setNetwork(t, e, vault, &armkeyvault.NetworkRuleSet{IPRules: ipRules("10.0.0.0/8", "127.0.0.1")}, nil)
	if s, err := admin.GetSecret(ctx, "s", "", nil); err != nil || *s.Value != "v" {
		t.Fatalf("after adding 127.0.0.1: %v", err)
	}
	// Firewall first, then authorization: an allowed address still needs
	// a role.
	unpriv := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret)
	_, err = secretsFor(t, e, e.Info.VaultURL, unpriv).GetSecret(ctx, "s", "", nil)
	wantDenied(t, "allowed address, no role", err, authz.CodeRbac, string(authz.SecretsGetSecret))

	setNetwork(t, e, vault, &armkeyvault.NetworkRuleSet{DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionAllow), IPRules: ipRules()}, nil)
	if _, err := admin.GetSecret(ctx, "s", "", nil); err != nil {
		t.Fatalf("default Allow: %v", err)
	}
}

// TestPrivateListenerAndTrustedProxy: with publicNetworkAccess Disabled a
// vault answers only on the listener marked private; behind a configured
// trusted proxy the client address comes from X-Forwarded-For.
func TestPrivateListenerAndTrustedProxy(t *testing.T) {
	dir := t.TempDir()
	s, err := server.Start(context.Background(), server.Config{
		Dev: true, Listen: "127.0.0.1:0", PrivateListen: "127.0.0.1:0", DataDir: dir, DNSSuffix: "localhost",
		TrustedProxies: []string{"127.0.0.1"}, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &kwtest.Env{T: t, Server: s, Info: s.Dev(), DataDir: dir, HTTP: kwtest.HTTPClient(t, s.CAFile(), s.Addr())}
	private := kwtest.HTTPClient(t, s.CAFile(), s.PrivateAddr())
	ctx := context.Background()
	vault := devVaultName(e)
	tok, err := e.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://vault.localhost:" + port(e) + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(c *http.Client, xff string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.Info.VaultURL+"secrets?api-version=7.4", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	setNetwork(t, e, vault, nil, to.Ptr("Disabled"))
	if st, b := get(e.HTTP, ""); st != http.StatusForbidden || !strings.Contains(b, "ForbiddenByFirewall") {
		t.Fatalf("public listener, public access disabled: %d %s", st, b)
	}
	if st, b := get(private, ""); st != http.StatusOK {
		t.Fatalf("private listener: %d %s", st, b)
	}
	// Management still works on the public listener.
	if _, err := vaultsARM(t, e, e.Credential()).Get(ctx, e.Info.ResourceGroup, vault, nil); err != nil {
		t.Fatal(err)
	}

	// Trusted proxy: the rightmost untrusted X-Forwarded-For hop is the
	// client.
	setNetwork(t, e, vault, &armkeyvault.NetworkRuleSet{DefaultAction: to.Ptr(armkeyvault.NetworkRuleActionDeny), IPRules: ipRules("203.0.113.0/24")}, to.Ptr("Enabled"))
	if st, b := get(e.HTTP, ""); st != http.StatusForbidden || !strings.Contains(b, "Client address: 127.0.0.1") {
		t.Fatalf("proxy itself: %d %s", st, b)
	}
	if st, b := get(e.HTTP, "198.51.100.7, 203.0.113.9"); st != http.StatusOK {
		t.Fatalf("forwarded allowed client: %d %s", st, b)
	}
	if st, b := get(e.HTTP, "203.0.113.9, 198.51.100.7"); st != http.StatusForbidden || !strings.Contains(b, "Client address: 198.51.100.7") {
		t.Fatalf("forwarded other client: %d %s", st, b)
	}
}
