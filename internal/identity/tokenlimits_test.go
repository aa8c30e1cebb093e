package identity

import (
	"testing"
	"time"

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
