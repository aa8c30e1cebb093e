package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// hook is a webhook receiver that checks every delivery's signature.
type hook struct {
	t      *testing.T
	mu     sync.Mutex
	secret []byte
	events []map[string]any
	bad    int
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	sig := r.Header.Get("Keyward-Signature")
	ts, mac, _ := strings.Cut(sig, ",v1=")
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(strings.TrimPrefix(ts, "t=") + "."))
	m.Write(body)
	got, _ := hex.DecodeString(mac)
	if !hmac.Equal(got, m.Sum(nil)) {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var evs []map[string]any
	if err := json.Unmarshal(body, &evs); err != nil {
		h.bad++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.events = append(h.events, evs...)
}

func (h *hook) count(eventType, subject string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.events {
		if e["eventType"] == eventType && e["subject"] == subject {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ranAt waits until the due-work job has run at the clock's current time:
// after an Advance past its next tick, the run that the advance triggered.
// What the test asserts next is what that run did (or did not do).
func ranAt(t *testing.T, e *kwtest.Env, clk clock.Clock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Server.Jobs().WaitRunSince(ctx, server.JobDue, clk.Now()); err != nil {
		t.Fatalf("the due-work job did not run at %v: %v", clk.Now(), err)
	}
}

// runAgain runs the due-work job once more at the same moment and waits
// for it: work that is done must not be done twice.
func runAgain(t *testing.T, e *kwtest.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Server.Jobs().RunOnce(ctx, server.JobDue); err != nil {
		t.Fatalf("running the due-work job again: %v", err)
	}
}

func TestRotationPolicyAndNotifyWithFakeClock(t *testing.T) {
	h := &hook{t: t}
	ts := httptest.NewTLSServer(h)
	defer ts.Close()
	pool := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	start := time.Now().Truncate(time.Second)
	clk := clock.NewFake(start)
	e := kwtest.Start(t, kwtest.Options{Clock: clk, SchedulerInterval: 20 * time.Millisecond, EventRoots: pool})
	c := keysClient(t, e)
	ctx := context.Background()

	// Subscribe the webhook to the vault's key events.
	tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"endpointUrl": ts.URL + "/events",
		"includedEventTypes": []string{"Microsoft.KeyVault.KeyNearExpiry", "Microsoft.KeyVault.KeyNewVersionCreated"}})
	req, _ := http.NewRequest(http.MethodPut, e.Info.VaultURL+"eventsubscriptions/hook?api-version=7.6", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sub struct {
		Secret string `json:"signingSecret"`
	}
	json.NewDecoder(resp.Body).Decode(&sub)
	resp.Body.Close()
	if resp.StatusCode != 200 || sub.Secret == "" {
		t.Fatalf("subscribe: %d", resp.StatusCode)
	}
	h.mu.Lock()
	h.secret, _ = base64.RawURLEncoding.DecodeString(sub.Secret)
	h.mu.Unlock()

	// A key rotated every 30 days, whose new versions expire after 90.
	k, err := c.CreateKey(ctx, "auto", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKeyRotationPolicy(ctx, "auto", azkeys.KeyRotationPolicy{
		LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P30D")},
			Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}},
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")},
	}, nil); err != nil {
		t.Fatal(err)
	}
	// Tokens are issued on the fake clock, so after each jump a fresh
	// client (and credential) is used.
	versions := func() []*azkeys.KeyProperties {
		var out []*azkeys.KeyProperties
		for pg := keysClient(t, e).NewListKeyPropertiesVersionsPager("auto", nil); pg.More(); {
			p, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p.Value...)
		}
		return out
	}
	clk.Advance(29 * 24 * time.Hour)
	ranAt(t, e, clk)
	if n := len(versions()); n != 1 {
		t.Fatalf("rotated before 30 days: %d versions", n)
	}
	clk.Advance(24*time.Hour + time.Minute)
	ranAt(t, e, clk)
	waitFor(t, "rotation after 30 days", func() bool { return len(versions()) == 2 })
	runAgain(t, e)
	if n := len(versions()); n != 2 {
		t.Fatalf("rotation ran more than once: %d versions", n)
	}
	c = keysClient(t, e)
	latest, err := c.GetKey(ctx, "auto", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Key.KID.Version() == k.Key.KID.Version() {
		t.Fatal("latest version did not change")
	}
	wantExp := clk.Now().Add(90 * 24 * time.Hour)
	if latest.Attributes.Expires == nil || latest.Attributes.Expires.Sub(wantExp).Abs() > time.Minute {
		t.Fatalf("new version expires %v, want about %v", latest.Attributes.Expires, wantExp)
	}
	waitFor(t, "KeyNewVersionCreated events", func() bool { return h.count("Microsoft.KeyVault.KeyNewVersionCreated", "auto") == 2 })

	// Notify 30 days before expiry (the default policy) reaches the hook once.
	exp := clk.Now().Add(60 * 24 * time.Hour)
	c = keysClient(t, e)
	if _, err := c.CreateKey(ctx, "expiring", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC),
		KeyAttributes: &azkeys.KeyAttributes{Expires: &exp}}, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(29 * 24 * time.Hour)
	ranAt(t, e, clk)
	if n := h.count("Microsoft.KeyVault.KeyNearExpiry", "expiring"); n != 0 {
		t.Fatalf("near-expiry sent %d times 31 days before expiry", n)
	}
	clk.Advance(2 * 24 * time.Hour)
	ranAt(t, e, clk)
	waitFor(t, "KeyNearExpiry", func() bool { return h.count("Microsoft.KeyVault.KeyNearExpiry", "expiring") == 1 })
	clk.Advance(10 * 24 * time.Hour)
	ranAt(t, e, clk)
	if n := h.count("Microsoft.KeyVault.KeyNearExpiry", "expiring"); n != 1 {
		t.Fatalf("near-expiry delivered %d times", n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bad != 0 {
		t.Fatalf("%d deliveries with a bad signature or body", h.bad)
	}
	for _, ev := range h.events {
		if ev["eventType"] == "Microsoft.KeyVault.KeyNearExpiry" {
			data := ev["data"].(map[string]any)
			if data["VaultName"] != "dev" || data["ObjectType"] != "Key" || !strings.HasPrefix(data["Id"].(string), e.Info.VaultURL+"keys/expiring/") {
				t.Fatalf("event data %v", data)
			}
		}
	}
}
