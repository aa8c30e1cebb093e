package server

import (
	"context"
	"errors"

	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/vault"
)

// TenantBootstrap is what BootstrapTenant created. ClientSecret is shown
// once: only its hash is stored.
type TenantBootstrap struct {
	TenantID     string
	ObjectID     string // the administrator service principal's object ID
	ClientID     string
	ClientSecret string
	Vault        string
	VaultURL     string
}

// BootstrapTenant creates a new tenant, a service principal with a client
// secret that administers the tenant, and a vault named vaultName in it.
//
// It exists for tests (a second tenant, to prove that tenants are kept
// apart) and for administrative bootstrap until the management plane can
// create tenants. The administrator holds Key Vault Administrator and
// Owner on the tenant's new subscription and Keyward Directory
// Administrator at its root (stored role assignments, see access.go); it
// does not operate the instance. The server must be unsealed.
func (s *Server) BootstrapTenant(ctx context.Context, displayName, vaultName string) (*TenantBootstrap, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.barrier.Sealed() {
		return nil, errors.New("server: sealed")
	}
	now := s.clock.Now()
	t, err := s.dir.CreateTenant(ctx, identity.Tenant{DisplayName: displayName, Created: now.UTC()})
	if err != nil {
		return nil, err
	}
	if err := s.barrier.Tenant(t.ID).EnsureKeyring(ctx, now); err != nil {
		return nil, err
	}
	sp, err := s.dir.CreateServicePrincipal(ctx, t.ID, displayName+"-admin", now)
	if err != nil {
		return nil, err
	}
	secret, err := s.dir.AddClientSecret(ctx, t.ID, sp.AppID, now, nil)
	if err != nil {
		return nil, err
	}
	subID := identity.NewID()
	if _, err := s.createVaultRBAC(ctx, vault.Vault{
		Name: vaultName, TenantID: t.ID, SubscriptionID: subID,
		ResourceGroup: "keyward", Location: "local", SKU: "standard",
	}); err != nil {
		return nil, err
	}
	if err := s.grantAdmin(ctx, t.ID, subID, sp.ObjectID, false); err != nil {
		return nil, err
	}
	return &TenantBootstrap{TenantID: t.ID, ObjectID: sp.ObjectID, ClientID: sp.AppID, ClientSecret: secret,
		Vault: vaultName, VaultURL: s.VaultURL(vaultName)}, nil
}

// TestOnlySignToken signs claims with the authority's current signing key
// (identity.Authority.TestOnlySign): attack tests forge tokens with it.
func (s *Server) TestOnlySignToken(claims, header map[string]any) (string, error) {
	return s.auth.TestOnlySign(claims, header)
}
