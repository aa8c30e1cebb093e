package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/cli"
	"github.com/keyward/keyward/internal/clientcfg"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/spf13/cobra"
)

// keywardCLI runs one `keyward` client command line in-process.
func keywardCLI(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	o := cli.IO{Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut}
	root := &cobra.Command{Use: "keyward", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cli.NewKeyvaultCmd(o), cli.NewLoginCmd(o), cli.NewLogoutCmd(o))
	root.SetArgs(cli.NormalizeArgs(args))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// TestCLIMatchesAzureCLI: `keyward keyvault list|show` print byte for byte
// what Debian's az 2.45 prints for the same vaults, in every output format
// and with --query (az's management-plane keyvault commands work against
// Keyward; its data-plane ones fail inside the Debian package, see
// TestAzureCLI, so those shapes follow az's source).
func TestCLIMatchesAzureCLI(t *testing.T) {
	if _, err := os.Stat(azPath); err != nil {
		missingDep(t, azPath, "apt-get install azure-cli")
	}
	e := kwtest.Start(t, kwtest.Options{})
	devJSON := filepath.Join(e.DataDir, "dev.json")
	cfgDir := t.TempDir()
	env, blocked, _ := azEnv(t, e, cfgDir)
	if out, err := runLogged(t, time.Minute, env, pythonPath, "-c", `import datetime, json, os
from azure.cli.core.util import _get_local_versions
json.dump({"versions": _get_local_versions(), "update_time": str(datetime.datetime.now())},
          open(os.path.join(os.environ["AZURE_CONFIG_DIR"], "versionCheck.json"), "w"))`); err != nil {
		t.Fatalf("seeding az's version check: %v\n%s", err, out)
	}
	az := func(args ...string) string {
		t.Helper()
		out, err := runLogged(t, 90*time.Second, env, azPath, args...)
		if err != nil {
			t.Fatalf("az %s: %v\n%s", strings.Join(args, " "), err, strings.ReplaceAll(out, e.Info.ClientSecret, "{secret}"))
		}
		return out
	}
	reg, err := clientcfg.AzCloudRegister("keyward", e.Info.AuthorityHost, e.Info.TenantID, e.Info.ManagementURL, e.Info.ManagementResource, e.Info.VaultURL)
	if err != nil {
		t.Fatal(err)
	}
	az(reg...)
	az("cloud", "set", "--name", "keyward")
	az("login", "--service-principal", "-u", e.Info.ClientID, "-p", e.Info.ClientSecret, "--tenant", e.Info.TenantID, "-o", "none")

	kenv := map[string]string{"KEYWARD_CONFIG_DIR": t.TempDir()}
	// A second vault, made by the CLI, so lists have two rows.
	if _, errOut, err := keywardCLI(t, kenv, "keyvault", "create", "--name", "cli-second", "-g", e.Info.ResourceGroup, "-l", e.Info.Location,
		"--retention-days", "30", "--dev-json", devJSON, "-o", "none"); err != nil {
		t.Fatalf("keyvault create: %v %s", err, errOut)
	}
	// Each az call takes seconds: a few commands, each in the formats
	// where it says most.
	cases := []struct {
		args    []string
		formats []string
	}{
		{[]string{"keyvault", "list"}, []string{"json", "table", "tsv", "yaml"}},
		{[]string{"keyvault", "show", "--name", "dev"}, []string{"json", "yaml"}},
		{[]string{"keyvault", "show", "--name", "cli-second", "--query",
			"properties.{sku:sku.name, rbac:enableRbacAuthorization, days:softDeleteRetentionInDays, uri:vaultUri, acls:networkAcls}"}, []string{"table", "tsv"}},
		{[]string{"keyvault", "show", "--name", "dev", "--query", "[name, properties.sku, properties.accessPolicies, properties.enableSoftDelete]"}, []string{"table", "yaml"}},
		{[]string{"keyvault", "list", "--query", "length(@)"}, []string{"yaml"}},
	}
	for _, c := range cases {
		for _, format := range c.formats {
			args := append(append([]string{}, c.args...), "-o", format)
			want := az(args...)
			got, errOut, err := keywardCLI(t, kenv, append(args, "--dev-json", devJSON)...)
			if err != nil {
				t.Fatalf("keyward %s: %v %s", strings.Join(args, " "), err, errOut)
			}
			if got != want {
				t.Errorf("keyward %s differs from az:\n--- keyward\n%q\n--- az\n%q", strings.Join(args, " "), got, want)
			}
		}
	}
	checkNothingLeft(t, blocked)
}

// TestCLILoginIdentity: `keyward login --identity` takes the managed
// identity of the workload (IDENTITY_ENDPOINT and IDENTITY_HEADER, the App
// Service shape), caches its tokens, and reads what its role allows.
func TestCLILoginIdentity(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	mi := newManagedIdentity(t, e, "cli-mi", nil)
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), "4633458b-17de-408a-b874-0445c86b69e6", mi.ObjectID) // Key Vault Secrets User
	sc, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.SetSecret(context.Background(), "mi-s", azsecrets.SetSecretParameters{Value: to.Ptr("for-the-identity")}, nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IDENTITY_ENDPOINT", mi.Endpoint)
	t.Setenv("IDENTITY_HEADER", mi.Header)
	suffix := strings.TrimSuffix(strings.TrimPrefix(e.Info.VaultURL, "https://"+devVaultName(e)+"."), "/")
	cfg := t.TempDir()
	env := map[string]string{"KEYWARD_CONFIG_DIR": cfg}
	if _, errOut, err := keywardCLI(t, env, "login", "--identity", "-u", mi.ClientID, "--tenant", e.Info.TenantID,
		"--authority-host", e.Info.AuthorityHost, "--vault-dns-suffix", suffix, "--ca-file", e.Server.CAFile(), "-o", "none"); err != nil {
		t.Fatalf("login --identity: %v %s", err, errOut)
	}
	out, errOut, err := keywardCLI(t, env, "keyvault", "secret", "show", "--vault-name", devVaultName(e), "--name", "mi-s", "--query", "value", "-o", "tsv")
	if err != nil || out != "for-the-identity\n" {
		t.Fatalf("secret show as the managed identity: %v %q %s", err, out, errOut)
	}
	// Its role reads secrets, nothing more: creating a key is refused.
	if _, _, err := keywardCLI(t, env, "keyvault", "key", "create", "--vault-name", devVaultName(e), "--name", "mi-k"); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("key create as a secrets reader: %v", err)
	}
	if st, err := os.Stat(filepath.Join(cfg, "tokens.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token cache: %v", err)
	}
}
