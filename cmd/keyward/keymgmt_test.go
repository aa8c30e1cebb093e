package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestKeyMgmtCommands drives `keyward keymgmt` against a dev server: keys,
// rotation, settings, a KMS provider, and the errors a refused request
// prints.
func TestKeyMgmtCommands(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := cli{t: t}
	dev := []string{"keymgmt", "--dev-json", filepath.Join(e.DataDir, "dev.json")}
	run := func(args ...string) string {
		t.Helper()
		out, err := c.run(append(append([]string{}, dev...), args...)...)
		if err != nil {
			t.Fatalf("keyward keymgmt %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	read := func(args ...string) map[string]any {
		t.Helper()
		m := map[string]any{}
		if out := run(args...); json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("keyward keymgmt %s: %s", strings.Join(args, " "), out)
		}
		return m
	}
	run("key", "create", "cli-1", "--type", "ecdsa-p256")
	run("key", "create", "cli-2")
	if k := read("key", "read", "cli-1"); k["type"] != "ecdsa-p256" || k["latest_version"] != float64(1) {
		t.Fatalf("read: %v", k)
	}
	run("rotate", "cli-1")
	run("key", "update", "cli-1", "--min-enabled-version", "2")
	k := read("key", "read", "cli-1")
	if k["latest_version"] != float64(2) || k["min_enabled_version"] != float64(2) || len(k["versions"].(map[string]any)) != 2 {
		t.Fatalf("after rotate and update: %v", k)
	}
	if out := run("key", "list"); !strings.Contains(out, `"cli-1"`) || !strings.Contains(out, `"cli-2"`) {
		t.Fatalf("list: %s", out)
	}
	run("kms", "write", "aws", "--provider", "awskms", "--key-collection", "eu-west-2",
		"--credential", "access_key=AKID", "--credential", "secret_key=s", "--credential", "endpoint=http://127.0.0.1:1")
	if m := read("kms", "read", "aws"); m["provider"] != "awskms" || m["credentials"] != nil {
		t.Fatalf("kms read: %v", m)
	}
	// Refused: a bad type, an unsupported distribution, an unreachable target.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"key", "create", "cli-3", "--type", "rsa-512"}, "invalid key type"},
		{[]string{"distribute", "aws", "cli-2", "--purpose", "encrypt"}, "does not support this key type"},
		{[]string{"key", "delete", "cli-1"}, "deletion is not allowed"},
	} {
		out, err := c.run(append(append([]string{}, dev...), tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("keyward keymgmt %s: %v %s", strings.Join(tc.args, " "), err, out)
		}
	}
	if out := run("key", "list"); strings.Contains(out, "cli-3") {
		t.Errorf("a refused key was created: %s", out)
	}
	run("key", "create", "aes-1", "--type", "aes256-gcm96")
	if _, err := c.run(append(append([]string{}, dev...), "distribute", "aws", "aes-1", "--purpose", "encrypt,decrypt")...); err == nil || !strings.Contains(err.Error(), "KMS provider aws failed") {
		t.Errorf("distribute to an unreachable KMS: %v", err)
	}
	if out := run("kms", "keys", "aws"); strings.TrimSpace(out) != "[]" {
		t.Errorf("a failed distribution is listed: %s", out)
	}
	// Sealed: Vault's words, 503.
	if err := e.Server.Seal(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run("keymgmt", "--address", e.Info.KeymgmtAddress, "--ca-file", e.Info.CAFile, "--token", "t", "key", "list"); err == nil || !strings.Contains(err.Error(), "Vault is sealed") {
		t.Errorf("sealed: %v", err)
	}
}
