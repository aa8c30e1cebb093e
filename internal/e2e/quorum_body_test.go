package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestQuorumApprovalRefusesInvalidBody: a protected request whose body the
// operation would refuse (invalid UTF-8, which encoding/json would turn
// into U+FFFD) is refused when it arrives, 400 BadParameter, and no
// approval request is stored for anyone to approve.
func TestQuorumApprovalRefusesInvalidBody(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	a := newSP(t, e, "body-approver")
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	tok := vaultTokenFor(t, e, e.Credential())
	call := func(method, path, body string) httpResult {
		return do(t, e, method, vaultURL+path+"?api-version=7.5", tok, "application/json", body)
	}
	pol := `{"operations":["KeyRelease"],"approvers":["` + a.ObjectID + `"],"approvalsRequired":1}`
	if r := call(http.MethodPut, "/quorumpolicy", pol); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	for _, body := range []string{"{\"target\":\"ey\xff\xfe\"}", `{"target":"\ud800"}`} {
		r := call(http.MethodPost, "/keys/k/release", body)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `"code":"BadParameter"`) {
			t.Fatalf("release with %q: %d %s", body, r.Status, r.Body)
		}
	}
	// The control: a valid body is diverted, so the refusal above was the body's.
	if r := call(http.MethodPost, "/keys/k/release", `{"target":"ey"}`); r.Status != http.StatusAccepted || !strings.Contains(r.Body, "ApprovalRequired") {
		t.Fatalf("release with a valid body: %d %s", r.Status, r.Body)
	}
	r := call(http.MethodGet, "/approvals", "")
	if r.Status != http.StatusOK || strings.Count(r.Body, `"operation":"KeyRelease"`) != 1 {
		t.Fatalf("want exactly the one valid request stored: %d %s", r.Status, r.Body)
	}
}
