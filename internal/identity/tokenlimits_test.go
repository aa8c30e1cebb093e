package identity

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"

	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/throttle"
)

func TestTokenGuardLockout(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	g := newTokenGuard(clk, TokenLimits{LockoutFailures: 3, LockoutWindow: time.Minute, LockoutDuration: 10 * time.Minute})
	fail := func(n int, src string) {
		for range n {
			g.failed("T", "App", src)
		}
	}
	// Failures spread wider than the window never lock.
	fail(2, "10.0.0.1")
	clk.Advance(time.Minute + time.Second)
	fail(2, "10.0.0.1")
	if g.lockedFor("t", "app", "10.0.0.1") != 0 {
		t.Fatal("locked by failures outside one window")
	}
	fail(1, "10.0.0.1")
	if d := g.lockedFor("t", "app", "10.0.0.1"); d != 10*time.Minute {
		t.Fatalf("locked for %v after 3 failures in the window, want 10m", d)
	}
	if g.lockedFor("t", "app", "10.0.0.2") != 0 || g.lockedFor("t", "other", "10.0.0.1") != 0 {
		t.Fatal("the lock reaches another source or another client")
	}
	// Failing on during the lock does not extend it; after it, counting
	// starts afresh and the next burst locks again.
	clk.Advance(5 * time.Minute)
	fail(5, "10.0.0.1")
	if d := g.lockedFor("t", "app", "10.0.0.1"); d != 5*time.Minute {
		t.Fatalf("lock extended: %v left", d)
	}
	clk.Advance(5 * time.Minute)
	if g.lockedFor("t", "app", "10.0.0.1") != 0 {
		t.Fatal("still locked after the lockout")
	}
	fail(3, "10.0.0.1")
	if g.lockedFor("t", "app", "10.0.0.1") == 0 {
		t.Fatal("not locked again after a second burst")
	}
	// A success from a source forgets its failures.
	fail(2, "10.0.0.9")
	g.succeeded("t", "app", "10.0.0.9")
	fail(2, "10.0.0.9")
	if g.lockedFor("t", "app", "10.0.0.9") != 0 {
		t.Fatal("failures before a success still counted")
	}
}

func TestTokenGuardSources(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"":                     "",
	} {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	g := newTokenGuard(clk, TokenLimits{Source: throttle.Limit{Rate: 1, Burst: 2}})
	for i, src := range []string{"2001:db8::1", "2001:db8::2"} {
		if _, ok := g.allowSource(src); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	if after, ok := g.allowSource("2001:db8::3"); ok || after != time.Second {
		t.Fatalf("third request from the same /64: allowed=%v after=%v", ok, after)
	}
	if _, ok := g.allowSource("2001:db9::1"); !ok {
		t.Fatal("another /64 throttled")
	}
}

// TestTokenLockoutSharedAcrossNodes: two authorities over one store (two
// nodes of a cluster) share a registered client's lockout, whichever node
// saw the failures; other sources are not locked, and a success clears the
// stored count.
func TestTokenLockoutSharedAcrossNodes(t *testing.T) {
	e := newIDEnv(t)
	ctx := context.Background()
	sp, err := e.dir.CreateServicePrincipal(ctx, e.tenant, "app", e.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret, err := e.dir.AddClientSecret(ctx, e.tenant, sp.AppID, e.clk.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	node2 := NewAuthority(e.dir, e.b, e.clk, accessAuthority)
	if err := node2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	lim := DefaultTokenLimits
	ask := func(a *Authority, src, secret string) int {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {secret}, "scope": {"https://vault.test/.default"}}
		req := httptest.NewRequest(http.MethodPost, accessAuthority+e.tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req = req.WithContext(audit.WithEvent(req.Context(), &audit.Event{Caller: audit.Caller{IP: src}}))
		w := httptest.NewRecorder()
		a.Surface([]string{"https://vault.test"}).ServeHTTP(w, req)
		return w.Code
	}
	// Failures alternate between the nodes: neither node's own count
	// reaches the limit, the stored one does.
	for i := range lim.LockoutFailures {
		if st := ask([]*Authority{e.a, node2}[i%2], "192.0.2.1", "wrong"); st != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, st)
		}
	}
	for _, a := range []*Authority{e.a, node2} {
		if st := ask(a, "192.0.2.1", secret); st != http.StatusTooManyRequests {
			t.Fatalf("right secret from the locked source: %d, want 429 on both nodes", st)
		}
		if st := ask(a, "192.0.2.2", secret); st != http.StatusOK {
			t.Fatalf("right secret from another source: %d", st)
		}
	}
	e.clk.Advance(lim.LockoutDuration)
	if st := ask(node2, "192.0.2.1", secret); st != http.StatusOK {
		t.Fatalf("after the lockout: %d", st)
	}
	stored, _ := e.dir.ServicePrincipal(ctx, e.tenant, sp.AppID)
	if len(stored.TokenFailures) != 0 {
		t.Fatalf("a success left stored failures: %+v", stored.TokenFailures)
	}
}

func TestStoredFailuresBounded(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	g := newTokenGuard(clk, TokenLimits{LockoutFailures: 2, LockoutWindow: time.Minute, LockoutDuration: time.Hour})
	sp := &ServicePrincipal{}
	g.storeFailure(sp, "10.0.0.1")
	g.storeFailure(sp, "10.0.0.1") // locked for an hour
	for i := range 3 * maxStoredSources {
		clk.Advance(time.Second)
		g.storeFailure(sp, fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	if len(sp.TokenFailures) > maxStoredSources {
		t.Fatalf("%d sources stored", len(sp.TokenFailures))
	}
	if g.storedLockedFor(sp, "10.0.0.1") == 0 {
		t.Fatal("unlocked entries evicted a lock")
	}
}
