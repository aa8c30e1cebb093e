package server

import (
	"fmt"
	"os"
	"path/filepath"

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
		cfg = t.Config()
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
