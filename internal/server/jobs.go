package server

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
)

// The background jobs (internal/jobs), by name for Jobs().RunOnce and
// WaitRunSince.
const (
	// JobDue performs due work: purge after retention, rotation, expiry
	// notifications, certificate lifetime actions, event delivery and the
	// purge of deleted vaults. Only the leader runs it: with bbolt the one
	// process is always leader; with PostgreSQL the node holding an
	// advisory lock is (see postgres.Leader). Every Config.SchedulerInterval
	// (default a minute).
	JobDue = "due"
	// JobRefresh reloads the vault registry from the database, so a
	// change made through another node is seen here within a second.
	// Every node runs it.
	JobRefresh = "refresh"
	// JobAccessRefresh rebuilds the authorization index from the database
	// every accessRefreshEvery, on every node, for the same reason.
	JobAccessRefresh = "access-refresh"
)

// newJobs returns the server's job runner, on the server's clock.
func (s *Server) newJobs() *jobs.Runner {
	cfg := jobs.Config{Clock: s.clock, Log: s.log, Ready: func() bool { return !s.barrier.Sealed() }}
	if s.leader != nil {
		cfg.Leader = s.leader
	}
	return jobs.New(cfg,
		jobs.Job{Name: JobRefresh, Every: time.Second, Run: s.refresh},
		jobs.Job{Name: JobAccessRefresh, Every: accessRefreshEvery, Run: s.refreshAccess},
		jobs.Job{Name: JobDue, Every: cmp.Or(s.cfg.SchedulerInterval, time.Minute), LeaderOnly: true, Run: s.runDue},
		jobs.Job{Name: JobAuditCheckpoint, Every: cmp.Or(s.cfg.Audit.CheckpointInterval, time.Minute), Run: s.auditCheckpoint},
		jobs.Job{Name: JobKeyMgmt, Every: cmp.Or(s.cfg.SchedulerInterval, time.Minute), LeaderOnly: true, Run: s.reconcileKeyMgmt},
		jobs.Job{Name: JobQuorumSweep, Every: cmp.Or(s.cfg.SchedulerInterval, time.Minute), LeaderOnly: true, Run: s.sweepQuorum},
		jobs.Job{Name: JobExpiryAlerts, Every: cmp.Or(s.cfg.SchedulerInterval, time.Minute), LeaderOnly: true, Run: s.expiryAlerts},
		jobs.Job{Name: JobAuditAlerts, Every: cmp.Or(s.cfg.Alerts.SinkCheckEvery, 30*time.Second), Run: s.auditAlerts})
}

// Jobs is the background job runner (tests wait on it).
func (s *Server) Jobs() *jobs.Runner { return s.jobs }

func (s *Server) refresh(ctx context.Context) error {
	if err := s.vaults.Load(ctx); err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Warn("refreshing the vault registry failed", "error", err)
	}
	if err := s.access.mgmt.ReloadAlertRules(ctx); err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Warn("reloading the alert rules failed", "error", err)
	}
	return nil
}

// runDue runs every due background job once.
func (s *Server) runDue(ctx context.Context) error {
	if err := s.vaults.RunDue(ctx, s.certificates.RunDue); err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Error("background job failed", "error", err)
	}
	if _, err := s.vaults.DeliverDue(ctx, s.webhook); err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Error("event delivery failed", "error", err)
	}
	s.accessDue(ctx)
	return nil
}
