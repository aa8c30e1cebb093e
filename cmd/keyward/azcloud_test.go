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
	if out, err := (cli{t: t}).run("az-cloud"); err == nil {
		t.Fatalf("az-cloud without a server: %s", out)
	}
}
