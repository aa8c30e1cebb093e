package quorum

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestPrune: requests in a final state are deleted once they finished more
// than the retention period ago, each recorded before it commits; pending
// and executing requests, fresh ones and an executed AuditSinkRemove
// permission that can still be used are kept.
func TestPrune(t *testing.T) {
	s, clk := newService(t)
	ctx := context.Background()
	p := &Policy{Scope: VaultScope("v1"), Operations: []string{"KeyPurge"}, Approvers: []string{"a"}, Required: 1, TTLSeconds: 600}
	tp := &Policy{Scope: TenantScope("t"), Operations: []string{"AuditSinkRemove"}, Approvers: []string{"a"}, Required: 1}
	for _, pol := range []*Policy{p, tp} {
		if err := s.SetPolicy(ctx, pol); err != nil {
			t.Fatal(err)
		}
	}
	decide := func(r *Request, approve bool) {
		t.Helper()
		if _, _, err := s.Decide(ctx, r.ID, "a", nil, approve); err != nil {
			t.Fatal(err)
		}
	}
	rejected := submit(t, s, p)
	decide(rejected, false)
	executed := submit(t, s, p)
	decide(executed, true)
	if _, err := s.Finish(ctx, executed.ID, 204, true); err != nil {
		t.Fatal(err)
	}
	failed := submit(t, s, p)
	decide(failed, true)
	if _, err := s.Finish(ctx, failed.ID, 403, false); err != nil {
		t.Fatal(err)
	}
	executing := submit(t, s, p) // approved, its node died: never finished
	decide(executing, true)
	perm := &Request{ID: NewID(), TenantID: "t", Requester: "req", Operation: "AuditSinkRemove", Target: SinkRemovalTarget("stdout"),
		Replay: Replay{Surface: "sys", Method: "POST", Path: "/sys/audit/sinks/remove"}}
	if err := s.Submit(ctx, tp, perm); err != nil {
		t.Fatal(err)
	}
	decide(perm, true)
	if _, err := s.Finish(ctx, perm.ID, 200, true); err != nil {
		t.Fatal(err)
	}
	expired := submit(t, s, p)
	clk.Advance(11 * time.Minute)
	if e, _, err := s.Sweep(ctx, func(*Request, string) error { return nil }); err != nil || e != 1 {
		t.Fatalf("expiry sweep: %d %v", e, err)
	}

	var got []string
	record := func(r *Request, what string) error { got = append(got, r.ID+" "+what); return nil }
	exists := func(r *Request) bool {
		t.Helper()
		_, err := s.Get(ctx, r.ID)
		if err != nil && reason(err) != ReasonNotFound {
			t.Fatal(err)
		}
		return err == nil
	}

	// A retention shorter than a permission's lifetime (SetRetention).
	s.SetRetention(time.Hour)
	if n, err := s.Prune(ctx, record); err != nil || n != 0 || len(got) != 0 {
		t.Fatalf("early prune: %d %v %v", n, err, got)
	}
	clk.Advance(2 * time.Hour)
	// A failing record keeps the request.
	if _, err := s.Prune(ctx, func(*Request, string) error { return errors.New("audit down") }); err == nil {
		t.Fatal("prune with a failing record succeeded")
	}
	if !exists(rejected) || !exists(executed) || !exists(failed) || !exists(expired) {
		t.Fatal("a request was deleted although its record failed")
	}
	fresh := submit(t, s, p)
	decide(fresh, false)
	n, err := s.Prune(ctx, record)
	want := []string{rejected.ID + " " + SweptDeleted, executed.ID + " " + SweptDeleted, failed.ID + " " + SweptDeleted, expired.ID + " " + SweptDeleted}
	slices.Sort(want)
	slices.Sort(got)
	if err != nil || n != 4 || !slices.Equal(got, want) {
		t.Fatalf("prune: %d %v\n got %v\nwant %v", n, err, got, want)
	}
	for _, r := range []*Request{rejected, executed, failed, expired} {
		if exists(r) {
			t.Fatalf("request %s (%s) was not deleted", r.ID, r.Operation)
		}
	}
	if !exists(fresh) || !exists(executing) || !exists(perm) {
		t.Fatal("a fresh request, an executing one or a usable permission was deleted")
	}
	// Past the permission's lifetime it is not one any more.
	clk.Advance(PermissionLifetime)
	got = nil
	if n, err := s.Prune(ctx, record); err != nil || n != 2 || exists(perm) || exists(fresh) || !exists(executing) {
		t.Fatalf("prune after the permission's lifetime: %d %v %v", n, err, got)
	}
	if n, err := s.Prune(ctx, record); err != nil || n != 0 {
		t.Fatalf("second prune: %d %v", n, err)
	}

	// The default: Retention after the request finished.
	s.SetRetention(0)
	old := submit(t, s, p)
	decide(old, false)
	clk.Advance(Retention - time.Minute)
	if n, err := s.Prune(ctx, record); err != nil || n != 0 || !exists(old) {
		t.Fatalf("prune before Retention: %d %v", n, err)
	}
	clk.Advance(2 * time.Minute)
	if n, err := s.Prune(ctx, record); err != nil || n != 1 || exists(old) {
		t.Fatalf("prune after Retention: %d %v", n, err)
	}
}
