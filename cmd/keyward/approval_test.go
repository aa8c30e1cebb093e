package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestApprovalCommands drives `keyward approval` against a dev server: the
// dev administrator's purge waits for approval; the administrator lists
// and shows it but cannot approve it; the approver (the dev server's
// unprivileged principal) approves it with client credentials and the
// purge runs.
func TestApprovalCommands(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	devJSON := filepath.Join(e.DataDir, "dev.json")
	base := strings.TrimSuffix(e.Info.VaultURL, "/")
	_, rest, _ := strings.Cut(strings.TrimPrefix(base, "https://"), ".")
	scope := "https://" + rest + "/.default"
	unpriv := e.CredentialFor(e.Info.TenantID, e.Info.UnprivilegedClientID, e.Info.UnprivilegedClientSecret)
	token := func(admin bool) string {
		cred := e.Credential()
		if !admin {
			cred = unpriv
		}
		at, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
		if err != nil {
			t.Fatal(err)
		}
		return at.Token
	}
	oidOf := func(jwt string) string {
		parts := strings.Split(jwt, ".")
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var c struct{ OID string }
		json.Unmarshal(raw, &c)
		return c.OID
	}
	call := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path+"?api-version=7.5", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token(true))
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	approver := oidOf(token(false))
	if s := call(http.MethodPut, "/quorumpolicy", `{"operations":["SecretPurge"],"approvers":["`+approver+`"],"approvalsRequired":1}`); s != http.StatusOK {
		t.Fatalf("set policy: %d", s)
	}
	if s := call(http.MethodPut, "/secrets/cli-q", `{"value":"v"}`); s != http.StatusOK {
		t.Fatalf("set secret: %d", s)
	}
	call(http.MethodDelete, "/secrets/cli-q", "")
	if s := call(http.MethodDelete, "/deletedsecrets/cli-q", ""); s != http.StatusAccepted {
		t.Fatalf("purge: %d, want 202", s)
	}

	admin := cli{t: t}
	out, err := admin.run("approval", "list", "--dev-json", devJSON, "--state", "Pending")
	var list struct {
		Value []struct{ ID, Operation, State string }
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Value) != 1 || list.Value[0].Operation != "SecretPurge" {
		t.Fatalf("approval list: %v\n%s", err, out)
	}
	id := list.Value[0].ID
	if out, err := admin.run("approval", "show", id, "--dev-json", devJSON); err != nil || !strings.Contains(out, `"state": "Pending"`) {
		t.Fatalf("approval show: %v\n%s", err, out)
	}
	if out, err := admin.run("approval", "approve", id, "--dev-json", devJSON); err == nil || !strings.Contains(err.Error(), "cannot approve") {
		t.Fatalf("self approval: %v\n%s", err, out)
	}
	secret := e.Info.UnprivilegedClientSecret
	other := cli{t: t, getenv: func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return secret
		}
		return ""
	}}
	out, err = other.run("approval", "approve", id, "--vault-url", base, "--ca-file", e.Info.CAFile,
		"--tenant", e.Info.TenantID, "--client-id", e.Info.UnprivilegedClientID, "--authority", e.Info.AuthorityHost)
	if err != nil || !strings.Contains(out, `"state": "Executed"`) || !strings.Contains(out, `"resultStatus": 204`) {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if s := call(http.MethodGet, "/deletedsecrets/cli-q", ""); s != http.StatusNotFound {
		t.Fatalf("deleted secret after the approved purge: %d", s)
	}
	if _, err := admin.run("approval", "show", url.PathEscape("../x"), "--dev-json", devJSON); err == nil {
		t.Fatal("show of a bad ID succeeded")
	}
}

// TestApprovalCommandsTenantLevel: with the operator tenant's policy on
// Seal, `keyward operator seal` reports the pending approval (non-zero
// exit, not sealed); `keyward approval --tenant-level` lists and shows it
// on the management host; the requester cannot approve it; the approver
// (the dev server's unprivileged principal) approves it with client
// credentials and Keyward is sealed.
func TestApprovalCommandsTenantLevel(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	devJSON := filepath.Join(e.DataDir, "dev.json")
	mgmt := strings.TrimSuffix(e.Info.ManagementURL, "/")
	at, err := e.Credential().GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, mgmt+"/providers/Keyward.Quorum/tenantPolicy?api-version=2026-01-01",
		strings.NewReader(`{"operations":["Seal"],"approvers":["`+e.Info.UnprivilegedObjectID+`"],"approvalsRequired":1}`))
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

	adminSecret := e.Info.ClientSecret
	admin := cli{t: t, getenv: func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return adminSecret
		}
		return ""
	}}
	_, port, _ := strings.Cut(strings.TrimPrefix(mgmt, "https://"), ":")
	out, err := admin.run("operator", "seal", "--address", "https://127.0.0.1:"+port, "--ca-cert", e.Info.CAFile,
		"--tenant", e.Info.TenantID, "--client-id", e.Info.ClientID)
	if err == nil || !strings.Contains(err.Error(), "not sealed: ApprovalRequired") || e.Server.Sealed() {
		t.Fatalf("seal under quorum: %v\n%s", err, out)
	}
	out, err = admin.run("approval", "list", "--tenant-level", "--dev-json", devJSON, "--state", "Pending")
	var list struct {
		Value []struct{ ID, Operation, State, Target string }
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Value) != 1 || list.Value[0].Operation != "Seal" || list.Value[0].Target != "sys/seal" {
		t.Fatalf("approval list --tenant-level: %v\n%s", err, out)
	}
	id := list.Value[0].ID
	if out, err := admin.run("approval", "show", id, "--tenant-level", "--dev-json", devJSON); err != nil || !strings.Contains(out, `"state": "Pending"`) {
		t.Fatalf("approval show --tenant-level: %v\n%s", err, out)
	}
	// A vault's list never shows it.
	if out, err := admin.run("approval", "list", "--dev-json", devJSON); err != nil || strings.Contains(out, id) {
		t.Fatalf("the vault's approval list: %v\n%s", err, out)
	}
	if out, err := admin.run("approval", "approve", id, "--tenant-level", "--dev-json", devJSON); err == nil || !strings.Contains(err.Error(), "cannot approve") || e.Server.Sealed() {
		t.Fatalf("self approval: %v\n%s", err, out)
	}
	if _, err := admin.run("approval", "list", "--tenant-level", "--vault", "x", "--dev-json", devJSON); err == nil {
		t.Fatal("--tenant-level with --vault accepted")
	}
	secret := e.Info.UnprivilegedClientSecret
	other := cli{t: t, getenv: func(k string) string {
		if k == "KEYWARD_CLIENT_SECRET" {
			return secret
		}
		return ""
	}}
	out, err = other.run("approval", "approve", id, "--tenant-level", "--management-url", mgmt, "--ca-file", e.Info.CAFile,
		"--tenant", e.Info.TenantID, "--client-id", e.Info.UnprivilegedClientID, "--authority", e.Info.AuthorityHost)
	if err != nil || !strings.Contains(out, `"state": "Executed"`) || !strings.Contains(out, `"resultStatus": 204`) || !e.Server.Sealed() {
		t.Fatalf("approve --tenant-level: %v (sealed %v)\n%s", err, e.Server.Sealed(), out)
	}
}
