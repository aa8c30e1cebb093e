package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyward/keyward/internal/api"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/hsm"
)

// openHSM opens the configured PKCS#11 token, or in dev mode the dev
// server's own SoftHSM2 token (DESIGN.md, dev server contract). A dev
// server whose token cannot be made starts without HSM and says why.
func (s *Server) openHSM() error {
	cfg := s.cfg.HSM
	if cfg.Module == "" {
		if !s.cfg.Dev || s.cfg.DevHSMModule == "" {
			if s.cfg.Dev {
				s.hsmNote = "no HSM: install SoftHSM2 (apt-get install softhsm2) or pass --hsm-module PATH for RSA-HSM/EC-HSM keys in a premium vault"
			}
			return nil
		}
		if _, err := os.Stat(s.cfg.DevHSMModule); err != nil {
			s.hsmNote = fmt.Sprintf("no HSM: %s not found; install SoftHSM2 (apt-get install softhsm2) or pass --hsm-module PATH", s.cfg.DevHSMModule)
			return nil
		}
		t, err := hsm.EnsureSoftToken(s.cfg.DevHSMModule, filepath.Join(s.cfg.DataDir, "hsm"))
		if err != nil {
			s.hsmNote = "no HSM: " + err.Error()
			s.log.Warn("dev server: no SoftHSM2 token; HSM keys are off", "error", err)
			return nil
		}
		s.devToken = &t
		sessions := cfg.Sessions // hsm.sessions applies to the dev token too
		cfg = t.Config()
		cfg.Sessions = sessions
	}
	h, err := hsm.Open(cfg)
	if err != nil {
		if s.devToken != nil {
			s.devToken = nil
			s.hsmNote = "no HSM: " + err.Error()
			s.log.Warn("dev server: cannot open the SoftHSM2 token; HSM keys are off", "error", err)
			return nil
		}
		return err
	}
	s.hsm = h
	s.log.Info("HSM token open", "token", h.TokenLabel(), "serial", h.TokenSerial(), "platform", h.Platform(),
		"oaep_sha256_in_token", h.SupportsOAEP256())
	return nil
}

// HSMNote is why a dev server has no HSM ("" when it has one).
func (s *Server) HSMNote() string { return s.hsmNote }

// sealWrapper gives the barrier the HSM's seal key (made on first use).
func (s *Server) sealWrapper(ctx context.Context) error {
	if s.hsm == nil {
		return barrier.ErrNoWrapper
	}
	k, err := s.hsm.SealKey(ctx, hsm.SealKeyID)
	if err != nil {
		return err
	}
	s.barrier.SetWrapper(k)
	return nil
}

// hsmAutoUnseal unseals a pkcs11 barrier at start with its HSM.
func (s *Server) hsmAutoUnseal(ctx context.Context) error {
	st, err := s.barrier.Status(ctx)
	if err != nil || !st.Initialized || st.Type != barrier.SealPKCS11 {
		return err
	}
	if err := s.sealWrapper(ctx); err != nil {
		return fmt.Errorf("pkcs11 seal: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.barrier.UnsealWithHSM(ctx); err != nil {
		return fmt.Errorf("pkcs11 seal: %w", err)
	}
	if err := s.afterUnseal(ctx); err != nil {
		s.sealLocked()
		return err
	}
	if err := s.checkAuditSinks(ctx); err != nil {
		s.sealLocked()
		if sinkRefusal(err) {
			return nil // logged; the node starts sealed
		}
		return err
	}
	s.log.Info("unsealed by the HSM", "token", s.hsm.TokenLabel())
	return nil
}

// initPKCS11 initializes a pkcs11-sealed Keyward (under s.mu): the HSM
// wraps the root key, the node stays unsealed, and the shares returned
// are recovery shares.
func (s *Server) initPKCS11(ctx context.Context, shares, threshold int) (*api.InitResult, error) {
	if err := s.sealWrapper(ctx); err != nil {
		return nil, err
	}
	keys, err := s.barrier.Initialize(ctx, barrier.SealConfig{Type: barrier.SealPKCS11, Shares: shares, Threshold: threshold}, s.clock.Now())
	if err != nil {
		return nil, err
	}
	if _, err := s.barrier.UnsealWithHSM(ctx); err != nil {
		return nil, err
	}
	b, secret, err := s.bootstrap(ctx, "default")
	if err != nil {
		s.sealLocked()
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.afterUnseal(ctx); err != nil {
		s.sealLocked()
		return nil, err
	}
	if err := s.checkAuditSinks(ctx); err != nil { // a new instance: records its sinks
		s.sealLocked()
		return nil, err
	}
	return &api.InitResult{Shares: keys, Threshold: threshold, TenantID: b.TenantID, ClientID: b.AdminAppID,
		ClientSecret: secret, Vault: b.Vault, Subscription: b.SubscriptionID, ResourceGroup: b.ResourceGroup}, nil
}

// MigrateSeal moves the (unsealed) barrier between the shamir and pkcs11
// seals (keyward operator seal-migrate); the root key stays, so nothing
// is re-encrypted and the node keeps serving.
func (s *Server) MigrateSeal(ctx context.Context, to string, shares [][]byte) (barrier.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.sealWrapper(ctx); err != nil {
		return barrier.Status{}, err
	}
	st, err := s.barrier.MigrateSeal(ctx, to, shares, s.clock.Now())
	if err == nil {
		s.log.Info("seal migrated", "to", to)
	}
	return st, err
}

// VerifyShares checks unseal (or recovery) shares without using them
// (api.ShareVerifier: quorum break-glass).
func (s *Server) VerifyShares(ctx context.Context, shares [][]byte) error {
	return s.barrier.VerifyShares(ctx, shares)
}
