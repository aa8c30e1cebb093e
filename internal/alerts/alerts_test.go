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

// TestSetExtraKeepsStateAndConfines: rules set at run time are confined to
// their tenant, keep their window and cooldown across a reload when their
// definition is unchanged, start afresh when it changed, and go away when
// left out; the rules given to New stay.
func TestSetExtraKeepsStateAndConfines(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	en := New(clk, nil, []Rule{{Name: "static", Filter: Filter{Operations: []string{"KeyGet"}}}}, nil)
	rule := Rule{Name: "/v1/r", Filter: Filter{Operations: []string{"SecretGet"}, Vaults: []string{"v1"}},
		Threshold: 2, Window: time.Minute, Cooldown: 10 * time.Minute, Tenant: "t1", Destinations: []string{"d"}}
	en.SetExtra([]Rule{rule})
	ev := func(tenant, vault, op string) {
		en.Observe(&audit.Event{Time: clk.Now(), OperationName: op, Vault: vault, Caller: audit.Caller{TenantID: tenant}})
	}
	count := func(name string) int {
		n := 0
		for _, a := range en.Recent() {
			if a.Rule == name {
				n++
			}
		}
		return n
	}
	ev("t2", "v1", "SecretGet") // another tenant: not counted
	ev("t1", "v2", "SecretGet") // another vault: not counted
	ev("t1", "v1", "SecretGet")
	en.SetExtra([]Rule{rule}) // unchanged: the one event stays in the window
	ev("t1", "v1", "SecretGet")
	if count("/v1/r") != 1 {
		t.Fatalf("want one alert after two events across a reload: %+v", en.Recent())
	}
	en.SetExtra([]Rule{rule}) // unchanged: the cooldown stays
	ev("t1", "v1", "SecretGet")
	ev("t1", "v1", "SecretGet")
	if count("/v1/r") != 1 {
		t.Fatalf("fired within its cooldown after a reload: %+v", en.Recent())
	}
	changed := rule
	changed.Threshold = 3
	en.SetExtra([]Rule{changed}) // changed: a fresh state, no cooldown
	for range 3 {
		ev("t1", "v1", "SecretGet")
	}
	if count("/v1/r") != 2 {
		t.Fatalf("a changed rule did not start afresh: %+v", en.Recent())
	}
	en.SetExtra(nil)
	clk.Advance(time.Hour)
	for range 3 {
		ev("t1", "v1", "SecretGet")
	}
	ev("t1", "v1", "KeyGet")
	if count("/v1/r") != 2 || count("static") != 1 || !en.Has("static") || en.Has("/v1/r") {
		t.Fatalf("after removal: %+v", en.Recent())
	}
}

// TestFirstTimeGroups: a first-time rule fires once per group (the
// built-in first-read: caller and object without its version), and a
// repeat, answered under the read lock, allocates nothing.
func TestFirstTimeGroups(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	en := New(clk, nil, Filtered(Builtin(), []string{"auth-failure-burst"}), nil)
	read := func(oid, id string) *audit.Event {
		return &audit.Event{Time: clk.Now(), Status: 200, OperationName: "SecretGet", Result: "allowed",
			ObjectID: id, Caller: audit.Caller{ObjectID: oid}}
	}
	a := read("alice", "https://v.vault.local/secrets/s/1")
	en.Observe(a)
	en.Observe(read("alice", "https://v.vault.local/secrets/s/2")) // another version: the same object
	en.Observe(read("bob", "https://v.vault.local/secrets/s/1"))
	en.Observe(read("alice", "https://v.vault.local/secrets/t"))
	r := en.Recent()
	if len(r) != 3 || r[0].Group != "alice https://v.vault.local/secrets/s" || r[1].Group != "bob https://v.vault.local/secrets/s" ||
		r[2].Group != "alice https://v.vault.local/secrets/t" {
		t.Fatalf("want one first-read per caller and object: %+v", r)
	}
	if n := testing.AllocsPerRun(100, func() { en.Observe(a) }); n != 0 {
		t.Fatalf("a repeated read: %v allocations", n)
	}
	if len(en.Recent()) != 3 {
		t.Fatal("a repeat fired")
	}
}

// TestPendingApprovalIsNotTheOperation: a seal that quorum approval
// diverted (202, approval outcome "pending") did not happen, so the
// built-in seal-change rule does not fire on it; it fires on the executed
// seal, and a rule may ask for pending requests by their own result.
func TestPendingApprovalIsNotTheOperation(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	var rules []Rule
	for _, r := range Builtin() {
		if r.Name == "seal-change" {
			rules = append(rules, r)
		}
	}
	if len(rules) != 1 {
		t.Fatal("no built-in seal-change rule")
	}
	rules = append(rules, Rule{Name: "seal-requested", Filter: Filter{Operations: []string{"Seal"}, Results: []string{"pending"}}})
	en := New(clk, nil, rules, nil)
	seal := func(outcome string, status int) {
		en.Observe(&audit.Event{Time: clk.Now(), Service: "sys", OperationName: "Seal", Operation: "Seal", Status: status,
			Result: audit.Allowed, Approval: &audit.Approval{ID: "q1", Operation: "Seal", Outcome: outcome}})
	}
	seal("pending", 202)
	if r := en.Recent(); len(r) != 1 || r[0].Rule != "seal-requested" {
		t.Fatalf("a pending seal: want only seal-requested, got %+v", r)
	}
	seal("executed", 204)
	if r := en.Recent(); len(r) != 2 || r[1].Rule != "seal-change" {
		t.Fatalf("an executed seal: want seal-change, got %+v", r)
	}
}

// TestSetExtraWhileObserving: the refresh job replaces the run-time rules
// while requests are being observed. Under -race this failed when New
// published a pointer to the engine's own rules field, which the first
// SetExtra assigned while Observe read it without the mutex (events that
// match no rule take no lock). It also checks that the rule given to New
// still matches afterwards.
func TestSetExtraWhileObserving(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	en := New(clk, nil, []Rule{{Name: "static", Filter: Filter{Operations: []string{"KeyGet"}}}}, nil)
	var wg sync.WaitGroup
	wg.Add(1)
	stop := make(chan struct{})
	observing := make(chan struct{}) // closed after the observer's first Observe
	go func() {
		defer wg.Done()
		<-observing // the replacements overlap the observer's reads
		for i := range 20 {
			en.SetExtra([]Rule{{Name: "/v1/r", Filter: Filter{Operations: []string{"SecretGet"}}, Threshold: 1000 + i}})
		}
		close(stop)
	}()
	observed := false
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		en.Observe(&audit.Event{Time: clk.Now(), OperationName: "SecretList"})
		if !observed {
			close(observing)
			observed = true
		}
	}
	wg.Wait()
	en.Observe(&audit.Event{Time: clk.Now(), OperationName: "KeyGet"})
	n := 0
	for _, a := range en.Recent() {
		if a.Rule == "static" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the rule given to New fired %d times for one KeyGet after the extra rules were replaced", n)
	}
}
