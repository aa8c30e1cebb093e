package mgmt

import (
	"net/http"

	"github.com/keyward/keyward/internal/authz"
)

// QuorumStep is the pipeline's quorum approval step (api/quorum.go,
// docs/QUORUM.md) as ARM's routing takes it: after a route's authorization
// and before its handler, with the operation's audit name, the vault its
// path names ("" for none) and the caller. It reports whether it answered
// the request (202, the operation waits for approvers).
type QuorumStep = func(w http.ResponseWriter, r *http.Request, op, vault string, p authz.Principal) bool

// SetQuorum installs the quorum step (api.New does, when quorum approval
// is on).
func (h *Handler) SetQuorum(q QuorumStep) { h.quorum = q }
