package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/quorum"
	"github.com/keyward/keyward/internal/server"
)

// TestQuorumApprovalRetention: the sweep job, on the injected clock,
// deletes an approval request quorum.Retention after it reached a final
// state (audited ApprovalDelete, outcome deleted); a request that finished
// later is kept, and the deleted one then reads 404 ApprovalNotFound.
func TestQuorumApprovalRetention(t *testing.T) {
	clk := clock.NewFake(time.Now())
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	ctx := context.Background()
	a := newSP(t, e, "retention-approver")
	vaultURL := strings.TrimSuffix(e.Info.VaultURL, "/")
	// Fresh credentials for every call: tokens issued before an advance
	// have expired on the server's clock.
	call := func(method, path, body string) httpResult {
		admin := e.CredentialFor(e.Info.TenantID, e.Info.ClientID, e.Info.ClientSecret)
		return do(t, e, method, vaultURL+path+"?api-version=7.5", vaultTokenFor(t, e, admin), "application/json", body)
	}
	pol := `{"operations":["SecretPurge"],"approvers":["` + a.ObjectID + `"],"approvalsRequired":1,"expirySeconds":120}`
	if r := call(http.MethodPut, "/quorumpolicy", pol); r.Status != http.StatusOK {
		t.Fatalf("set policy: %d %s", r.Status, r.Body)
	}
	// pendingPurge deletes secret name and asks to purge it: an approval
	// request that nobody decides.
	pendingPurge := func(name string) string {
		t.Helper()
		if r := call(http.MethodPut, "/secrets/"+name, `{"value":"v"}`); r.Status != http.StatusOK {
			t.Fatalf("set %s: %d %s", name, r.Status, r.Body)
		}
		if r := call(http.MethodDelete, "/secrets/"+name, ""); r.Status != http.StatusOK {
			t.Fatalf("delete %s: %d %s", name, r.Status, r.Body)
		}
		r := call(http.MethodDelete, "/deletedsecrets/"+name, "")
		var out struct{ Approval struct{ ID string } }
		if r.Status != http.StatusAccepted || json.Unmarshal([]byte(r.Body), &out) != nil || out.Approval.ID == "" {
			t.Fatalf("purge %s: %d %s", name, r.Status, r.Body)
		}
		return out.Approval.ID
	}
	advance := func(d time.Duration) {
		t.Helper()
		since := clk.Now().Add(time.Second) // a run the advance triggers, not an earlier one
		clk.Advance(d)
		if err := e.Server.Jobs().WaitRunSince(ctx, server.JobQuorumSweep, since); err != nil {
			t.Fatal(err)
		}
	}
	q := e.Server.Quorum()
	state := func(id string) quorum.State {
		t.Helper()
		r, err := q.Get(ctx, id)
		if err != nil {
			t.Fatalf("request %s: %v", id, err)
		}
		return r.State
	}

	old := pendingPurge("retention-old")
	advance(3 * time.Minute) // the sweep writes it Expired: its final state
	if st := state(old); st != quorum.Expired {
		t.Fatalf("old request after its expiry: %s", st)
	}
	advance(quorum.Retention - time.Hour)
	if st := state(old); st != quorum.Expired {
		t.Fatalf("old request before the retention period: %s", st)
	}
	fresh := pendingPurge("retention-fresh")
	advance(3 * time.Minute)
	advance(2 * time.Hour) // old: past the retention period; fresh: two hours old
	if _, err := q.Get(ctx, old); err == nil {
		t.Fatal("the sweep kept a request past the retention period")
	}
	if st := state(fresh); st != quorum.Expired {
		t.Fatalf("fresh request: %s", st)
	}
	ev := findAudit(t, e, "the sweep's deletion", func(ev audit.Event) bool {
		return ev.Operation == "ApprovalDelete" && ev.Approval != nil && ev.Approval.ID == old
	})
	if ev.Method != "JOB" || ev.Approval.Outcome != quorum.SweptDeleted || ev.Approval.Operation != "SecretPurge" || ev.Service != "vault" {
		t.Fatalf("deletion event: %+v %+v", ev, ev.Approval)
	}
	if r := call(http.MethodGet, "/approvals/"+old, ""); r.Status != http.StatusNotFound || !strings.Contains(r.Body, "ApprovalNotFound") {
		t.Fatalf("deleted request: %d %s", r.Status, r.Body)
	}
	if r := call(http.MethodGet, "/approvals/"+fresh, ""); r.Status != http.StatusOK || !strings.Contains(r.Body, "Expired") {
		t.Fatalf("fresh request: %d %s", r.Status, r.Body)
	}
}

// TestQuorumRetentionSetting: [quorum] retention reaches the running
// server's sweep (the job's behaviour at a retention is TestPrune's and
// TestQuorumApprovalRetention's).
func TestQuorumRetentionSetting(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{QuorumRetention: 30 * 24 * time.Hour})
	if got := e.Server.Quorum().RetentionPeriod(); got != 30*24*time.Hour {
		t.Fatalf("retention %v, want 720h from the configuration", got)
	}
	d := kwtest.Start(t, kwtest.Options{})
	if got := d.Server.Quorum().RetentionPeriod(); got != quorum.Retention {
		t.Fatalf("default retention %v, want %v", got, quorum.Retention)
	}
}
