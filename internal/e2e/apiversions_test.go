package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestAPIVersionsEveryPublished: every data-plane api-version Azure Key
// Vault has published (stable and preview folders of azure-rest-api-specs)
// is accepted, including 7.4-preview.1 (the default of Debian's
// azure-keyvault-keys 4.8.0b3) and 2016-10-01 (in every Python SDK's enum);
// each answers in its own spec's shape where the shapes differ.
func TestAPIVersionsEveryPublished(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, version, body string) map[string]any {
		t.Helper()
		ct := ""
		if body != "" {
			ct = "application/json"
		}
		r := do(t, e, method, e.Info.VaultURL+path+"?api-version="+version, tok.Token, ct, body)
		if r.Status != http.StatusOK {
			t.Fatalf("%s %s api-version %s: %d %s", method, path, version, r.Status, r.Body)
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(r.Body), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, v := range []string{"2015-06-01", "2016-10-01", "7.0-preview", "7.0", "7.1-preview", "7.1", "7.2-preview", "7.2",
		"7.3-preview", "7.3", "7.4-preview.1", "7.4", "7.5-preview.1", "7.5", "7.6-preview.1", "7.6-preview.2", "7.6",
		"2025-06-01-preview", "2025-06-01", "2025-07-01-preview", "2025-07-01", "2026-01-01-preview", "2026-04-01"} {
		s := call(http.MethodPut, "secrets/v", v, `{"value":"x"}`)
		k := call(http.MethodPost, "keys/k/create", v, `{"kty":"EC","crv":"P-256"}`)
		sa, ka := s["attributes"].(map[string]any), k["attributes"].(map[string]any)
		_, days := sa["recoverableDays"]
		level, hasLevel := sa["recoveryLevel"].(string)
		switch v {
		case "2015-06-01": // before soft delete
			if hasLevel || days {
				t.Fatalf("%s: attributes %v", v, sa)
			}
		case "2016-10-01", "7.0-preview", "7.0": // no recoverableDays (7.1)
			if days || level != "Recoverable+Purgeable" {
				t.Fatalf("%s: attributes %v", v, sa)
			}
		default:
			if !days || level != "Recoverable+Purgeable" {
				t.Fatalf("%s: attributes %v", v, sa)
			}
		}
		if _, ok := ka["recoverableDays"]; ok != days {
			t.Fatalf("%s: key attributes %v", v, ka)
		}
		got := call(http.MethodGet, "secrets/v/", v, "")
		if got["value"] != "x" {
			t.Fatalf("%s: get %v", v, got)
		}
	}
	// 7.2 predates release policies; 7.3 has them.
	body := `{"kty":"RSA","key_size":2048,"attributes":{"exportable":true},"release_policy":{"data":"eyJhbnlPZiI6W3siYWxsT2YiOlt7ImNsYWltIjoieCIsImVxdWFscyI6InkifV0sImF1dGhvcml0eSI6Imh0dHBzOi8vYS5leGFtcGxlIn1dLCJ2ZXJzaW9uIjoiMS4wLjAifQ"}}`
	r := do(t, e, http.MethodPost, e.Info.VaultURL+"keys/rel/create?api-version=7.3", tok.Token, "application/json", body)
	var k map[string]any
	if err := json.Unmarshal([]byte(r.Body), &k); r.Status != http.StatusOK || err != nil || k["release_policy"] == nil {
		t.Fatalf("7.3 key with a release policy: %d %s", r.Status, r.Body)
	}
	old := call(http.MethodGet, "keys/rel/", "7.2", "")
	if _, ok := old["release_policy"]; ok {
		t.Fatalf("7.2 key with release_policy: %v", old)
	}
	if _, ok := old["attributes"].(map[string]any)["exportable"]; ok {
		t.Fatalf("7.2 key with exportable: %v", old)
	}
	r = do(t, e, http.MethodGet, e.Info.VaultURL+"secrets?api-version=7.4-preview.2", tok.Token, "", "")
	if r.Status != http.StatusBadRequest {
		t.Fatalf("unpublished 7.4-preview.2: %d %s", r.Status, r.Body)
	}
}
