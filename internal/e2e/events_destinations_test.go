package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestEventSubscriptionDestinations: an event subscription whose endpoint
// the server may not reach — not in [events] allowed_hosts, or at a
// private or link-local address — is refused with 400 BadParameter and
// not stored; on the dev server a loopback endpoint (a local receiver)
// is allowed.
func TestEventSubscriptionDestinations(t *testing.T) {
	hook := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	put := func(e *kwtest.Env, endpoint string) httpResult {
		t.Helper()
		return do(t, e, http.MethodPut, e.Info.VaultURL+"eventsubscriptions/hook?api-version=7.6", tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0]),
			"application/json", `{"endpointUrl":"`+endpoint+`"}`)
	}
	none := func(e *kwtest.Env) {
		t.Helper()
		r := do(t, e, http.MethodGet, e.Info.VaultURL+"eventsubscriptions?api-version=7.6", tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0]), "", "")
		if r.Status != http.StatusOK || strings.Contains(r.Body, `"hook"`) {
			t.Fatalf("subscriptions after refusals: %d %s", r.Status, r.Body)
		}
	}
	refused := func(e *kwtest.Env, endpoint, key string) {
		t.Helper()
		r := put(e, endpoint)
		if code, _ := azureError(r.Body); r.Status != http.StatusBadRequest || code != "BadParameter" || !strings.Contains(r.Body, key) {
			t.Errorf("%s: %d %s", endpoint, r.Status, r.Body)
		}
	}

	listed := kwtest.Start(t, kwtest.Options{Events: server.BackupConfig{AllowedHosts: []string{"hooks.example.com"}}})
	for _, u := range []string{hook.URL + "/events", "https://10.0.0.1/events", "https://hooks.example.com.evil.example/events"} {
		refused(listed, u, "[events] allowed_hosts")
	}
	none(listed)

	dev := kwtest.Start(t, kwtest.Options{})
	for _, u := range []string{"https://10.0.0.1/events", "https://192.168.10.1/events", "https://169.254.169.254/latest", "https://[fd00::1]/events"} {
		refused(dev, u, "[events] allowed_hosts")
	}
	none(dev)
	if r := put(dev, hook.URL+"/events"); r.Status != http.StatusOK {
		t.Fatalf("dev server, loopback receiver: %d %s", r.Status, r.Body)
	}
}
