package server

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keymgmt"
	"github.com/keyward/keyward/internal/keymgmtapi"
	"github.com/keyward/keyward/internal/kmsprovider/awskms"
	"github.com/keyward/keyward/internal/kmsprovider/azurekeyvault"
)

// JobKeyMgmt reconciles every key distribution with its target (missing,
// disabled, deleted out of band, wrong version), repairs what it may and
// records the outcome on the distribution. Leader only, every
// Config.SchedulerInterval (default a minute); a failing target is retried
// with backoff (keymgmt.Backoff).
const JobKeyMgmt = "keymgmt-reconcile"

// initKeyMgmt builds the Key Management engine and its surface.
func (s *Server) initKeyMgmt() *keymgmtapi.Surface {
	s.keymgmt = keymgmt.New(s.barrier.System(), s.clock, s.log, map[string]keymgmt.Factory{
		azurekeyvault.Name: azurekeyvault.New,
		awskms.Name:        awskms.New,
	})
	return keymgmtapi.New(s.keymgmt, s.access.engine, s.log)
}

// KeyMgmt is the Key Management engine (for tests and the CLI).
func (s *Server) KeyMgmt() *keymgmt.Service { return s.keymgmt }

// KeymgmtAddress is the base URL Vault's clients use (VAULT_ADDR): the
// token service host in dev mode (https://localhost:port, which every
// resolver knows), the management host otherwise.
func (s *Server) KeymgmtAddress() string {
	if s.cfg.Dev {
		return strings.TrimSuffix(s.apiCfg.AuthorityURL, "/")
	}
	return strings.TrimSuffix(s.apiCfg.ManagementResource(), "/")
}

func (s *Server) reconcileKeyMgmt(ctx context.Context) error {
	rep, err := s.keymgmt.Reconcile(ctx)
	if err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Error("keymgmt reconciliation failed", "error", err)
		return nil
	}
	if len(rep.Repaired) == 0 && len(rep.Failed) == 0 {
		return nil
	}
	var lines []string
	// One audit event per repaired or failing distribution (the alert
	// rules see them): operation KeyMgmtReconcile, the distribution as
	// object, a fixed reason; the detail goes to the log only.
	seen := map[string]bool{}
	for _, set := range []struct {
		items  []keymgmt.Item
		result audit.Result
		reason string
	}{{rep.Repaired, audit.Allowed, "repaired"}, {rep.Failed, audit.Failed, "target failed"}} {
		for _, it := range set.items {
			lines = append(lines, it.String())
			id := "kms/" + it.KMS + "/key/" + it.Key
			if seen[id+set.reason] {
				continue
			}
			seen[id+set.reason] = true
			ev := &audit.Event{Time: s.clock.Now().UTC(), RequestID: uuid.NewString(), Service: "keymgmt",
				Operation: "KeyMgmtReconcile", ObjectID: id, Method: "JOB", Path: "/v1/keymgmt/" + id,
				Status: 200, Result: set.result, Reason: set.reason}
			ev.Caller.TenantID = it.Tenant
			if set.result == audit.Failed {
				ev.Status, ev.ErrorCode = 502, "502"
			}
			if err := s.audit.Record(ctx, ev); err != nil {
				s.log.Error("keymgmt reconciliation: audit event refused", "error", err)
			}
		}
	}
	s.log.Warn("keymgmt reconciliation", "report", rep.String(), "items", strings.Join(lines, "; "))
	return nil
}
