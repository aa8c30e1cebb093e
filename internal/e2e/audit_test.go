package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
)

// recordingTransport notes the x-ms-request-id of every response.
type recordingTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
	ids  []string
	sent int
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.sent++
	if err == nil {
		rt.ids = append(rt.ids, resp.Header.Get("x-ms-request-id"))
	}
	return resp, err
}

// TestAuditOneEventPerRequest: every request, whatever its outcome, is one
// audit line, and no line holds a secret value, a client secret or a token
// (DESIGN.md invariant 3).
func TestAuditOneEventPerRequest(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	rec := &recordingTransport{next: e.HTTP.Transport}
	e.HTTP = &http.Client{Transport: rec}
	oid := devObjectID(t, e) // discovery + token request
	ctx := context.Background()
	cred := e.Credential()
	c := clientFor(t, e, e.Info.VaultURL, cred)

	values := []string{"audit-value-" + randomValue(), "audit-value-" + randomValue()}
	// First call: 401 challenge, discovery, token, then the request.
	if _, err := c.SetSecret(ctx, "audited", azsecrets.SetSecretParameters{Value: to.Ptr(values[0])}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx, "audited", azsecrets.SetSecretParameters{Value: to.Ptr(values[1])}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx, "audited", "", nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetSecret(ctx, "no-such-secret", "", nil)
	wantErr(t, err, http.StatusNotFound, "SecretNotFound")
	_, err = c.SetSecret(ctx, "bad_name", azsecrets.SetSecretParameters{Value: to.Ptr(values[0])}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
	for pg := c.NewListSecretPropertiesPager(nil); pg.More(); {
		if _, err := pg.NextPage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteSecret(ctx, "audited", nil); err != nil {
		t.Fatal(err)
	}
	// A bare 401, a token request that fails, and one with a wrong secret.
	if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", "", "", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.Status)
	}
	if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", "not.a.token", "", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", r.Status)
	}
	wrong := url.Values{"grant_type": {"client_credentials"}, "client_id": {e.Info.ClientID},
		"client_secret": {"wrong-" + e.Info.ClientSecret}, "scope": {tokenOpts(e).Scopes[0]}}
	if r := do(t, e, "POST", e.Info.AuthorityHost+e.Info.TenantID+"/oauth2/v2.0/token", "", "application/x-www-form-urlencoded", wrong.Encode()); r.Status != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", r.Status)
	}
	tok, err := cred.GetToken(ctx, tokenOpts(e)) // the token c used, from the cache
	if err != nil {
		t.Fatal(err)
	}
	// An operator endpoint and an unknown path are audited too.
	if r := do(t, e, "GET", e.Info.AuthorityHost+"sys/seal-status", "", "", ""); r.Status != http.StatusOK {
		t.Fatalf("seal-status: %d", r.Status)
	}
	if r := do(t, e, "GET", e.Info.AuthorityHost+"nothing-here", "", "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("unknown path: %d", r.Status)
	}

	// Close: the server has finished every request and its audit writes.
	if err := e.Server.Close(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	ids, sent := rec.ids, rec.sent
	rec.mu.Unlock()
	if len(ids) != sent {
		t.Fatalf("%d of %d requests got no response", sent-len(ids), sent)
	}

	f, err := os.Open(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type event struct {
		Time      string   `json:"time"`
		RequestID string   `json:"request_id"`
		Status    int      `json:"status"`
		Result    string   `json:"result"`
		Latency   *float64 `json:"latency_ms"`
		Service   string   `json:"service"`
		Operation string   `json:"operation"`
		Caller    struct {
			OID string `json:"oid"`
		} `json:"caller"`
	}
	perID := map[string]int{}
	byID := map[string]event{}
	secrets := append([]string{e.Info.ClientSecret, tok.Token}, values...)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Fatalf("audit line %d holds a secret value, the client secret or a token: %s", lines, line)
			}
		}
		// Tokens are also refused in pieces: the signature alone is secret enough.
		if sig := tok.Token[strings.LastIndexByte(tok.Token, '.')+1:]; strings.Contains(line, sig) {
			t.Fatalf("audit line %d holds a token signature", lines)
		}
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %d is not JSON: %v", lines, err)
		}
		if ev.Time == "" || ev.RequestID == "" || ev.Status == 0 || ev.Result == "" || ev.Latency == nil || *ev.Latency < 0 {
			t.Fatalf("audit line %d misses a field: %s", lines, line)
		}
		perID[ev.RequestID]++
		byID[ev.RequestID] = ev
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != len(ids) {
		t.Fatalf("%d audit lines for %d requests", lines, len(ids))
	}
	counts := map[int]int{}
	for _, id := range ids {
		if id == "" {
			t.Fatal("a response without x-ms-request-id")
		}
		if perID[id] != 1 {
			t.Fatalf("request %s has %d audit events, want 1", id, perID[id])
		}
		ev := byID[id]
		counts[ev.Status]++
		switch {
		case ev.Status == http.StatusUnauthorized:
			if ev.Result != "unauthenticated" {
				t.Fatalf("401 audited as %q", ev.Result)
			}
		case ev.Service == "vault":
			if ev.Caller.OID != oid {
				t.Fatalf("vault request %s %d audited with caller oid %q, want %q", ev.Operation, ev.Status, ev.Caller.OID, oid)
			}
			if want := map[bool]string{true: "allowed", false: "failed"}[ev.Status < 400]; ev.Result != want {
				t.Fatalf("vault request %s %d audited as %q, want %q", ev.Operation, ev.Status, ev.Result, want)
			}
		case ev.Operation == "TokenIssue" && ev.Status == http.StatusOK:
			if ev.Caller.OID != oid || ev.Result != "allowed" {
				t.Fatalf("token issue audited as %+v", ev)
			}
		}
	}
	// The mix we meant to make: challenges and bad tokens (401), a wrong
	// secret (401), a 404, a 400, and successes.
	if counts[http.StatusUnauthorized] < 4 || counts[http.StatusNotFound] < 2 || counts[http.StatusBadRequest] != 1 || counts[http.StatusOK] < 8 {
		t.Fatalf("status counts %v", counts)
	}
}
