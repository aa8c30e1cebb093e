package events

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/netguard"
	"github.com/keyward/keyward/internal/vault"
)

// TestWebhookGuardAtDial: a delivery to an address the guard refuses
// (loopback, outside dev mode) never reaches it, whatever the
// subscription says; the same endpoint allowed explicitly gets the event.
func TestWebhookGuardAtDial(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer ts.Close()
	roots := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	sub := &vault.Subscription{Name: "s", Endpoint: ts.URL + "/hook", Secret: []byte("k")}
	evs := []vault.Event{{ID: "1", EventType: "Microsoft.KeyVault.SecretNewVersionCreated"}}

	refuse, _ := netguard.New(nil, false)
	if err := NewWebhook(clock.Real{}, roots, refuse.Named("[events] allowed_hosts")).Send(context.Background(), sub, evs); err == nil {
		t.Fatal("a delivery to loopback succeeded outside dev mode")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback endpoint got %d requests", n)
	}
	allow, _ := netguard.New([]string{"127.0.0.1"}, false)
	if err := NewWebhook(clock.Real{}, roots, allow).Send(context.Background(), sub, evs); err != nil || hits.Load() != 1 {
		t.Fatalf("allowed delivery: %v (%d requests)", err, hits.Load())
	}
}
