package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/quorum"
)

// Audit sink removal (docs/QUORUM.md, "Audit sink removal under quorum"):
// the barrier keeps the identities of the [[audit.sink]] entries the
// instance ran with (the known sinks). An unseal that finds a known sink
// missing from the configuration is a removal: it is always audited
// (operation AuditSinkRemove), and when the operator tenant's quorum policy
// names AuditSinkRemove it must consume an approved request for exactly
// that sink, or the unseal is refused and Keyward stays sealed.

// knownSinksKey is the known-sinks record (system namespace).
const knownSinksKey = "audit/known-sinks"

type knownSinks struct {
	Sinks []string `json:"sinks"`
}

// SinkIdentity names a configured audit sink without anything secret in
// it: its type and where it writes. An HTTP sink is its URL's scheme, host
// (with port) and path: no user information, query or fragment, and never
// a header (a collector's token belongs in a header, not in the URL).
func SinkIdentity(c AuditSinkConfig) string {
	switch c.Type {
	case "stdout":
		return "stdout"
	case "syslog":
		return "syslog:" + strings.ToLower(strings.TrimSpace(c.Address))
	case "http":
		u, err := url.Parse(strings.TrimSpace(c.URL))
		if err != nil {
			return "http:(unparsable URL)"
		}
		return "http:" + strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.EscapedPath()
	}
	return c.Type
}

// configuredSinks are the identities of the [[audit.sink]] entries, sorted,
// without duplicates. The audit file is not one of them: it is always
// there.
func (s *Server) configuredSinks() []string {
	out := make([]string, 0, len(s.cfg.Audit.Sinks))
	for _, c := range s.cfg.Audit.Sinks {
		out = append(out, SinkIdentity(c))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// AuditSinkIdentities reports the known sinks (as the barrier records
// them; nil before the first unseal) and the configured ones (api's
// AuditSinkInventory).
func (s *Server) AuditSinkIdentities(ctx context.Context) (known, configured []string, err error) {
	var k knownSinks
	err = s.barrier.System().View(ctx, func(tx barrier.Tx) error {
		_, err := barrier.GetJSON(tx, knownSinksKey, &k)
		return err
	})
	return k.Sinks, s.configuredSinks(), err
}

// sinkRefusal reports whether err is an unseal refused for an unapproved
// audit sink removal.
func sinkRefusal(err error) bool {
	var qe *quorum.Error
	return errors.As(err, &qe) && qe.Reason == quorum.ReasonSinkRemovalNotApproved
}

// checkAuditSinks runs at every unseal, once the barrier is open and the
// operator tenant known, before the node serves from it. It compares the
// known sinks with the configured ones, in one transaction: each removal
// consumes its approval when the operator tenant's policy protects
// AuditSinkRemove (none: a quorum.Error with ReasonSinkRemovalNotApproved,
// nothing written) and is audited before the new known set commits (an
// audit sink that refuses the event refuses the unseal). Additions are
// never restricted; the first unseal only records the set.
func (s *Server) checkAuditSinks(ctx context.Context) error {
	configured := s.configuredSinks()
	tenant := s.OperatorTenant()
	pol, err := s.quorum.Match(ctx, "AuditSinkRemove", quorum.TenantScope(tenant))
	if err != nil {
		return err
	}
	var removed, added []string
	err = s.barrier.System().Update(ctx, func(tx barrier.Tx) error {
		removed, added = nil, nil
		var k knownSinks
		ok, err := barrier.GetJSON(tx, knownSinksKey, &k)
		if err != nil {
			return err
		}
		if !ok {
			return barrier.PutJSON(tx, knownSinksKey, &knownSinks{Sinks: configured})
		}
		for _, id := range k.Sinks {
			if !slices.Contains(configured, id) {
				removed = append(removed, id)
			}
		}
		for _, id := range configured {
			if !slices.Contains(k.Sinks, id) {
				added = append(added, id)
			}
		}
		if len(removed) == 0 && len(added) == 0 {
			return nil
		}
		now := s.clock.Now().UTC()
		approvals := make([]*quorum.Request, len(removed))
		if pol != nil {
			for i, id := range removed {
				r, err := quorum.ConsumeExecuted(tx, tenant, "AuditSinkRemove", quorum.SinkRemovalTarget(id), now)
				if err != nil {
					return err
				}
				if r == nil {
					return &quorum.Error{Kind: errs.Conflict, Reason: quorum.ReasonSinkRemovalNotApproved, Msg: fmt.Sprintf(
						"Unseal refused: audit sink '%s' is no longer configured, and the operator tenant's quorum policy protects AuditSinkRemove: "+
							"its removal needs an approved request, and none is unused. Keyward stays sealed. Put the sink back in the configuration, "+
							"restart and unseal, request its removal with POST /sys/audit/sinks/remove {\"sink\":\"%s\"} and have it approved "+
							"('keyward approval approve ID --tenant-level'); then remove it and unseal.", id, id)}
				}
				approvals[i] = r
			}
		}
		for i, id := range removed {
			ev := &audit.Event{Time: now, RequestID: uuid.NewString(), Service: "sys", Operation: "AuditSinkRemove",
				Method: "UNSEAL", Path: "/sys/unseal", Status: http.StatusOK, Result: audit.Allowed,
				Reason: "audit sink removed from the configuration: " + id, UserAgent: "keyward-unseal"}
			ev.Caller.TenantID = tenant
			if r := approvals[i]; r != nil {
				ev.CorrelationID = r.ID
				ev.Approval = &audit.Approval{ID: r.ID, Operation: r.Operation, Requester: r.Requester, Approvers: r.ApproverIDs(), Outcome: "consumed"}
				if r.BreakGlass != "" {
					ev.Approval.Outcome = "breakglass"
					ev.Reason = "BREAK-GLASS (quorum overridden by " + r.BreakGlass + "): " + ev.Reason
				}
			}
			if err := s.audit.Record(ctx, ev); err != nil {
				return fmt.Errorf("auditing the removal of audit sink %s: %w", id, err)
			}
		}
		return barrier.PutJSON(tx, knownSinksKey, &knownSinks{Sinks: configured})
	})
	if err != nil {
		if sinkRefusal(err) {
			s.log.Error("unseal refused: an audit sink was removed from the configuration without an approved removal; staying sealed",
				"sinks_removed", removed, "error", err)
		}
		return err
	}
	for _, id := range removed {
		s.log.Warn("audit sink removed from the configuration (audited)", "sink", id, "approval_required", pol != nil)
	}
	for _, id := range added {
		s.log.Info("audit sink added to the configuration", "sink", id)
	}
	return nil
}
