package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestCertificateCreateAnswersPending: POST /certificates/{n}/create
// answers as Azure does, 202 with an operation "inProgress", status_details,
// a request_id and a Location naming the pending operation; the first GET
// of that Location finds it completed. azure-core's synchronous LROPoller
// (Python's begin_create_certificate(...).result()) polls only when the
// first answer is not final: with "completed" there it returned None.
func TestCertificateCreateAnswersPending(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	tok, err := e.Credential().GetToken(context.Background(), tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	pol := `{"policy":{"key_props":{"kty":"EC","crv":"P-256"},"x509_props":{"subject":"CN=p"},"issuer":{"name":"Self"}}}`
	r := do(t, e, http.MethodPost, e.Info.VaultURL+"certificates/p/create?api-version=7.4", tok.Token, "application/json", pol)
	var op struct {
		ID            string `json:"id"`
		Status        string `json:"status"`
		StatusDetails string `json:"status_details"`
		RequestID     string `json:"request_id"`
		Target        string `json:"target"`
		CSR           string `json:"csr"`
	}
	if err := json.Unmarshal([]byte(r.Body), &op); err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if op.Status != "inProgress" || op.StatusDetails == "" || op.RequestID == "" || op.Target != "" || op.CSR == "" ||
		op.ID != e.Info.VaultURL+"certificates/p/pending" {
		t.Fatalf("create answered %s", r.Body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != e.Info.VaultURL+"certificates/p/pending" ||
		loc.Query().Get("api-version") != "7.4" || loc.Query().Get("request_id") != op.RequestID {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	r = do(t, e, http.MethodGet, loc.String(), tok.Token, "", "")
	var done struct{ Status, Target, RequestID string }
	json.Unmarshal([]byte(r.Body), &done)
	if r.Status != http.StatusOK || done.Status != "completed" || done.Target != e.Info.VaultURL+"certificates/p" {
		t.Fatalf("pending: %d %s", r.Status, r.Body)
	}
	if r := do(t, e, http.MethodGet, e.Info.VaultURL+"certificates/p?api-version=7.4", tok.Token, "", ""); r.Status != http.StatusOK {
		t.Fatalf("certificate: %d %s", r.Status, r.Body)
	}
}
