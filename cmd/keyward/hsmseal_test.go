//go:build cgo

package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/devca"
	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/server"
)

// TestOperatorHSMSeal: a pkcs11-sealed Keyward on a real SoftHSM2 token
// unseals itself at every start with no shares; its recovery shares cannot
// unseal it; seal-migrate moves it to Shamir (the recovery shares unseal
// it then) and back, while it serves, and the data written before is
// still readable after each step.
func TestOperatorHSMSeal(t *testing.T) {
	tok := hsmtest.Token(t)
	dir := t.TempDir()
	ca, err := devca.Ensure(filepath.Join(t.TempDir(), "tls"),
		[]string{"localhost", "*.vault.localhost", "login.localhost", "management.localhost"},
		[]net.IP{net.IPv4(127, 0, 0, 1)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	start := func() *prodServer {
		t.Helper()
		s, err := server.Start(context.Background(), server.Config{
			Listen: "127.0.0.1:0", DataDir: dir, DNSSuffix: "localhost",
			TLSCertFile: ca.Files.Cert, TLSKeyFile: ca.Files.Key,
			HSM: hsm.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.UserPIN}, SealType: "pkcs11",
			Log: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return &prodServer{t: t, dir: dir, tls: ca, s: s, address: "https://" + s.Addr()}
	}
	p := start()
	c := cli{t: t}
	op := func(p *prodServer, args ...string) []string {
		return append(args, "--address", p.address, "--ca-cert", ca.Files.CACert)
	}
	out, err := c.run(op(p, "operator", "init", "--shares", "3", "--threshold", "2")...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Recovery Key 1:") || !strings.Contains(out, "unseals itself") {
		t.Fatalf("init output:\n%s", out)
	}
	var shares []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Recovery Key ") {
			shares = append(shares, strings.Fields(l)[3])
		}
	}
	tenant := field(t, initField("Tenant ID"), out)
	clientID := field(t, initField("Admin client ID"), out)
	secret := field(t, initField("Admin secret"), out)
	vaultName := field(t, initField("Vault"), out)
	out, err = c.run(op(p, "operator", "status")...)
	if err != nil {
		t.Fatalf("not unsealed after a pkcs11 init: %v\n%s", err, out)
	}
	ctx := context.Background()
	readBack := func(p *prodServer, want string) {
		t.Helper()
		e := p.env(vaultName, tenant, clientID, secret)
		sc, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if _, err := sc.SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("kept")}, nil); err != nil {
				t.Fatal(err)
			}
			return
		}
		r, err := sc.GetSecret(ctx, "s", "", nil)
		if err != nil || *r.Value != want {
			t.Fatalf("secret after restart/migration: %v", err)
		}
	}
	readBack(p, "")

	// Restart: unsealed by the HSM, no shares given.
	p.s.Close()
	p = start()
	if out, err := c.run(op(p, "operator", "status")...); err != nil || !strings.Contains(out, "pkcs11") {
		t.Fatalf("restart of a pkcs11-sealed Keyward: %v\n%s", err, out)
	}
	readBack(p, "kept")

	// A recovery share cannot unseal (or decrypt: internal/barrier's test
	// tries it against every stored value).
	p.s.Seal(ctx)
	if out, err := c.run(op(p, "operator", "unseal", shares[0])...); err == nil || !strings.Contains(out+err.Error(), "recovery shares cannot unseal") {
		t.Fatalf("recovery share as unseal share: %v\n%s", err, out)
	}
	p.s.Close()
	p = start()

	// To Shamir with the recovery shares: they unseal after a restart.
	creds := []string{"--tenant", tenant, "--client-id", clientID}
	getenv := func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return secret
		}
		return ""
	}
	cs := cli{t: t, getenv: getenv}
	if out, err := cs.run(op(p, append([]string{"operator", "seal-migrate", "--to", "shamir", shares[2]}, creds...)...)...); err == nil {
		t.Fatalf("migration with one share of two: %s", out)
	}
	if out, err := cs.run(op(p, append([]string{"operator", "seal-migrate", "--to", "shamir", shares[0], shares[2]}, creds...)...)...); err != nil {
		t.Fatalf("seal-migrate to shamir: %v\n%s", err, out)
	}
	readBack(p, "kept")
	p.s.Close()
	p = start()
	if _, err := c.run(op(p, "operator", "status")...); err == nil {
		t.Fatal("a Shamir-sealed Keyward unsealed itself")
	}
	for _, s := range shares[1:] {
		if out, err := c.run(op(p, "operator", "unseal", s)...); err != nil {
			t.Fatalf("unseal with a former recovery share: %v\n%s", err, out)
		}
	}
	readBack(p, "kept")

	// And back to the HSM with the same shares.
	if out, err := cs.run(op(p, append([]string{"operator", "seal-migrate", "--to", "pkcs11", shares[0], shares[1]}, creds...)...)...); err != nil {
		t.Fatalf("seal-migrate to pkcs11: %v\n%s", err, out)
	}
	p.s.Close()
	p = start()
	if out, err := c.run(op(p, "operator", "status")...); err != nil {
		t.Fatalf("not unsealed by the HSM after migrating back: %v\n%s", err, out)
	}
	readBack(p, "kept")
}
