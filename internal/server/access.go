package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/api"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/mgmt"
	"github.com/keyward/keyward/internal/vault"
)

// accessState is the server's part of identity and access: the authorizer
// (authz.Engine), the management plane that maintains its index, and the
// listeners marked private.
type accessState struct {
	engine  *authz.Engine
	mgmt    *mgmt.Service
	handler *mgmt.Handler

	privateListener net.Listener
	privateHTTP     *http.Server
}

// accessRefreshEvery is how often every node rebuilds the authorization
// index from storage (the job JobAccessRefresh), so that changes made
// through another node (HA on PostgreSQL) are seen here; changes made
// through this node are seen at once.
const accessRefreshEvery = 5 * time.Second

// initAccess builds the authorizer and the management plane; called from
// Start before the API handler is made.
func (s *Server) initAccess(cfg Config) error {
	for _, p := range cfg.TrustedProxies {
		pr, err := authz.ParseIPRule(p)
		if err != nil {
			return fmt.Errorf("trusted proxy %q: %w", p, err)
		}
		s.apiCfg.TrustedProxies = append(s.apiCfg.TrustedProxies, pr)
	}
	s.access.engine = authz.NewEngine(s.clock)
	s.access.mgmt = mgmt.New(s.barrier, s.dir, s.vaults, s.access.engine, s.clock)
	s.access.mgmt.SetAuditSource(s.auditSource)
	if s.alerts != nil {
		s.access.mgmt.SetAlerts(s.alerts.Destinations(), s.alerts.SetExtra)
	}
	s.access.handler = mgmt.NewHandler(s.access.mgmt, s.auth, s.apiCfg.ManagementResource(), s.VaultURL, s.log)
	return nil
}

// Management is the management-plane service (for tests and the CLI).
func (s *Server) Management() *mgmt.Service { return s.access.mgmt }

// Authorizer is the authorization engine (for tests).
func (s *Server) Authorizer() *authz.Engine { return s.access.engine }

// startPrivate serves the same handler on the private listener, if one is
// configured: connections there are marked private, so vaults with
// publicNetworkAccess Disabled accept them (a self-hosted private
// endpoint: bind it to an interface only the private network reaches).
func (s *Server) startPrivate(tlsCfg *tls.Config) error {
	if s.cfg.PrivateListen == "" {
		return nil
	}
	l, err := net.Listen("tcp", s.cfg.PrivateListen)
	if err != nil {
		return fmt.Errorf("private listener: %w", err)
	}
	s.access.privateListener = l
	// net/http configures HTTP/2 in the TLS config: not shared.
	s.access.privateHTTP = NewHTTPServer(s.handler, tlsCfg.Clone(), slog.NewLogLogger(s.log.Handler(), slog.LevelDebug))
	s.access.privateHTTP.ConnContext = func(ctx context.Context, _ net.Conn) context.Context { return api.WithPrivateListener(ctx) }
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		if err := s.access.privateHTTP.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("private https server stopped", "error", err)
		}
	}()
	return nil
}

// PrivateAddr is the address of the private listener ("" if none).
func (s *Server) PrivateAddr() string {
	if s.access.privateListener == nil {
		return ""
	}
	return s.access.privateListener.Addr().String()
}

func (s *Server) closePrivate() error {
	if s.access.privateHTTP == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.access.privateHTTP.Shutdown(ctx)
}

// refreshAccess rebuilds the authorization index from storage.
func (s *Server) refreshAccess(ctx context.Context) error {
	if err := s.access.mgmt.Reload(ctx); err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Warn("refreshing the authorization index failed", "error", err)
	}
	return nil
}

// accessDue purges soft-deleted vaults whose retention has ended.
func (s *Server) accessDue(ctx context.Context) {
	if _, err := s.access.mgmt.PurgeDue(ctx); err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Error("purging deleted vaults failed", "error", err)
	}
}

// accessAfterUnseal makes sure the records authorization needs exist (a
// data directory made before the management plane gets its subscription,
// resource groups and administrator assignments) and builds the index.
func (s *Server) accessAfterUnseal(ctx context.Context, b *bootstrapRecord) error {
	m := s.access.mgmt
	if b.TenantID != "" {
		if _, err := m.CreateSubscription(ctx, b.TenantID, b.SubscriptionID, "Keyward"); err != nil {
			return err
		}
	}
	for _, v := range s.vaults.Vaults() {
		if err := s.ensureContainers(ctx, v.TenantID, v.SubscriptionID, v.ResourceGroup, v.Location); err != nil {
			return err
		}
	}
	if b.TenantID != "" {
		existing, err := m.Assignments(ctx, b.TenantID)
		if err != nil {
			return err
		}
		for _, oid := range b.AdminObjectIDs {
			has := false
			for _, a := range existing {
				has = has || strings.EqualFold(a.PrincipalID, oid)
			}
			if !has {
				if err := s.grantAdmin(ctx, b.TenantID, b.SubscriptionID, oid, true); err != nil {
					return err
				}
			}
		}
	}
	return m.Reload(ctx)
}

// ensureContainers creates the subscription and resource group a vault
// lives in, if missing.
func (s *Server) ensureContainers(ctx context.Context, tenant, sub, rg, location string) error {
	m := s.access.mgmt
	if _, err := m.Subscription(ctx, sub); err != nil {
		if _, err := m.CreateSubscription(ctx, tenant, sub, "Keyward"); err != nil {
			return err
		}
	}
	if _, err := m.ResourceGroup(ctx, sub, rg); err != nil {
		if _, _, err := m.PutResourceGroup(ctx, mgmt.ResourceGroup{SubscriptionID: sub, Name: rg, Location: location}); err != nil {
			return err
		}
	}
	return nil
}

// grantAdmin gives a tenant's administrator Key Vault Administrator (data)
// and Owner (management) on its subscription, and the Keyward Directory
// Administrator role at the tenant root; the first tenant's administrator
// also operates the instance (Keyward Operator).
func (s *Server) grantAdmin(ctx context.Context, tenant, sub, oid string, operator bool) error {
	m := s.access.mgmt
	subScope := authz.Scope{SubscriptionID: sub}.String()
	grants := []authz.Assignment{
		{Scope: subScope, RoleDefinitionID: authz.RoleKeyVaultAdministrator},
		{Scope: subScope, RoleDefinitionID: authz.RoleOwner},
		{Scope: "/", RoleDefinitionID: authz.RoleKeywardDirectoryAdmin},
		{Scope: "/", RoleDefinitionID: authz.RoleKeyManagementOfficer},
	}
	if operator {
		grants = append(grants, authz.Assignment{Scope: "/", RoleDefinitionID: authz.RoleKeywardOperator})
	}
	for _, g := range grants {
		g.TenantID, g.PrincipalID, g.PrincipalType, g.CreatedBy = tenant, oid, "ServicePrincipal", "keyward-bootstrap"
		if _, err := m.Assign(ctx, g); err != nil && !mgmt.IsConflict(err) {
			return err
		}
	}
	return nil
}

// createVaultRBAC creates a vault (and its subscription and resource
// group) in the RBAC permission model.
func (s *Server) createVaultRBAC(ctx context.Context, v vault.Vault) (*vault.Vault, error) {
	if err := s.ensureContainers(ctx, v.TenantID, v.SubscriptionID, v.ResourceGroup, v.Location); err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	return s.access.mgmt.CreateVault(ctx, v, mgmt.VaultProps{RBAC: true, CreatedBy: "keyward-bootstrap",
		CreatedByType: "Application", Created: now})
}

// parseTrusted validates trusted proxy entries (used by Config.Validate).
func parseTrusted(entries []string) error {
	for _, e := range entries {
		if _, err := netip.ParsePrefix(e); err != nil {
			if _, err := netip.ParseAddr(e); err != nil {
				return fmt.Errorf("trusted proxy %q is not an IP address or CIDR", e)
			}
		}
	}
	return nil
}
