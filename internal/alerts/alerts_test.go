package alerts

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
)

type recorder struct {
	mu  sync.Mutex
	got []Alert
}

func (r *recorder) Deliver(_ context.Context, a *Alert) error {
	r.mu.Lock()
	r.got = append(r.got, *a)
	r.mu.Unlock()
	return nil
}

// TestThresholdWindowGroupCooldown: a rule fires when its threshold is
// reached within the window, per group, and not again within its cooldown.
func TestThresholdWindowGroupCooldown(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	rec := &recorder{}
	en := New(clk, nil, []Rule{{Name: "burst", Filter: Filter{Statuses: []int{401}, Operations: []string{"Secret*"}},
		Threshold: 3, Window: time.Minute, GroupBy: "ip", Cooldown: 10 * time.Minute}}, []Destination{{Name: "r", Deliverer: rec}})
	ev := func(ip string, status int, op string) {
		en.Observe(&audit.Event{Time: clk.Now(), Status: status, OperationName: op, Caller: audit.Caller{IP: ip}})
	}
	ev("1.1.1.1", 401, "SecretGet")
	ev("1.1.1.1", 401, "SecretGet")
	ev("1.1.1.1", 200, "SecretGet") // filtered out
	ev("1.1.1.1", 401, "KeyGet")    // filtered out
	clk.Advance(61 * time.Second)   // the first two leave the window
	ev("1.1.1.1", 401, "SecretList")
	ev("2.2.2.2", 401, "SecretGet")
	ev("1.1.1.1", 401, "SecretGet")
	if n := len(en.Recent()); n != 0 {
		t.Fatalf("fired %d times below the threshold", n)
	}
	ev("1.1.1.1", 401, "SecretGet") // third within the window
	if r := en.Recent(); len(r) != 1 || r[0].Group != "1.1.1.1" || r[0].Count != 3 {
		t.Fatalf("want one alert for 1.1.1.1 with 3 events: %+v", r)
	}
	for range 5 {
		ev("1.1.1.1", 401, "SecretGet") // cooling down
	}
	ev("2.2.2.2", 401, "SecretGet")
	ev("2.2.2.2", 401, "SecretGet") // another group fires on its own
	if r := en.Recent(); len(r) != 2 || r[1].Group != "2.2.2.2" {
		t.Fatalf("want a second alert for 2.2.2.2: %+v", r)
	}
	clk.Advance(11 * time.Minute)
	for range 3 {
		ev("1.1.1.1", 401, "SecretGet")
	}
	if len(en.Recent()) != 3 {
		t.Fatal("no alert after the cooldown")
	}
	en.Wait()
	if len(rec.got) != 3 {
		t.Fatalf("%d delivered, want 3", len(rec.got))
	}
}

func TestWebhookSignature(t *testing.T) {
	body := []byte(`{"rule":"x"}`)
	h := Sign([]byte("k"), body, 1700000000)
	if !VerifySignature([]byte("k"), body, h) || VerifySignature([]byte("k2"), body, h) || VerifySignature([]byte("k"), append(body, ' '), h) {
		t.Fatal("signature does not bind key and body")
	}
}
