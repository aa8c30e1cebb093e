package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/mhsm"
)

// TestHSMSecurityDomainCommands: `keyward hsm security-domain download`
// activates a new pool with custodian certificates; `upload` activates a
// second pool with that security domain, the custodians' private keys
// (two of three) read only by the CLI.
func TestHSMSecurityDomainCommands(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	pools := e.Server.Pools()
	for _, n := range []string{"cli-one", "cli-two"} {
		if _, err := pools.Create(ctx, mhsm.Pool{Name: n, TenantID: e.Info.TenantID, SubscriptionID: e.Info.SubscriptionID,
			ResourceGroup: e.Info.ResourceGroup, Location: e.Info.Location, InitialAdmins: []string{e.Info.ObjectID}}); err != nil {
			t.Fatal(err)
		}
	}
	// The dev server's custodian files serve as three custodians.
	cust := filepath.Join(e.DataDir, "managedhsm-dev")
	c := cli{t: t}
	dev := filepath.Join(e.DataDir, "dev.json")
	url := func(n string) string { return strings.Replace(e.Info.ManagedHSMURL, "//dev.", "//"+n+".", 1) }
	sd := filepath.Join(t.TempDir(), "sd.json")
	out, err := c.run("hsm", "--dev-json", dev, "--hsm-url", url("cli-one"), "security-domain", "download",
		"--sd-wrapping-keys", filepath.Join(cust, "custodian-1.cer")+","+filepath.Join(cust, "custodian-2.cer")+","+filepath.Join(cust, "custodian-3.cer"),
		"--sd-quorum", "2", "--security-domain-file", sd)
	if err != nil {
		t.Fatalf("download: %v\n%s", err, out)
	}
	if p, _ := pools.Get("cli-one"); !p.Active() {
		t.Fatal("download did not activate the pool")
	}
	if raw, err := os.ReadFile(sd); err != nil || !strings.Contains(string(raw), `"enc_shares"`) {
		t.Fatalf("security domain file: %v", err)
	}
	// One custodian is below the quorum: nothing happens.
	if out, err := c.run("hsm", "--dev-json", dev, "--hsm-url", url("cli-two"), "security-domain", "upload",
		"--sd-file", sd, "--sd-wrapping-keys", filepath.Join(cust, "custodian-2.key")); err == nil {
		t.Fatalf("upload with one custodian succeeded: %s", out)
	}
	if p, _ := pools.Get("cli-two"); p.Active() {
		t.Fatal("a failed upload activated the pool")
	}
	out, err = c.run("hsm", "--dev-json", dev, "--hsm-url", url("cli-two"), "security-domain", "upload",
		"--sd-file", sd, "--sd-wrapping-keys", filepath.Join(cust, "custodian-3.key")+","+filepath.Join(cust, "custodian-1.key"))
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, out)
	}
	if p, _ := pools.Get("cli-two"); !p.Active() {
		t.Fatal("upload did not activate the pool")
	}
}
