package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAuditVerifyCommand: exit 0 on an intact, checkpointed log, 3 when
// events follow the last checkpoint, 1 naming the line after tampering.
func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := audit.OpenFileWith(path, audit.FileOptions{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	s.SetSigner(key)
	l := audit.NewLog(nil, s)
	for i := range 10 {
		if err := l.Record(context.Background(), &audit.Event{Time: time.Unix(int64(i), 0).UTC(), RequestID: fmt.Sprint(i), Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	verify := func(extra ...string) (string, int) {
		var out, errOut bytes.Buffer
		args := append([]string{"audit", "verify", path, path + audit.CheckpointSuffix}, extra...)
		err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
		var ee *exitError
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &ee):
			return err.Error(), ee.ExitCode()
		}
		t.Fatal(err)
		return "", -1
	}
	if out, code := verify("--key", audit.KeyFingerprint(pub)); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("intact: %d %s", code, out)
	}
	if err := l.Record(context.Background(), &audit.Event{RequestID: "late", Status: 200}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if out, code := verify(); code != verifyUnverifiable || !strings.Contains(out, "1 events after the last checkpoint are unverifiable") {
		t.Fatalf("unverifiable tail: %d %s", code, out)
	}
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(raw, []byte(`"request_id":"4"`), []byte(`"request_id":"X"`), 1), 0o600)
	if out, code := verify(); code != verifyTampered || !strings.Contains(out, "audit.log:5: modified") {
		t.Fatalf("tampered: %d %s", code, out)
	}
}

// TestAuditReportCommand: the key-usage report as CSV and JSON, filtered
// by vault and time.
func TestAuditReportCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := audit.OpenFileWith(path, audit.FileOptions{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	l := audit.NewLog(nil, s)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, ev := range []audit.Event{
		{Operation: "SecretGet", Vault: "v1", ObjectID: "https://v1.vault.localhost/secrets/db/abc", Caller: audit.Caller{ObjectID: "alice"}, Status: 200, Result: audit.Allowed},
		{Operation: "SecretGet", Vault: "v1", ObjectID: "https://v1.vault.localhost/secrets/db/def", Caller: audit.Caller{ObjectID: "alice"}, Status: 200, Result: audit.Allowed},
		{Operation: "SecretGet", Vault: "v1", ObjectID: "https://v1.vault.localhost/secrets/db", Caller: audit.Caller{ObjectID: "mallory"}, Status: 403, Result: audit.Denied},
		{Operation: "KeySign", Vault: "v2", ObjectID: "https://v2.vault.localhost/keys/k/1", Caller: audit.Caller{ObjectID: "bob"}, Status: 200, Result: audit.Allowed},
		{Operation: "SecretGet", Vault: "v1", ObjectID: "https://v1.vault.localhost/secrets/old", Caller: audit.Caller{ObjectID: "alice"}, Status: 200, Result: audit.Allowed},
	} {
		ev.Service, ev.Time = "vault", t0.Add(time.Duration(i)*time.Hour)
		if i == 4 {
			ev.Time = t0.Add(-48 * time.Hour) // before --since
		}
		if err := l.Record(context.Background(), &ev); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	report := func(args ...string) string {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), append([]string{"audit", "report"}, args...), func(string) string { return "" },
			strings.NewReader(""), &out, &errOut); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	csvOut := report("--since", "2026-12-01", "--vault", "v1", path)
	want := "vault,object,caller_object_id,caller_app_id,operations,count,denied,first_use,last_use\n" +
		"v1,https://v1.vault.localhost/secrets/db,alice,,SecretGet=2,2,0,2026-12-01T10:00:00Z,2026-12-01T11:00:00Z\n" +
		"v1,https://v1.vault.localhost/secrets/db,mallory,,SecretGet=1,1,1,2026-12-01T12:00:00Z,2026-12-01T12:00:00Z\n"
	if csvOut != want {
		t.Fatalf("csv:\n%s\nwant:\n%s", csvOut, want)
	}
	var rep []audit.ObjectUsage
	if err := json.Unmarshal([]byte(report("--format", "json", path)), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep) != 3 || rep[2].Vault != "v2" || rep[2].Callers[0].Operations["KeySign"] != 1 {
		t.Fatalf("json: %+v", rep)
	}
}

// TestAuditReportRemote: `keyward audit report --vault NAME` without files
// asks the server's audit report API, as the dev service principal.
func TestAuditReportRemote(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	sc, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.SetSecret(ctx, "remote-reported", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetSecret(ctx, "remote-reported", "", nil); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"audit", "report", "--vault", "dev", "--dev-json", filepath.Join(e.DataDir, "dev.json"), "--format", "json", "--since", "1h"},
		func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var rep []audit.ObjectUsage
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	found := false
	for _, o := range rep {
		if strings.HasSuffix(o.Object, "/secrets/remote-reported") && len(o.Callers) == 1 &&
			o.Callers[0].Operations["SecretGet"] == 1 && o.Callers[0].Operations["SecretSet"] == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("the server's report lacks the secret's use:\n%s", out.String())
	}
	// Neither files nor --vault: an error, nothing printed.
	out.Reset()
	if err := run(ctx, []string{"audit", "report"}, func(string) string { return "" }, strings.NewReader(""), &out, &errOut); err == nil || out.Len() != 0 {
		t.Fatalf("report without files or vault: %v %q", err, out.String())
	}
}
