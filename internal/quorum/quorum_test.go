package quorum

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage/mem"
)

func newService(t *testing.T) (*Service, *clock.Fake) {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := barrier.New(mem.New())
	shares, err := b.Initialize(ctx, barrier.SealConfig{Type: "dev", Shares: 1, Threshold: 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	return New(b.System(), clk), clk
}

func reason(err error) string {
	if e, ok := err.(*Error); ok {
		return e.Reason
	}
	return ""
}

func submit(t *testing.T, s *Service, p *Policy) *Request {
	t.Helper()
	r := &Request{ID: NewID(), Vault: "v1", TenantID: "t", Requester: "REQ", Operation: "KeyPurge", Target: "keys/k",
		Replay: Replay{Method: "DELETE", Path: "/deletedkeys/k", RawQuery: "api-version=7.5"}}
	if err := s.Submit(context.Background(), p, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTwoOfThreeRunsOnceRefusesRequester(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	p := &Policy{Scope: VaultScope("V1"), Operations: []string{"KeyPurge"}, Approvers: []string{"A", "b", "c", "req"}, Required: 2}
	if err := s.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Match(ctx, "KeyPurge", VaultScope("v1"), TenantScope("t"))
	if err != nil || got == nil || got.Required != 2 || !slices.Equal(got.Approvers, []string{"a", "b", "c", "req"}) {
		t.Fatalf("Match = %+v, %v", got, err)
	}
	if m, _ := s.Match(ctx, "SecretPurge", VaultScope("v1")); m != nil {
		t.Fatal("SecretPurge is not protected by this policy")
	}
	if m, _ := s.Match(ctx, "QuorumPolicyDelete", VaultScope("v1")); m == nil {
		t.Fatal("a vault policy protects its own removal")
	}
	r := submit(t, s, got)
	if _, run, err := s.Decide(ctx, r.ID, "req", nil, true); reason(err) != ReasonSelfApproval || run || errs.KindOf(err) != errs.Forbidden {
		t.Fatalf("self approval: run=%v err=%v", run, err)
	}
	if _, _, err := s.Decide(ctx, r.ID, "stranger", nil, true); reason(err) != ReasonNotApprover {
		t.Fatalf("stranger: %v", err)
	}
	if _, run, err := s.Decide(ctx, r.ID, "a", nil, true); err != nil || run {
		t.Fatalf("first approval: run=%v err=%v", run, err)
	}
	if _, _, err := s.Decide(ctx, r.ID, "A", nil, true); reason(err) != ReasonVoted {
		t.Fatalf("second vote of a: %v", err)
	}
	// The last two approvers race: exactly one is told to run.
	var runs atomic.Int32
	var wg sync.WaitGroup
	for _, v := range []string{"b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, run, err := s.Decide(ctx, r.ID, v, nil, true); run {
				runs.Add(1)
			} else if reason(err) != ReasonNotPending {
				t.Errorf("loser %s: %v", v, err)
			}
		}()
	}
	wg.Wait()
	if runs.Load() != 1 {
		t.Fatalf("%d approvals were told to run, want exactly 1", runs.Load())
	}
	done, err := s.Finish(ctx, r.ID, 204, true)
	if err != nil || done.State != Executed || len(done.Approvals) != 2 {
		t.Fatalf("Finish = %+v, %v", done, err)
	}
	if _, err := s.Finish(ctx, r.ID, 204, true); reason(err) != ReasonNotPending {
		t.Fatalf("second Finish: %v", err)
	}
}

func TestRejectedAndExpiredNeverRun(t *testing.T) {
	s, clk := newService(t)
	ctx := context.Background()
	p := &Policy{Scope: VaultScope("v1"), Operations: []string{"KeyPurge"}, Group: "G1", Required: 1, TTLSeconds: 3600}
	if err := s.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	rej := submit(t, s, p)
	if r, run, err := s.Decide(ctx, rej.ID, "x", []string{"g1"}, false); err != nil || run || r.State != Rejected {
		t.Fatalf("reject: %+v %v %v", r, run, err)
	}
	if _, run, err := s.Decide(ctx, rej.ID, "y", []string{"G1"}, true); run || reason(err) != ReasonNotPending {
		t.Fatalf("approve after reject: run=%v %v", run, err)
	}
	exp := submit(t, s, p)
	clk.Advance(time.Hour)
	if r, _ := s.Get(ctx, exp.ID); r.Effective(clk.Now()) != Expired {
		t.Fatal("not expired at its expiry")
	}
	if _, run, err := s.Decide(ctx, exp.ID, "y", []string{"g1"}, true); run || reason(err) != ReasonExpired {
		t.Fatalf("approve after expiry: run=%v %v", run, err)
	}
	if r, _ := s.Get(ctx, exp.ID); r.Effective(clk.Now()) != Expired || len(r.Approvals) != 0 {
		t.Fatalf("expired request: %+v", r)
	}
	list, err := s.List(ctx, func(r *Request) bool { return r.Vault == "v1" })
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %d, %v", len(list), err)
	}
	if _, err := s.Get(ctx, "../x"); reason(err) != ReasonNotFound {
		t.Fatalf("bad id: %v", err)
	}
	if err := s.DeletePolicy(ctx, VaultScope("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePolicy(ctx, VaultScope("v1")); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPolicyValidation(t *testing.T) {
	for name, body := range map[string]string{
		"not json":       `{`,
		"no ops":         `{"approvers":["a"],"approvalsRequired":1}`,
		"unknown op":     `{"operations":["KeyGet"],"approvers":["a"],"approvalsRequired":1}`,
		"no approvers":   `{"operations":["KeyPurge"],"approvalsRequired":1}`,
		"unreachable":    `{"operations":["KeyPurge"],"approvers":["a","b"],"approvalsRequired":3}`,
		"zero":           `{"operations":["KeyPurge"],"approvers":["a"],"approvalsRequired":0}`,
		"bad id":         `{"operations":["KeyPurge"],"approvers":["a/b"],"approvalsRequired":1}`,
		"ttl too short":  `{"operations":["KeyPurge"],"approvers":["a"],"approvalsRequired":1,"expirySeconds":5}`,
		"dup approvers":  `{"operations":["KeyPurge"],"approvers":["a","A"],"approvalsRequired":2}`,
		"wrong type ops": `{"operations":"KeyPurge","approvers":["a"],"approvalsRequired":1}`,
	} {
		if _, err := ParsePolicy(VaultScope("v"), []byte(body)); errs.KindOf(err) != errs.BadParameter {
			t.Errorf("%s: %v, want BadParameter", name, err)
		}
	}
	if _, err := ParsePolicy("vault/../x", []byte(`{"operations":["KeyPurge"],"approvers":["a"],"approvalsRequired":1}`)); err == nil {
		t.Error("a bad scope was accepted")
	}
}

// FuzzParsePolicy: whatever the bytes, ParsePolicy either refuses them
// with a BadParameter error or returns a policy that is valid, canonical
// (validating it again changes nothing) and survives a JSON round trip.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"operations":["KeyPurge","SecretPurge"],"approvers":["a","b","c"],"approvalsRequired":2,"expirySeconds":3600}`))
	f.Add([]byte(`{"operations":["CertificatePurge"],"approverGroup":"G","approvalsRequired":5}`))
	f.Add([]byte(`{"operations":["KeyPurge","KeyPurge"],"approvers":["A","a"],"approvalsRequired":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParsePolicy(VaultScope("v"), raw)
		if err != nil {
			if p != nil || errs.KindOf(err) != errs.BadParameter {
				t.Fatalf("refusal: %v, %v", p, err)
			}
			return
		}
		if p.Required < 1 || (len(p.Approvers) == 0 && p.Group == "") || (p.Group == "" && p.Required > len(p.Approvers)) {
			t.Fatalf("accepted an unsatisfiable policy %+v", p)
		}
		for _, op := range p.Operations {
			if !Protectable(op) {
				t.Fatalf("accepted operation %q", op)
			}
		}
		again := *p
		again.Operations, again.Approvers = slices.Clone(p.Operations), slices.Clone(p.Approvers)
		if err := again.Validate(); err != nil || !slices.Equal(again.Operations, p.Operations) || !slices.Equal(again.Approvers, p.Approvers) || again.Group != p.Group {
			t.Fatalf("not canonical: %+v vs %+v (%v)", again, p, err)
		}
		rt, _ := json.Marshal(p)
		q, err := ParsePolicy(VaultScope("v"), rt)
		if err != nil || !slices.Equal(q.Operations, p.Operations) || !slices.Equal(q.Approvers, p.Approvers) || q.Required != p.Required || q.TTLSeconds != p.TTLSeconds || q.Group != p.Group {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", p, rt, q, err)
		}
	})
}

// A released key's answer is stored for the requester alone, delivered
// once, and expires ResultTTL after the run.
func TestResultDeliveredOnceToRequester(t *testing.T) {
	s, clk := newService(t)
	ctx := context.Background()
	p := &Policy{Scope: VaultScope("v1"), Operations: []string{"KeyRelease"}, Approvers: []string{"a"}, Required: 1}
	if err := s.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	run := func() *Request {
		r := &Request{ID: NewID(), Vault: "v1", TenantID: "t", Requester: "REQ", Operation: "KeyRelease", Target: "keys/k",
			Replay: Replay{Method: "POST", Path: "/keys/k/release", RawQuery: "api-version=7.5"}}
		if err := s.Submit(ctx, p, r); err != nil {
			t.Fatal(err)
		}
		if _, run, err := s.Decide(ctx, r.ID, "a", nil, true); err != nil || !run {
			t.Fatalf("Decide: %v %v", run, err)
		}
		done, err := s.FinishResult(ctx, r.ID, 200, true, &Result{Status: 200, ContentType: "application/json", Body: []byte(`{"value":"jws"}`)})
		if err != nil || done.Result != ResultAvailable {
			t.Fatalf("FinishResult: %+v %v", done, err)
		}
		return done
	}
	r := run()
	if _, err := s.TakeResult(ctx, r.ID, "a"); reason(err) != ReasonNotFound {
		t.Fatalf("approver takes the result: %v", err)
	}
	res, err := s.TakeResult(ctx, r.ID, "req")
	if err != nil || string(res.Body) != `{"value":"jws"}` || res.Status != 200 {
		t.Fatalf("requester takes the result: %+v %v", res, err)
	}
	if _, err := s.TakeResult(ctx, r.ID, "req"); reason(err) != ReasonNoResult {
		t.Fatalf("second take: %v", err)
	}
	if got, _ := s.Get(ctx, r.ID); got.Result != ResultDelivered {
		t.Fatalf("after delivery: %q", got.Result)
	}
	// Expiry: past ResultTTL the result is deleted, never shown.
	r = run()
	clk.Advance(ResultTTL)
	if got, _ := s.Get(ctx, r.ID); got.ResultState(clk.Now()) != ResultExpired {
		t.Fatalf("state past the TTL: %q", got.ResultState(clk.Now()))
	}
	if _, err := s.TakeResult(ctx, r.ID, "req"); reason(err) != ReasonNoResult {
		t.Fatalf("take past the TTL: %v", err)
	}
	err = s.view.View(ctx, func(tx barrier.Tx) error {
		ok, err := barrier.GetJSON(tx, resultPrefix+r.ID, new(Result))
		if ok {
			t.Error("an expired result is still stored")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A purge (no result kept) stores none even if given one.
	q := submit(t, s, &Policy{Scope: VaultScope("v1"), Operations: []string{"KeyPurge"}, Approvers: []string{"a"}, Required: 1})
	if _, _, err := s.Decide(ctx, q.ID, "a", nil, true); err != nil {
		t.Fatal(err)
	}
	if done, err := s.FinishResult(ctx, q.ID, 204, true, &Result{Body: []byte("x")}); err != nil || done.Result != "" {
		t.Fatalf("purge result: %+v %v", done, err)
	}
}

// TestSweep: the sweep writes a pending request past its expiry Expired
// and deletes a stored result past ResultTTL, calling record before each
// commit; a record error changes nothing; a second sweep finds nothing.
func TestSweep(t *testing.T) {
	s, clk := newService(t)
	ctx := context.Background()
	p := &Policy{Scope: VaultScope("v1"), Operations: []string{"KeyPurge", "KeyRelease"}, Approvers: []string{"a"}, Required: 1, TTLSeconds: 600}
	if err := s.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	pending := submit(t, s, p)
	rel := &Request{ID: NewID(), Vault: "v1", TenantID: "t", Requester: "req", Operation: "KeyRelease", Target: "keys/k",
		Replay: Replay{Method: "POST", Path: "/keys/k/release"}}
	if err := s.Submit(ctx, p, rel); err != nil {
		t.Fatal(err)
	}
	if _, run, err := s.Decide(ctx, rel.ID, "a", nil, true); err != nil || !run {
		t.Fatalf("decide: %v %v", run, err)
	}
	if _, err := s.FinishResult(ctx, rel.ID, 200, true, &Result{Status: 200, Body: []byte(`{"value":"x"}`)}); err != nil {
		t.Fatal(err)
	}
	var got []string
	record := func(r *Request, what string) error { got = append(got, r.ID+" "+what); return nil }
	// Nothing is due yet.
	if e, n, err := s.Sweep(ctx, record); err != nil || e != 0 || n != 0 || len(got) != 0 {
		t.Fatalf("early sweep: %d %d %v %v", e, n, err, got)
	}
	clk.Advance(11 * time.Minute)
	// A failing record rolls the expiry back.
	if _, _, err := s.Sweep(ctx, func(*Request, string) error { return errors.New("audit down") }); err == nil {
		t.Fatal("sweep with a failing record succeeded")
	}
	if r, _ := s.Get(ctx, pending.ID); r.State != Pending {
		t.Fatalf("state after a refused record: %s", r.State)
	}
	if e, n, err := s.Sweep(ctx, record); err != nil || e != 1 || n != 0 || !slices.Equal(got, []string{pending.ID + " " + SweptExpired}) {
		t.Fatalf("expiry sweep: %d %d %v %v", e, n, err, got)
	}
	if r, _ := s.Get(ctx, pending.ID); r.State != Expired || r.Finished.IsZero() {
		t.Fatalf("stored state after the sweep: %s", r.State)
	}
	if _, _, err := s.Decide(ctx, pending.ID, "a", nil, true); reason(err) != ReasonExpired {
		t.Fatalf("decide after the sweep: %v", err)
	}
	if ok, err := s.StoredResult(ctx, rel.ID); err != nil || !ok {
		t.Fatalf("result before its TTL: %v %v", ok, err)
	}
	clk.Advance(ResultTTL)
	got = nil
	if e, n, err := s.Sweep(ctx, record); err != nil || e != 0 || n != 1 || !slices.Equal(got, []string{rel.ID + " " + SweptResultExpired}) {
		t.Fatalf("result sweep: %d %d %v %v", e, n, err, got)
	}
	if ok, err := s.StoredResult(ctx, rel.ID); err != nil || ok {
		t.Fatalf("result after the sweep: %v %v", ok, err)
	}
	if r, _ := s.Get(ctx, rel.ID); r.Result != ResultExpired || r.State != Executed {
		t.Fatalf("request after the result sweep: %+v", r)
	}
	got = nil
	if e, n, err := s.Sweep(ctx, record); err != nil || e != 0 || n != 0 || len(got) != 0 {
		t.Fatalf("second sweep: %d %d %v %v", e, n, err, got)
	}
}

// TestRoleAssignmentCreateCoversPIM: a policy on RoleAssignmentCreate
// protects PIM's admin requests; one on them alone does not protect plain
// assignments; activation is never protectable.
func TestRoleAssignmentCreateCoversPIM(t *testing.T) {
	ra := &Policy{Scope: TenantScope("t"), Operations: []string{"RoleAssignmentCreate"}, Approvers: []string{"a"}, Required: 1}
	pim := &Policy{Scope: TenantScope("t"), Operations: []string{"RoleEligibilityRequest"}, Approvers: []string{"a"}, Required: 1}
	if !ra.Protects("RoleEligibilityRequest") || !ra.Protects("RoleAssignmentScheduleRequest") || ra.Protects("KeyPurge") {
		t.Fatal("RoleAssignmentCreate does not cover PIM's admin requests")
	}
	if pim.Protects("RoleAssignmentCreate") || pim.Protects("RoleAssignmentScheduleRequest") || !pim.Protects("RoleEligibilityRequest") {
		t.Fatal("a PIM-only policy protects more than it names")
	}
	if Protectable("RoleActivation") || Protectable("RoleEligibilityRemove") {
		t.Fatal("activation or removal is protectable")
	}
}

// An executed tenant-level request is a permission ConsumeExecuted uses
// once: only for its operation, target and tenant, only once Executed.
func TestConsumeExecutedOnce(t *testing.T) {
	s, clk := newService(t)
	ctx := context.Background()
	p := &Policy{Scope: TenantScope("t"), Operations: []string{"AuditSinkRemove"}, Approvers: []string{"a"}, Required: 1}
	if err := s.SetPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	target := SinkRemovalTarget("http:https://collector.example:8088/a")
	r := &Request{ID: NewID(), TenantID: "t", Requester: "req", Operation: "AuditSinkRemove", Target: target,
		Replay: Replay{Surface: "sys", Method: "POST", Path: "/sys/audit/sinks/remove"}}
	if err := s.Submit(ctx, p, r); err != nil {
		t.Fatal(err)
	}
	consume := func(tenant, target string) *Request {
		t.Helper()
		var got *Request
		err := s.view.Update(ctx, func(tx barrier.Tx) error {
			var err error
			got, err = ConsumeExecuted(tx, tenant, "AuditSinkRemove", target, clk.Now())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := consume("t", target); got != nil {
		t.Fatalf("a pending request was consumed: %+v", got)
	}
	if _, run, err := s.Decide(ctx, r.ID, "a", nil, true); err != nil || !run {
		t.Fatalf("approve: %v %v", run, err)
	}
	if _, err := s.Finish(ctx, r.ID, 200, true); err != nil {
		t.Fatal(err)
	}
	if got := consume("other", target); got != nil {
		t.Fatal("another tenant consumed it")
	}
	if got := consume("t", SinkRemovalTarget("stdout")); got != nil {
		t.Fatal("another sink's removal consumed it")
	}
	if got := consume("t", target); got == nil || got.ID != r.ID || got.Consumed.IsZero() {
		t.Fatalf("consume: %+v", got)
	}
	if got := consume("t", target); got != nil {
		t.Fatal("consumed twice")
	}
	if stored, err := s.Get(ctx, r.ID); err != nil || stored.Consumed.IsZero() || stored.State != Executed {
		t.Fatalf("stored: %+v %v", stored, err)
	}
	// A permission left unused past its lifetime is not one any more.
	late := &Request{ID: NewID(), TenantID: "t", Requester: "req", Operation: "AuditSinkRemove", Target: target,
		Replay: Replay{Surface: "sys", Method: "POST", Path: "/sys/audit/sinks/remove"}}
	if err := s.Submit(ctx, p, late); err != nil {
		t.Fatal(err)
	}
	if _, run, err := s.Decide(ctx, late.ID, "a", nil, true); err != nil || !run {
		t.Fatalf("approve: %v %v", run, err)
	}
	if _, err := s.Finish(ctx, late.ID, 200, true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(PermissionLifetime - time.Second)
	if got := consume("t", target); got == nil || got.ID != late.ID {
		t.Fatalf("a permission within its lifetime was not consumed: %+v", got)
	}
	old := &Request{ID: NewID(), TenantID: "t", Requester: "req", Operation: "AuditSinkRemove", Target: target,
		Replay: Replay{Surface: "sys", Method: "POST", Path: "/sys/audit/sinks/remove"}}
	if err := s.Submit(ctx, p, old); err != nil {
		t.Fatal(err)
	}
	if _, run, err := s.Decide(ctx, old.ID, "a", nil, true); err != nil || !run {
		t.Fatalf("approve: %v %v", run, err)
	}
	if _, err := s.Finish(ctx, old.ID, 200, true); err != nil {
		t.Fatal(err)
	}
	clk.Advance(PermissionLifetime)
	if got := consume("t", target); got != nil {
		t.Fatalf("a permission past its lifetime was consumed: %+v", got)
	}
}
