package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
)

// pythonPath is Debian's interpreter, the one python3-azure installs for.
const pythonPath = "/usr/bin/python3"

func pythonSDK(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(pythonPath); err != nil {
		missingDep(t, pythonPath, "apt-get install python3-azure")
	}
	if out, err := runLogged(t, time.Minute, []string{"PATH=/usr/bin:/bin"}, pythonPath, "-c",
		"import azure.identity, azure.keyvault.secrets, azure.keyvault.keys, azure.keyvault.certificates, azure.mgmt.keyvault, cryptography"); err != nil {
		missingDep(t, "the Azure SDK for Python ("+strings.TrimSpace(lastLine(out))+")", "apt-get install python3-azure")
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// TestPythonSDK runs test/python/clients.py, Debian bookworm's unmodified
// python3-azure (azure-identity, -keyvault-secrets, -keys, -certificates,
// azure-mgmt-keyvault) against a dev server: every credential kind, the
// packages' default api-versions and older ones, crypto checked locally
// with the cryptography package, and the synchronous pollers.
func TestPythonSDK(t *testing.T) {
	pythonSDK(t)
	e := kwtest.Start(t, kwtest.Options{})
	mi := newManagedIdentity(t, e, "py-mi", nil)
	readerOfS(t, e, mi.ObjectID)

	dir := t.TempDir()
	cfg := map[string]string{
		"tenant_id": e.Info.TenantID, "authority_host": e.Info.AuthorityHost,
		"client_id": e.Info.ClientID, "client_secret": e.Info.ClientSecret, "vault_url": e.Info.VaultURL,
		"vault_name": devVaultName(e), "mi_endpoint": mi.Endpoint, "mi_header": mi.Header, "mi_client_id": mi.ClientID,
		"management_url": e.Info.ManagementURL, "management_resource": e.Info.ManagementResource,
		"subscription_id": e.Info.SubscriptionID, "resource_group": e.Info.ResourceGroup,
	}
	raw, _ := json.Marshal(cfg)
	cfgFile, resFile := filepath.Join(dir, "config.json"), filepath.Join(dir, "results.json")
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../../test/python/clients.py")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(e.Info.VaultURL, "https://"), "/")
	host = host[:strings.LastIndexByte(host, ':')]
	env, blocked, mapped := loopbackPythonEnv(t, host)
	env = append(env, "PATH=/usr/bin:/bin", "HOME="+dir, "REQUESTS_CA_BUNDLE="+e.Server.CAFile(),
		"AZURE_CORE_COLLECT_TELEMETRY=false", "AZURE_CONFIG_DIR="+filepath.Join(dir, "az"))
	start := time.Now()
	out, runErr := runLogged(t, 4*time.Minute, env, pythonPath, script, cfgFile, resFile)
	t.Logf("clients.py (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	checkNothingLeft(t, blocked)

	var res struct {
		Python    string         `json:"python"`
		AzureCore string         `json:"azure-core"`
		Results   []clientResult `json:"results"`
	}
	if raw, err := os.ReadFile(resFile); err != nil || json.Unmarshal(raw, &res) != nil || len(res.Results) == 0 {
		t.Fatalf("clients.py wrote no results (%v)", runErr)
	}
	for _, r := range res.Results {
		if !r.OK {
			t.Errorf("%s | %s: %s", r.Version, r.Feature, r.Detail)
		}
	}
	if runErr != nil && !t.Failed() {
		t.Fatalf("clients.py: %v", runErr)
	}
	mapping := "the machine's resolver"
	if mapped {
		mapping = "test/python/site/sitecustomize.py"
	}
	recordClients(t, "python", clientRun{Client: "Python", Environment: map[string]string{
		"python": res.Python + " (" + pythonPath + ")", "azure-core": res.AzureCore, "host mapping in the test": mapping,
	}, Results: res.Results})
}
