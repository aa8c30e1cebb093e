package server

import (
	"github.com/keyward/keyward/internal/console"
	"github.com/keyward/keyward/internal/identity"
)

// newConsole builds the web console (docs/CONSOLE.md). It is served on the
// authority's host at {authority}ui/ (dev.json ui_url) and calls the
// pipeline itself, as the signed-in user, for everything it shows.
func (s *Server) newConsole() *console.Console {
	c := console.New(console.Config{
		BaseURL:            s.apiCfg.AuthorityURL,
		ClientID:           identity.KeywardConsoleClientID,
		Authority:          s.apiCfg.AuthorityURL,
		Tenant:             s.OperatorTenant,
		VaultResource:      s.apiCfg.VaultResource(),
		ManagementResource: s.apiCfg.ManagementResource(),
		VaultURL:           s.VaultURL,
		PoolURL:            s.PoolURL,
		PoolResource:       s.apiCfg.ManagedHSMResource(),
		KeymgmtURL:         s.KeymgmtAddress(),
		Clock:              s.clock,
	})
	s.auth.RegisterRedirectURIs(identity.KeywardConsoleClientID, c.CallbackURL())
	return c
}

// UIURL is the web console's URL (dev.json ui_url).
func (s *Server) UIURL() string { return s.apiCfg.AuthorityURL + "ui/" }
