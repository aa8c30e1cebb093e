package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/throttle"
)

// startThrottled starts a dev server whose vaults allow 5 requests per
// second with a burst of 5: Azure's throttling (AZURE-API.md §8), tiny.
func startThrottled(t *testing.T) *kwtest.Env {
	t.Helper()
	dir := t.TempDir()
	s, err := server.Start(context.Background(), server.Config{
		Dev: true, Listen: "127.0.0.1:0", DataDir: dir, DNSSuffix: "localhost",
		Throttle: throttle.Config{Vault: throttle.Limit{Rate: 5, Burst: 5}},
		Log:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &kwtest.Env{T: t, Server: s, Info: s.Dev(), DataDir: dir, HTTP: kwtest.HTTPClient(t, s.CAFile(), s.Addr())}
}

// TestThrottlingRecoveredBySDKRetry: with a tiny per-vault limit, twenty
// back-to-back calls of the official SDK, with its default retry policy,
// all succeed, because Keyward answers 429 Throttled with Retry-After and
// azcore waits that long and retries. The audit log shows the 429s.
func TestThrottlingRecoveredBySDKRetry(t *testing.T) {
	e := startThrottled(t)
	ctx := context.Background()
	// Default retry options: only the transport (trust the dev CA) is set.
	c, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: e.HTTP},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, "throttled", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		got, err := c.GetSecret(ctx, "throttled", "", nil)
		if err != nil {
			t.Fatalf("call %d failed despite the SDK's retry policy: %v", i, err)
		}
		if *got.Value != "v" {
			t.Fatalf("call %d: value %q", i, *got.Value)
		}
	}
	e.Server.Close() // flushes the audit log
	n429, ok := 0, 0
	f, err := os.Open(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Operation string `json:"operation"`
			Status    int    `json:"status"`
			ErrorCode string `json:"error_code"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.Status == http.StatusTooManyRequests:
			if ev.ErrorCode != "Throttled" {
				t.Errorf("429 audited with error code %q", ev.ErrorCode)
			}
			n429++
		case ev.Operation == "SecretGet" && ev.Status == http.StatusOK:
			ok++
		}
	}
	if ok != 20 {
		t.Errorf("%d successful SecretGet events, want 20", ok)
	}
	if n429 == 0 {
		t.Fatal("no request was throttled: the limit did not apply")
	}
	t.Logf("%d requests throttled and retried by the SDK", n429)
}

// TestThrottledResponseShape: 429, Retry-After in whole seconds, Azure's
// error body.
func TestThrottledResponseShape(t *testing.T) {
	e := startThrottled(t)
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		req, _ := http.NewRequest(http.MethodGet, e.Info.VaultURL+"secrets?api-version=7.6", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			continue
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Fatalf("Retry-After %q, want whole seconds ≥ 1", resp.Header.Get("Retry-After"))
		}
		var w struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &w); err != nil || w.Error.Code != "Throttled" || w.Error.Message == "" {
			t.Fatalf("body %s, want {\"error\":{\"code\":\"Throttled\",\"message\":...}}", body)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Fatalf("Content-Type %q", ct)
		}
		return
	}
	t.Fatal("10 requests in a burst of 5 were never throttled")
}

// TestARMThrottledByThePipeline: the throttling step serves every surface.
// With the same tiny limit, back-to-back ARM reads of one caller are
// answered 429 in ARM's shape (TooManyRequests, x-ms-error-code,
// Retry-After in whole seconds), and the api-version step still answers
// first, in ARM's words, for a request without one.
func TestARMThrottledByThePipeline(t *testing.T) {
	e := startThrottled(t)
	tok, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}, TenantID: e.Info.TenantID})
	if err != nil {
		t.Fatal(err)
	}
	get := func(query string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(e.Info.ManagementURL, "/")+"/subscriptions/"+e.Info.SubscriptionID+query, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	if resp, body := get(""); resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "MissingApiVersionParameter") {
		t.Fatalf("no api-version: %d %s", resp.StatusCode, body)
	}
	var refused *http.Response
	var body []byte
	for range 12 {
		if resp, b := get("?api-version=2022-12-01"); resp.StatusCode != http.StatusOK {
			refused, body = resp, b
			break
		}
	}
	if refused == nil {
		t.Fatal("12 ARM requests in a burst of 5 were never throttled")
	}
	var w struct {
		Error struct{ Code, Message string }
	}
	retry, rerr := strconv.Atoi(refused.Header.Get("Retry-After"))
	if refused.StatusCode != http.StatusTooManyRequests || rerr != nil || retry < 1 ||
		json.Unmarshal(body, &w) != nil || w.Error.Code != "TooManyRequests" || w.Error.Message == "" ||
		refused.Header.Get("x-ms-error-code") != "TooManyRequests" {
		t.Fatalf("%d, Retry-After %q, x-ms-error-code %q, body %s: want ARM's 429 TooManyRequests with whole seconds ≥ 1",
			refused.StatusCode, refused.Header.Get("Retry-After"), refused.Header.Get("x-ms-error-code"), body)
	}
}

// TestARMAuthorizesBeforeThrottling: on ARM, as on the data plane, the
// authorization step comes before the throttling step (DESIGN.md), for the
// routes table and Microsoft.Authorization alike: a caller without a role
// is answered 403 AuthorizationFailed every time and spends none of the
// burst, while an authorized caller's burst of role-assignment reads is
// throttled in ARM's shape.
func TestARMAuthorizesBeforeThrottling(t *testing.T) {
	e := startThrottled(t)
	nobody := newSP(t, e, "throttle-nobody")
	do := func(cred azcore.TokenCredential, path string) (int, string) {
		tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}, TenantID: e.Info.TenantID})
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(e.Info.ManagementURL, "/")+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("x-ms-error-code")
	}
	sub := "/subscriptions/" + e.Info.SubscriptionID
	for _, path := range []string{
		sub + "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
		sub + "/providers/Microsoft.Authorization/roleDefinitions/" + newGUID() + "?api-version=2022-04-01",
		sub + "?api-version=2022-12-01",
	} {
		for i := range 12 {
			if status, code := do(nobody.Cred, path); status != http.StatusForbidden || code != "AuthorizationFailed" {
				t.Fatalf("GET %s as a caller without a role, request %d: %d %s; want 403 AuthorizationFailed every time (authorization before throttling)", path, i+1, status, code)
			}
		}
	}
	throttled := false
	for range 12 {
		status, code := do(e.Credential(), sub+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01")
		if status == http.StatusTooManyRequests && code == "TooManyRequests" {
			throttled = true
			break
		} else if status != http.StatusOK {
			t.Fatalf("role assignment list as the administrator: %d %s", status, code)
		}
	}
	if !throttled {
		t.Fatal("12 authorized role-assignment reads in a burst of 5 were never throttled")
	}
}
