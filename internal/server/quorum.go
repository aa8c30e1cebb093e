package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/quorum"
)

// JobQuorumSweep expires pending approval requests past their expiry,
// deletes stored results (a released key, a security domain) past
// quorum.ResultTTL and deletes requests in a final state past
// quorum.Retention (docs/QUORUM.md). Leader only, every SchedulerInterval
// (default a minute).
const JobQuorumSweep = "quorum-sweep"

// Quorum is the approval request store (tests inspect it).
func (s *Server) Quorum() *quorum.Service { return s.quorum }

// sweepQuorum is JobQuorumSweep. Each change is audited before it commits
// (operation ApprovalExpire, ApprovalResultExpire or ApprovalDelete,
// method JOB, the request's approval object with outcome expired,
// result-expired or deleted); an audit sink that refuses the event leaves
// the request as it was.
func (s *Server) sweepQuorum(ctx context.Context) error {
	record := func(r *quorum.Request, what string) error {
		op, path := "ApprovalExpire", "/approvals/"+r.ID
		switch what {
		case quorum.SweptResultExpired:
			op, path = "ApprovalResultExpire", "/approvals/"+r.ID+"/result"
		case quorum.SweptDeleted:
			op = "ApprovalDelete"
		}
		service := "vault"
		switch {
		case r.Pool != "":
			service = "managedhsm"
		case r.Vault == "":
			service, path = "management", "/providers/Keyward.Quorum"+path
		}
		ev := &audit.Event{Time: s.clock.Now().UTC(), RequestID: uuid.NewString(), Service: service, Vault: r.Vault + r.Pool,
			Operation: op, Method: "JOB", Path: path, Status: http.StatusOK, Result: audit.Allowed, Reason: what,
			CorrelationID: r.ID, UserAgent: "keyward-quorum",
			Approval: &audit.Approval{ID: r.ID, Operation: r.Operation, Requester: r.Requester, Approvers: r.ApproverIDs(), Outcome: what}}
		ev.Caller.TenantID = r.TenantID
		return s.audit.Record(ctx, ev)
	}
	n, m, err := s.quorum.Sweep(ctx, record)
	d := 0
	if err == nil {
		d, err = s.quorum.Prune(ctx, record)
	}
	if err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Error("quorum sweep failed", "error", err)
	}
	if n+m+d > 0 {
		s.log.Info("quorum sweep", "expired", n, "results_deleted", m, "requests_deleted", d)
	}
	return nil
}
