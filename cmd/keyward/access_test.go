package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAccessCommands drives `keyward access` against a dev server: create
// a service principal and a secret, assign it a role on the dev vault with
// the role's name, use it with the official client, delete it.
func TestAccessCommands(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := cli{t: t}
	dev := []string{"access", "--dev-json", filepath.Join(e.DataDir, "dev.json")}
	run := func(args ...string) map[string]any {
		t.Helper()
		out, err := c.run(append(append([]string{}, dev...), args...)...)
		if err != nil {
			t.Fatalf("keyward %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		m := map[string]any{}
		if strings.TrimSpace(out) != "" {
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("keyward %s: %s", strings.Join(args, " "), out)
			}
		}
		return m
	}
	sp := run("sp", "create", "cli-app")
	appID, oid := sp["appId"].(string), sp["objectId"].(string)
	secret := run("sp", "secret", appID, "--days", "30")["secretText"].(string)
	host := strings.TrimPrefix(e.Info.VaultURL, "https://")
	vault := host[:strings.IndexByte(host, '.')]
	scope := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/" + vault
	a := run("role", "assign", "--scope", scope, "--role", "Key Vault Secrets Officer", "--principal", oid)
	if props, _ := a["properties"].(map[string]any); props == nil || !strings.HasSuffix(props["roleDefinitionId"].(string), "b86a8fe4-44ce-4948-aee5-eccb2c155cd7") {
		t.Fatalf("assignment %v", a)
	}
	client, err := azsecrets.NewClient(e.Info.VaultURL, e.CredentialFor(e.Info.TenantID, appID, secret), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SetSecret(context.Background(), "from-cli", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
		t.Fatalf("principal made with the CLI: %v", err)
	}
	list := run("role", "list", "--scope", scope)
	if v, _ := list["value"].([]any); len(v) < 1 {
		t.Fatalf("role list %v", list)
	}
	run("principal", "delete", oid)
	if _, err := client.SetSecret(context.Background(), "from-cli", azsecrets.SetSecretParameters{Value: to.Ptr("y")}, nil); err == nil {
		t.Fatal("deleted principal still writes")
	}
	// The unprivileged dev principal cannot use the directory API.
	unpriv := cli{t: t, getenv: func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return e.Info.UnprivilegedClientSecret
		}
		return ""
	}}
	out, err := unpriv.run("access", "--dev-json", filepath.Join(e.DataDir, "dev.json"), "--client-id", e.Info.UnprivilegedClientID, "sp", "create", "x")
	if err == nil || !strings.Contains(err.Error(), "AuthorizationFailed") {
		t.Fatalf("unprivileged principal: %v %s", err, out)
	}
}
