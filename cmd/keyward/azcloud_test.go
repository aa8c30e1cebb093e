package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestAzCloud: `keyward az-cloud --dev-json` prints the az cloud register
// line for the dev server: the ADFS-shaped authority of its tenant, the
// management plane for ARM and the token audience, and the vault DNS suffix
// with the port (internal/e2e/az_test.go runs it through az).
func TestAzCloud(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	out, err := cli{t: t}.run("az-cloud", "--dev-json", filepath.Join(e.DataDir, "dev.json"))
	if err != nil {
		t.Fatal(err, out)
	}
	port := e.Info.VaultURL[strings.LastIndexByte(e.Info.VaultURL, ':')+1 : len(e.Info.VaultURL)-1]
	want := "az cloud register --name keyward" +
		" --endpoint-active-directory " + e.Info.AuthorityHost + "adfs/" + e.Info.TenantID + "/adfs" +
		" --endpoint-active-directory-resource-id " + e.Info.ManagementResource +
		" --endpoint-active-directory-graph-resource-id https://graph.localhost:" + port + "/" +
		" --endpoint-resource-manager " + e.Info.ManagementURL +
		" --endpoint-management " + e.Info.ManagementResource +
		" --suffix-keyvault-dns .vault.localhost:" + port + "\n"
	if out != want {
		t.Fatalf("az-cloud printed\n%s\nwant\n%s", out, want)
	}
	// A production server, from flags: the suffix and port come from any
	// vault URL.
	out, err = cli{t: t}.run("az-cloud", "--name", "corp", "--authority-host", "https://login.kv.example:8443/",
		"--tenant", "0B8F4A64-1111-2222-3333-444455556666", "--management-url", "https://management.kv.example:8443",
		"--vault-url", "https://payments.vault.kv.example:8443/")
	if want := "az cloud register --name corp --endpoint-active-directory https://login.kv.example:8443/adfs/0b8f4a64-1111-2222-3333-444455556666/adfs" +
		" --endpoint-active-directory-resource-id https://management.kv.example:8443/ --endpoint-active-directory-graph-resource-id https://graph.kv.example:8443/" +
		" --endpoint-resource-manager https://management.kv.example:8443/ --endpoint-management https://management.kv.example:8443/" +
		" --suffix-keyvault-dns .vault.kv.example:8443\n"; err != nil || out != want {
		t.Fatalf("az-cloud from flags: %v\n%s\nwant\n%s", err, out, want)
	}
	if out, err := (cli{t: t}).run("az-cloud"); err == nil {
		t.Fatalf("az-cloud without a server: %s", out)
	}
}
