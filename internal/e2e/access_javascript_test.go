package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
)

// jsApp finds node and the npm packages of test/js (installed by
// `npm ci --prefix test/js`). Missing them skips the test locally and fails
// it in CI.
func jsApp(t *testing.T) (node, script string) {
	t.Helper()
	dir, err := filepath.Abs("../../test/js")
	if err != nil {
		t.Fatal(err)
	}
	missing := func(what string) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: CI must install node and run `npm ci --prefix test/js`", what)
		}
		t.Skipf("%s is missing: install node and run `npm ci --prefix test/js`", what)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		missing("node")
	}
	for _, pkg := range []string{"@azure/identity", "@azure/keyvault-secrets"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing("the npm package " + pkg)
		}
	}
	return node, filepath.Join(dir, "get-secret.js")
}

func runNode(t *testing.T, node, script string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", filepath.Base(script), err, out)
	}
	return string(out)
}

// TestJavaScriptSDK: @azure/identity and @azure/keyvault-secrets from npm,
// unmodified, get a secret with a client secret credential, with the
// managed-identity endpoint, and with DefaultAzureCredential from the
// environment alone.
func TestJavaScriptSDK(t *testing.T) {
	node, script := jsApp(t)
	e := kwtest.Start(t, kwtest.Options{})
	sp := newSP(t, e, "js-app")
	readerOfS(t, e, sp.ObjectID)
	mi := newManagedIdentity(t, e, "js-mi", nil)
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), "4633458b-17de-408a-b874-0445c86b69e6", mi.ObjectID)
	common := []string{"NODE_EXTRA_CA_CERTS=" + e.Server.CAFile(), "KEYWARD_VAULT_URL=" + e.Info.VaultURL}
	var results []clientResult
	for _, c := range []struct {
		mode string
		env  []string
	}{
		{"secret", []string{"KEYWARD_TENANT_ID=" + e.Info.TenantID, "KEYWARD_CLIENT_ID=" + sp.AppID,
			"KEYWARD_CLIENT_SECRET=" + sp.Secret, "KEYWARD_AUTHORITY_HOST=" + e.Info.AuthorityHost}},
		{"mi", []string{"IDENTITY_ENDPOINT=" + mi.Endpoint, "IDENTITY_HEADER=" + mi.Header, "KEYWARD_MI_CLIENT_ID=" + mi.ClientID}},
		{"dac", []string{"IDENTITY_ENDPOINT=" + mi.Endpoint, "IDENTITY_HEADER=" + mi.Header}},
	} {
		out := runNode(t, node, script, append(append([]string{"KEYWARD_MODE=" + c.mode}, common...), c.env...))
		if !strings.Contains(out, "secret=v") {
			t.Fatalf("%s: %s", c.mode, out)
		}
		results = append(results, clientResult{Client: "JavaScript", Version: jsVersions(t), Feature: jsFeatures[c.mode], OK: true})
	}
	out, _ := runLogged(t, 10*time.Second, []string{"PATH=" + os.Getenv("PATH")}, node, "--version")
	recordClients(t, "javascript", clientRun{Client: "JavaScript", Environment: map[string]string{"node": strings.TrimSpace(out)}, Results: results})
}

// jsFeatures name get-secret.js's modes in docs/CLIENTS.md.
var jsFeatures = map[string]string{
	"secret": "ClientSecretCredential (authorityHost, disableInstanceDiscovery), SecretClient.getSecret",
	"mi":     "ManagedIdentityCredential: IDENTITY_ENDPOINT/IDENTITY_HEADER",
	"dac":    "DefaultAzureCredential: IDENTITY_ENDPOINT/IDENTITY_HEADER only",
}

// jsVersions are test/js's pinned package versions.
func jsVersions(t *testing.T) string {
	t.Helper()
	var pkg struct{ Dependencies map[string]string }
	raw, err := os.ReadFile("../../test/js/package.json")
	if err == nil {
		err = json.Unmarshal(raw, &pkg)
	}
	if err != nil {
		t.Fatal(err)
	}
	var vs []string
	for _, name := range []string{"@azure/identity", "@azure/keyvault-secrets"} {
		vs = append(vs, name+" "+pkg.Dependencies[name])
	}
	return strings.Join(vs, ", ")
}
