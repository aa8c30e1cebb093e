package api

import (
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/keymgmtapi"
)

// serveKeyMgmt is the pipeline's authentication step for the Key
// Management engine (Vault's keymgmt API, internal/keymgmtapi): a Keyward
// access token for the management resource, sent as Authorization: Bearer
// or as X-Vault-Token (how Vault's CLI and Go client send it). The surface
// words a failure, routes, authorizes at the caller's tenant and handles.
func (h *Handler) serveKeyMgmt(w http.ResponseWriter, r *http.Request) {
	if h.seal.Sealed() { // the seal gate, worded as Vault words it
		h.keymgmt.Sealed(w, r)
		return
	}
	mr := h.cfg.ManagementResource()
	tok, ok := keymgmtapi.Token(r)
	if !ok {
		h.keymgmt.Unauthenticated(w, r, h.cfg.AuthorityURL, mr, "no bearer token")
		return
	}
	claims, reason, err := h.authority.Validate(tok, []string{mr, strings.TrimSuffix(mr, "/")})
	if err != nil {
		h.keymgmt.Unauthenticated(w, r, h.cfg.AuthorityURL, mr, reason)
		return
	}
	h.keymgmt.Serve(w, r, authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID,
		AppID: firstNonEmpty(claims.AZP, claims.AppID)})
}
