package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestApprovalCommandsAuditSinkRemove: under the operator tenant's policy
// on AuditSinkRemove, `keyward operator unseal` without a known sink fails
// with the refusal; `operator audit-sinks` lists the sink,
// `operator audit-sink-remove` creates the approval request, the approver
// approves it with `approval approve --tenant-level`, and the restart
// without the sink unseals.
func TestApprovalCommandsAuditSinkRemove(t *testing.T) {
	dir := t.TempDir()
	withSink := kwtest.Options{DataDir: dir, Audit: server.AuditConfig{Sinks: []server.AuditSinkConfig{{Type: "stdout"}}}}
	e := kwtest.Start(t, withSink)
	at, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	mgmt := strings.TrimSuffix(e.Info.ManagementURL, "/")
	req, _ := http.NewRequest(http.MethodPut, mgmt+"/providers/Keyward.Quorum/tenantPolicy?api-version=2026-01-01",
		strings.NewReader(`{"operations":["AuditSinkRemove"],"approvers":["`+e.Info.UnprivilegedObjectID+`"],"approvalsRequired":1}`))
	req.Header.Set("Authorization", "Bearer "+at.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set the tenant policy: %d", resp.StatusCode)
	}
	e.Server.Close()

	adminSecret, secret := e.Info.ClientSecret, e.Info.UnprivilegedClientSecret
	admin := cli{t: t, getenv: func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return adminSecret
		}
		return ""
	}}
	op := func(e *kwtest.Env, args ...string) []string {
		_, port, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(e.Info.ManagementURL, "/"), "https://"), ":")
		return append(args, "--address", "https://127.0.0.1:"+port, "--ca-cert", e.Info.CAFile)
	}
	creds := func(e *kwtest.Env, args ...string) []string {
		return append(op(e, args...), "--tenant", e.Info.TenantID, "--client-id", e.Info.ClientID)
	}
	share, err := os.ReadFile(filepath.Join(dir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}

	e = kwtest.Start(t, kwtest.Options{DataDir: dir})
	if out, err := admin.run(op(e, "operator", "unseal", strings.TrimSpace(string(share)))...); err == nil ||
		!strings.Contains(err.Error(), "Unseal refused: audit sink 'stdout'") || !e.Server.Sealed() {
		t.Fatalf("unseal without the sink: %v (sealed %v)\n%s", err, e.Server.Sealed(), out)
	}
	e.Server.Close()

	e = kwtest.Start(t, withSink)
	out, err := admin.run(creds(e, "operator", "audit-sinks")...)
	if err != nil || !strings.Contains(out, "known       stdout") || !strings.Contains(out, "Removal requires approval: true") {
		t.Fatalf("audit-sinks: %v\n%s", err, out)
	}
	out, err = admin.run(creds(e, "operator", "audit-sink-remove", "stdout")...)
	m := regexp.MustCompile(`Approval request ([0-9a-f-]{36}): Removing audit sink 'stdout' requires 1 approval`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("audit-sink-remove: %v\n%s", err, out)
	}
	other := cli{t: t, getenv: func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return secret
		}
		return ""
	}}
	out, err = other.run("approval", "approve", m[1], "--tenant-level", "--management-url", strings.TrimSuffix(e.Info.ManagementURL, "/"), "--ca-file", e.Info.CAFile,
		"--tenant", e.Info.TenantID, "--client-id", e.Info.UnprivilegedClientID, "--authority", e.Info.AuthorityHost)
	if err != nil || !strings.Contains(out, `"state": "Executed"`) {
		t.Fatalf("approve --tenant-level: %v\n%s", err, out)
	}
	e.Server.Close()

	e = kwtest.Start(t, kwtest.Options{DataDir: dir})
	if e.Server.Sealed() {
		t.Fatal("sealed after the approved removal")
	}
	if out, err := admin.run(creds(e, "operator", "audit-sinks")...); err != nil || strings.Contains(out, "stdout") {
		t.Fatalf("audit-sinks after the removal: %v\n%s", err, out)
	}
}
