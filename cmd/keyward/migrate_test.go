package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
)

// TestMigrateStorageBoltToPostgres moves a dev server's bbolt store, with
// secrets, keys and deleted objects, into PostgreSQL with the CLI, then
// reads everything back with the official SDK from a server on PostgreSQL.
func TestMigrateStorageBoltToPostgres(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)

	e := kwtest.Start(t, kwtest.Options{})
	dir := e.DataDir
	sc, _ := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	kc, _ := azkeys.NewClient(e.Info.VaultURL, e.Credential(), &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	versions := map[string]string{}
	for _, v := range []string{"one", "two", "three"} {
		r, err := sc.SetSecret(ctx, "multi", azsecrets.SetSecretParameters{Value: to.Ptr(v)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		versions[r.ID.Version()] = v
	}
	if _, err := sc.SetSecret(ctx, "binned", azsecrets.SetSecretParameters{Value: to.Ptr("deleted value")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.DeleteSecret(ctx, "binned", nil); err != nil {
		t.Fatal(err)
	}
	key, err := kc.CreateKey(ctx, "signer", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CreateKey(ctx, "gone", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.DeleteKey(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	e.Server.Close()

	migrateCmd := func() string {
		var out, errb bytes.Buffer
		getenv := func(k string) string {
			if k == "KEYWARD_TARGET_DSN" {
				return dsn
			}
			return ""
		}
		err := run(ctx, []string{"operator", "migrate-storage", "--from", filepath.Join(dir, "keyward.db"), "--batch", "7"}, getenv, strings.NewReader(""), &out, &errb)
		if err != nil {
			t.Fatalf("migrate-storage: %v\n%s%s", err, out.String(), errb.String())
		}
		return out.String()
	}
	out := migrateCmd()
	if !strings.Contains(out, "verified") {
		t.Fatalf("no verification in output: %s", out)
	}
	if again := migrateCmd(); !strings.Contains(again, "Copied 0 keys") {
		t.Fatalf("second run was not a no-op: %s", again)
	}

	// The same data directory (dev unseal key, CA) on PostgreSQL.
	p := kwtest.Start(t, kwtest.Options{DataDir: dir, Backend: "postgres", DSN: dsn})
	sc, _ = azsecrets.NewClient(p.Info.VaultURL, p.Credential(), &azsecrets.ClientOptions{ClientOptions: p.ClientOptions()})
	kc, _ = azkeys.NewClient(p.Info.VaultURL, p.Credential(), &azkeys.ClientOptions{ClientOptions: p.ClientOptions()})
	for ver, want := range versions {
		got, err := sc.GetSecret(ctx, "multi", ver, nil)
		if err != nil || *got.Value != want {
			t.Fatalf("secret version %s: %v", ver, err)
		}
	}
	if _, err := sc.GetDeletedSecret(ctx, "binned", nil); err != nil {
		t.Fatalf("deleted secret lost: %v", err)
	}
	if _, err := sc.RecoverDeletedSecret(ctx, "binned", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := sc.GetSecret(ctx, "binned", "", nil); err != nil || *got.Value != "deleted value" {
		t.Fatalf("recovered secret: %v", err)
	}
	if _, err := kc.GetDeletedKey(ctx, "gone", nil); err != nil {
		t.Fatalf("deleted key lost: %v", err)
	}
	digest := sha256.Sum256([]byte("migrated"))
	alg := azkeys.SignatureAlgorithmES256
	sig, err := kc.Sign(ctx, "signer", key.Key.KID.Version(), azkeys.SignParameters{Algorithm: &alg, Value: digest[:]}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kc.Verify(ctx, "signer", "", azkeys.VerifyParameters{Algorithm: &alg, Digest: digest[:], Signature: sig.Result}, nil)
	if err != nil || !*v.Value {
		t.Fatalf("migrated key: %v", err)
	}
}
