package console

import (
	"net/http"
	"regexp"

	"github.com/keyward/keyward/internal/route"
)

// Approvals: a vault's quorum approval requests (docs/QUORUM.md) that the
// signed-in user made or may decide, with approve and reject buttons. The
// console calls the vault's /approvals API as the user, like every page:
// the approver rules are the server's.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "approvals", Title: "Approvals", Scope: Vault, Order: 60, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}/approvals", Op: "ConsoleApprovalList", Handle: approvalList},
		{Method: post, Pattern: "/ui/vaults/{vault}/approvals/{id}/approve", Op: "ConsoleApprovalApprove", Handle: approvalDecide("approve")},
		{Method: post, Pattern: "/ui/vaults/{vault}/approvals/{id}/reject", Op: "ConsoleApprovalReject", Handle: approvalDecide("reject")},
	}})
	// The tenant's own requests (a seal, keymgmt credentials, role
	// assignments above a vault, a deleted vault's or a pool's purge),
	// decided on the management host's Keyward.Quorum/approvals.
	Register(&Page{Key: "tenant-approvals", Title: "Tenant approvals", Scope: Global, Order: 40, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/approvals", Op: "ConsoleTenantApprovalList", Handle: tenantApprovalList},
		{Method: post, Pattern: "/ui/approvals/{id}/approve", Op: "ConsoleTenantApprovalApprove", Handle: tenantApprovalDecide("approve")},
		{Method: post, Pattern: "/ui/approvals/{id}/reject", Op: "ConsoleTenantApprovalReject", Handle: tenantApprovalDecide("reject")},
	}})
}

// quorumAPIVersion is the api-version of Keyward.Quorum's routes.
const quorumAPIVersion = "2026-01-01"

func tenantApprovalList(q *req) error {
	var l struct {
		Value []approvalItem `json:"value"`
	}
	if err := q.arm(http.MethodGet, "/providers/Keyward.Quorum/approvals", quorumAPIVersion, nil, &l); err != nil {
		return err
	}
	return q.render("approvals", http.StatusOK, "Tenant approvals", l.Value)
}

func tenantApprovalDecide(verb string) handler {
	return func(q *req) error {
		id := q.p["id"]
		if !approvalIDRE.MatchString(id) {
			return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: "That is not an approval request ID."}
		}
		var out approvalItem
		if err := q.arm(http.MethodPost, "/providers/Keyward.Quorum/approvals/"+id+"/"+verb, quorumAPIVersion, nil, &out); err != nil {
			return err
		}
		return q.redirect("/ui/approvals", "Approval request "+id+": "+out.State+".")
	}
}

type approvalVote struct {
	ObjectID string `json:"objectId"`
	At       string `json:"at"`
}

type approvalItem struct {
	ID         string         `json:"id"`
	Operation  string         `json:"operation"`
	Target     string         `json:"target"`
	Requester  string         `json:"requester"`
	State      string         `json:"state"`
	Created    string         `json:"created"`
	Expires    string         `json:"expires"`
	Required   int            `json:"approvalsRequired"`
	Approvals  []approvalVote `json:"approvals"`
	Rejections []approvalVote `json:"rejections"`
	Status     int            `json:"resultStatus"`
	BreakGlass string         `json:"breakGlass"`
}

func (a approvalItem) Pending() bool { return a.State == "Pending" }

var approvalIDRE = regexp.MustCompile(`^[0-9a-fA-F-]{1,64}$`)

func approvalList(q *req) error {
	var l struct {
		Value []approvalItem `json:"value"`
	}
	if err := q.data(q.p["vault"], http.MethodGet, "approvals", nil, &l); err != nil {
		return err
	}
	return q.render("approvals", http.StatusOK, q.p["vault"]+": approvals", l.Value)
}

func approvalDecide(verb string) handler {
	return func(q *req) error {
		id := q.p["id"]
		if !approvalIDRE.MatchString(id) {
			return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: "That is not an approval request ID."}
		}
		var out approvalItem
		if err := q.data(q.p["vault"], http.MethodPost, "approvals/"+id+"/"+verb, nil, &out); err != nil {
			return err
		}
		return q.redirect("/ui/vaults/"+q.p["vault"]+"/approvals", "Approval request "+id+": "+out.State+".")
	}
}
