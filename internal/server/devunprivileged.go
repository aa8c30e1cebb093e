package server

import (
	"context"
	"fmt"
)

// ensureUnprivileged gives the dev server a second service principal that
// holds no role assignment at all, so that users can see a denial (403
// ForbiddenByRbac naming the missing action) with the official clients.
// Its credentials are kept with the dev credentials and written to
// dev.json. Data directories made before it existed get one on restart.
func (s *Server) ensureUnprivileged(ctx context.Context, b *bootstrapRecord, creds *devCreds) error {
	if err := getRecord(ctx, s.barrier.System(), devCredsKey, creds); err != nil {
		return fmt.Errorf("reading dev credentials: %w", err)
	}
	if creds.UnprivilegedClientID != "" {
		if _, err := s.dir.ServicePrincipal(ctx, b.TenantID, creds.UnprivilegedClientID); err == nil {
			return nil
		}
	}
	now := s.clock.Now()
	sp, err := s.dir.CreateServicePrincipal(ctx, b.TenantID, "keyward-dev-unprivileged", now)
	if err != nil {
		return err
	}
	secret, err := s.dir.AddClientSecret(ctx, b.TenantID, sp.AppID, now, nil)
	if err != nil {
		return err
	}
	creds.UnprivilegedClientID, creds.UnprivilegedObjectID, creds.UnprivilegedClientSecret = sp.AppID, sp.ObjectID, secret
	if err := putRecord(ctx, s.barrier.System(), devCredsKey, creds); err != nil {
		return err
	}
	return s.access.mgmt.Reload(ctx)
}

func firstAdmin(b *bootstrapRecord) string {
	if len(b.AdminObjectIDs) == 0 {
		return ""
	}
	return b.AdminObjectIDs[0]
}
