package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/clientcfg"
	"github.com/keyward/keyward/internal/kwtest"
)

const azPath = "/usr/bin/az"

// TestADFSDiscovery: the ADFS-shaped authority {authority}adfs/{tenant}/adfs
// serves an OpenID configuration that points at the tenant's endpoints
// (MSAL skips instance discovery only for an "adfs" first segment, and az
// CLI < 2.54 has no other way to skip it); an unknown tenant is refused as
// on the tenant's own path.
func TestADFSDiscovery(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	r := do(t, e, http.MethodGet, e.Info.AuthorityHost+"adfs/"+e.Info.TenantID+"/adfs/.well-known/openid-configuration", "", "", "")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.Body), &doc); err != nil || r.Status != http.StatusOK {
		t.Fatalf("ADFS discovery: %d %s", r.Status, r.Body)
	}
	base := e.Info.AuthorityHost + e.Info.TenantID
	if doc["token_endpoint"] != base+"/oauth2/v2.0/token" || doc["authorization_endpoint"] != base+"/oauth2/v2.0/authorize" ||
		doc["issuer"] != base+"/v2.0" {
		t.Fatalf("ADFS discovery document: %s", r.Body)
	}
	r = do(t, e, http.MethodGet, e.Info.AuthorityHost+"adfs/.well-known/openid-configuration", "", "", "")
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "adfs/{tenant}/adfs") {
		t.Fatalf("ADFS authority without a tenant: %d %s", r.Status, r.Body)
	}
	r = do(t, e, http.MethodGet, e.Info.AuthorityHost+"adfs/00000000-0000-0000-0000-000000000000/adfs/.well-known/openid-configuration", "", "", "")
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "invalid_tenant") {
		t.Fatalf("unknown tenant: %d %s", r.Status, r.Body)
	}
}

// azEnv is one az process's environment: its own config directory, no
// telemetry, the dev CA, and loopback only (sitecustomize.py).
func azEnv(t *testing.T, e *kwtest.Env, configDir string) (env []string, blocked string, mapped bool) {
	host := strings.TrimPrefix(e.Info.VaultURL, "https://")
	host = host[:strings.LastIndexByte(host, ':')]
	env, blocked, mapped = loopbackPythonEnv(t, host)
	env = append(env, "PATH=/usr/bin:/bin", "HOME="+configDir, "AZURE_CONFIG_DIR="+configDir,
		"REQUESTS_CA_BUNDLE="+e.Server.CAFile(), "AZURE_CORE_COLLECT_TELEMETRY=false",
		"AZURE_CORE_SURVEY_MESSAGE=false", "AZURE_CORE_NO_COLOR=true", "AZURE_CORE_ONLY_SHOW_ERRORS=true")
	return env, blocked, mapped
}

// TestAzureCLI drives Debian bookworm's azure-cli (2.45) against one dev
// server: `az cloud register` with the line `keyward az-cloud` prints,
// `az login --service-principal`, `az login --identity`, `az account
// get-access-token`, `az keyvault list|show` and `az rest` on both planes.
// Nothing may leave the machine: sitecustomize.py refuses it and the test
// fails; every az call has a deadline.
func TestAzureCLI(t *testing.T) {
	if _, err := os.Stat(azPath); err != nil {
		missingDep(t, azPath, "apt-get install azure-cli")
	}
	e := kwtest.Start(t, kwtest.Options{})
	mi := newManagedIdentity(t, e, "az-mi", nil)
	readerOfS(t, e, mi.ObjectID)
	assign(t, e, e.Credential(), "/subscriptions/"+e.Info.SubscriptionID, roleReader, mi.ObjectID)

	cfgDir := t.TempDir()
	env, blocked, mapped := azEnv(t, e, cfgDir)
	// az checks once a day for a newer release at azure.microsoft.com; a
	// fresh check time in its own file keeps it home (AZURE_CONFIG_DIR
	// is this test's).
	if out, err := runLogged(t, time.Minute, env, pythonPath, "-c", `import datetime, json, os
from azure.cli.core.util import _get_local_versions
json.dump({"versions": _get_local_versions(), "update_time": str(datetime.datetime.now())},
          open(os.path.join(os.environ["AZURE_CONFIG_DIR"], "versionCheck.json"), "w"))`); err != nil {
		t.Fatalf("seeding az's version check: %v\n%s", err, out)
	}
	port := port(e)
	vaultResource := "https://vault.localhost:" + port
	var results []clientResult
	version := "azure-cli (Debian)"
	az := func(feature string, extraEnv []string, args ...string) (string, bool) {
		t.Helper()
		start := time.Now()
		out, err := runLogged(t, 90*time.Second, append(append([]string{}, env...), extraEnv...), azPath, args...)
		shown := strings.ReplaceAll(strings.Join(args, " "), e.Info.ClientSecret, "{client secret}")
		t.Logf("az %s (%v): %v\n%s", shown, time.Since(start).Round(time.Millisecond), err, jwtRE.ReplaceAllString(out, "{token}")) // jwtRE: golden_helpers_test.go
		if feature != "" {
			r := clientResult{Client: "az", Version: version, Feature: feature, OK: err == nil}
			if err != nil {
				r.Detail = azError(out)
				if len(r.Detail) > 200 {
					r.Detail = r.Detail[:200]
				}
			}
			results = append(results, r)
		}
		return out, err == nil
	}
	must := func(ok bool, what string, out string) {
		t.Helper()
		if !ok {
			t.Fatalf("%s:\n%s", what, out)
		}
	}

	out, ok := az("", nil, "version", "-o", "json")
	must(ok, "az version", out)
	var v map[string]any
	if json.Unmarshal([]byte(out), &v) == nil && v["azure-cli"] != nil {
		version = "azure-cli " + v["azure-cli"].(string)
	}
	for i := range results {
		results[i].Version = version
	}

	reg, err := clientcfg.AzCloudRegister("keyward", e.Info.AuthorityHost, e.Info.TenantID, e.Info.ManagementURL, e.Info.ManagementResource, e.Info.VaultURL)
	if err != nil {
		t.Fatal(err)
	}
	out, ok = az("az cloud register (the line `keyward az-cloud` prints), az cloud set", nil, reg...)
	must(ok, "cloud register", out)
	out, ok = az("", nil, "cloud", "set", "--name", "keyward")
	must(ok, "cloud set", out)

	out, ok = az("az login --service-principal", nil, "login", "--service-principal", "-u", e.Info.ClientID, "-p", e.Info.ClientSecret, "--tenant", e.Info.TenantID, "-o", "json")
	must(ok && strings.Contains(out, e.Info.SubscriptionID), "login --service-principal", out)

	out, ok = az("az account get-access-token (management and --resource vault)", nil, "account", "get-access-token", "-o", "json")
	must(ok && strings.Contains(out, `"tokenType": "Bearer"`), "get-access-token", out)
	out, ok = az("", nil, "account", "get-access-token", "--resource", vaultResource, "-o", "json")
	must(ok && strings.Contains(out, e.Info.TenantID), "get-access-token --resource", out)

	vault := devVaultName(e)
	out, ok = az("az keyvault list", nil, "keyvault", "list", "-o", "json")
	must(ok && strings.Contains(out, `"name": "`+vault+`"`), "keyvault list", out)
	out, ok = az("az keyvault show", nil, "keyvault", "show", "--name", vault, "-o", "json")
	must(ok && strings.Contains(out, `"vaultUri": "`+e.Info.VaultURL+`"`), "keyvault show", out)

	out, ok = az("az rest, data plane (--resource https://vault.{suffix}:{port})", nil, "rest", "--method", "get",
		"--url", e.Info.VaultURL+"secrets/s?api-version=7.4", "--resource", vaultResource)
	must(ok && strings.Contains(out, `"value": "v"`), "az rest data plane", out)
	armURL := strings.TrimSuffix(e.Info.ManagementURL, "/") + vaultScope(e, vault) + "?api-version=2022-07-01"
	out, ok = az("az rest, management plane", nil, "rest", "--method", "get", "--url", armURL)
	must(ok && strings.Contains(out, `"name": "`+vault+`"`), "az rest management plane", out)

	// Debian's azure-cli lacks the track-1 SDK its keyvault data-plane
	// commands load: they fail before sending anything. Not Keyward's to
	// fix; recorded, and this fails when the package is fixed (then the
	// matrix should say so).
	out, ok = az("az keyvault secret show (Debian package lacks azure.keyvault.v7_0)", nil, "keyvault", "secret", "show", "--vault-name", vault, "--name", "s")
	if ok || !strings.Contains(out, "No module named 'azure.keyvault.") {
		t.Errorf("az keyvault secret show was expected to fail inside the Debian package (No module named 'azure.keyvault.v7_0'):\n%s", out)
	}

	// Managed identity: az 2.45 uses msrestazure; with
	// APPSETTING_WEBSITE_SITE_NAME it sends the App Service 2017 shape
	// (GET MSI_ENDPOINT/?resource=...&api-version=2017-09-01, header secret).
	az("", nil, "logout")
	miEnv := []string{"MSI_ENDPOINT=" + mi.Endpoint, "MSI_SECRET=" + mi.Header, "APPSETTING_WEBSITE_SITE_NAME=keyward-test"}
	out, ok = az("az login --identity (MSI_ENDPOINT, MSI_SECRET)", miEnv, "login", "--identity", "-u", mi.ClientID, "-o", "json")
	must(ok && strings.Contains(out, e.Info.SubscriptionID), "login --identity", out)
	out, ok = az("az rest with the managed identity", miEnv, "rest", "--method", "get",
		"--url", e.Info.VaultURL+"secrets/s?api-version=7.4", "--resource", vaultResource)
	must(ok && strings.Contains(out, `"value": "v"`), "az rest as the managed identity", out)

	checkNothingLeft(t, blocked)
	mapping := "the machine's resolver"
	if mapped {
		mapping = "test/python/site/sitecustomize.py"
	}
	for i := range results {
		results[i].Version = version
	}
	recordClients(t, "az", clientRun{Client: "az", Environment: map[string]string{"host mapping in the test": mapping}, Results: results})
}

// azError is the message of a failed az command: its last "ERROR:" line
// before any traceback.
func azError(out string) string {
	msg := lastLine(out)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Traceback") {
			break
		}
		if strings.HasPrefix(l, "ERROR: ") {
			msg = strings.TrimPrefix(l, "ERROR: ")
		}
	}
	return msg
}

const roleReader = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
