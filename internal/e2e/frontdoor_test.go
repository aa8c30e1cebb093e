package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/storage"
)

// fullDiskSink is the audit file sink on a disk that can fill up: while
// full is set, every write fails as write(2) does on a full disk.
type fullDiskSink struct {
	audit.Sink
	full   atomic.Bool
	writes atomic.Int64 // events refused
}

func (s *fullDiskSink) Write(ctx context.Context, e *audit.Event) error {
	if s.full.Load() {
		s.writes.Add(1)
		return fmt.Errorf("write audit.log: %w", syscall.ENOSPC)
	}
	return s.Sink.Write(ctx, e)
}

// fullDiskStorage fails every commit like a database file on a full disk.
type fullDiskStorage struct {
	storage.Backend
	full atomic.Bool
}

func (s *fullDiskStorage) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if s.full.Load() {
		return fmt.Errorf("write keyward.db: %w", syscall.ENOSPC)
	}
	return s.Backend.Update(ctx, fn)
}

func secretURL(e *kwtest.Env, name string) string {
	return e.Info.VaultURL + "secrets/" + name + "?api-version=7.4"
}

func vaultToken(t *testing.T, e *kwtest.Env) string {
	t.Helper()
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// TestAuditFailsClosed (issue 12.1): with the audit disk full, a secret
// read answers 503 with Retry-After and no value, a write answers 503 and
// changes nothing (seen by a read once the disk has room again), and
// /readyz reports the sink and its failures.
func TestAuditFailsClosed(t *testing.T) {
	sink := &fullDiskSink{}
	e := kwtest.Start(t, kwtest.Options{WrapAuditSink: func(s audit.Sink) audit.Sink { sink.Sink = s; return sink }})
	tok := vaultToken(t, e)
	const before, after = "value-before-the-disk-filled", "value-written-while-full"
	if r := do(t, e, http.MethodPut, secretURL(e, "guarded"), tok, "application/json", `{"value":"`+before+`"}`); r.Status != http.StatusOK {
		t.Fatalf("set: %d %s", r.Status, r.Body)
	}
	base := strings.TrimSuffix(e.Info.AuthorityHost, "/")
	if r := do(t, e, http.MethodGet, base+"/readyz", "", "", ""); r.Status != http.StatusOK {
		t.Fatalf("readyz before: %d %s", r.Status, r.Body)
	}

	sink.full.Store(true)
	r := do(t, e, http.MethodGet, secretURL(e, "guarded"), tok, "", "")
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("read with the audit disk full: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if strings.Contains(r.Body, before) {
		t.Fatal("the value left without an audit event")
	}
	r = do(t, e, http.MethodPut, secretURL(e, "guarded"), tok, "application/json", `{"value":"`+after+`"}`)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("write with the audit disk full: %d %s", r.Status, r.Body)
	}
	r = do(t, e, http.MethodPut, secretURL(e, "born-while-full"), tok, "application/json", `{"value":"`+after+`"}`)
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("create with the audit disk full: %d %s", r.Status, r.Body)
	}
	r = do(t, e, http.MethodGet, base+"/readyz", "", "", "")
	var ready struct {
		Status   string `json:"status"`
		Failures int    `json:"audit_failures"`
	}
	json.Unmarshal([]byte(r.Body), &ready)
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(ready.Status, "audit") || ready.Failures < 3 {
		t.Fatalf("readyz with the audit disk full: %d %s", r.Status, r.Body)
	}
	if sink.writes.Load() < 3 {
		t.Fatalf("%d refused audit writes", sink.writes.Load())
	}

	sink.full.Store(false)
	r = do(t, e, http.MethodGet, secretURL(e, "guarded"), tok, "", "")
	if r.Status != http.StatusOK || !strings.Contains(r.Body, before) {
		t.Fatalf("after the disk has room: %d %s (the refused write must have changed nothing)", r.Status, r.Body)
	}
	r = do(t, e, http.MethodGet, e.Info.VaultURL+"secrets/guarded/versions?api-version=7.4", tok, "", "")
	var versions struct {
		Value []json.RawMessage `json:"value"`
	}
	if json.Unmarshal([]byte(r.Body), &versions); r.Status != http.StatusOK || len(versions.Value) != 1 {
		t.Fatalf("versions after the refused write: %d %s", r.Status, r.Body)
	}
	if r = do(t, e, http.MethodGet, secretURL(e, "born-while-full"), tok, "", ""); r.Status != http.StatusNotFound {
		t.Fatalf("a secret created while the audit disk was full: %d %s", r.Status, r.Body)
	}
	if r = do(t, e, http.MethodGet, base+"/readyz", "", "", ""); r.Status != http.StatusOK {
		t.Fatalf("readyz after recovery: %d %s", r.Status, r.Body)
	}
	// Every answered request is in the log, and the refused ones are not
	// claimed as allowed.
	e.Server.Close()
	for _, ev := range auditEvents(t, e) {
		if ev.Operation == "SecretSet" && ev.Result == audit.Allowed && strings.Contains(ev.ObjectID, "born-while-full") {
			t.Fatalf("a refused write audited as allowed: %+v", ev)
		}
	}
}

// TestStorageFullIs503 (issue 12.5): a full disk under the database is a
// temporary condition: 503 with Retry-After, not 500.
func TestStorageFullIs503(t *testing.T) {
	st := &fullDiskStorage{}
	e := kwtest.Start(t, kwtest.Options{WrapStorage: func(b storage.Backend) storage.Backend { st.Backend = b; return st }})
	tok := vaultToken(t, e)
	st.full.Store(true)
	r := do(t, e, http.MethodPut, secretURL(e, "nospace"), tok, "application/json", `{"value":"v"}`)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(r.Body, "ServiceUnavailable") {
		t.Fatalf("set on a full disk: %d Retry-After %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	st.full.Store(false)
	if r := do(t, e, http.MethodPut, secretURL(e, "nospace"), tok, "application/json", `{"value":"v"}`); r.Status != http.StatusOK {
		t.Fatalf("set after space was freed: %d %s", r.Status, r.Body)
	}
}

// TestEscapedSlashInName (issue 12.5): the data plane routes on the
// escaped path, so a name holding an escaped "/" is a bad name (400), not
// a version path (405).
func TestEscapedSlashInName(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	tok := vaultToken(t, e)
	r := do(t, e, http.MethodPut, secretURL(e, "a%2Fb"), tok, "application/json", `{"value":"v"}`)
	if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `"BadParameter"`) {
		t.Fatalf("PUT /secrets/a%%2Fb: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, http.MethodGet, secretURL(e, "a%2Fb"), tok, "", ""); r.Status == http.StatusOK {
		t.Fatalf("GET /secrets/a%%2Fb: %d %s", r.Status, r.Body)
	}
}

// TestManagementTenantMismatchChallenges (issue 12.5): the management
// plane's 401 InvalidAuthenticationTokenTenant carries WWW-Authenticate,
// like every other 401.
func TestManagementTenantMismatchChallenges(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	other := secondTenant(t, e, "tenantvault")
	opts := policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}, TenantID: other.TenantID}
	tok, err := e.CredentialFor(other.TenantID, other.ClientID, other.ClientSecret).GetToken(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSuffix(e.Info.ManagementURL, "/") + "/subscriptions/" + e.Info.SubscriptionID + "/resourcegroups?api-version=2022-09-01"
	r := do(t, e, http.MethodGet, url, tok.Token, "", "")
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "InvalidAuthenticationTokenTenant") {
		t.Fatalf("another tenant's token on this subscription: %d %s", r.Status, r.Body)
	}
	if h := r.Header.Values("WWW-Authenticate"); len(h) != 1 || !strings.HasPrefix(h[0], "Bearer ") {
		t.Fatalf("WWW-Authenticate %q", h)
	}
}
