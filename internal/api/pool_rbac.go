package api

import (
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/mhsm"
)

// Managed HSM local RBAC on the wire (azadmin/rbac, AZURE-API.md §5):
// {scope}/providers/Microsoft.Authorization/roleDefinitions|roleAssignments
// at scope "/", "/keys" or "/keys/{key}".

func poolRBACRoutes(scope string) []kwroute {
	const o = "rbac"
	rd := scope + "/providers/Microsoft.Authorization/roleDefinitions"
	ra := scope + "/providers/Microsoft.Authorization/roleAssignments"
	return []kwroute{
		{Method: http.MethodGet, Pattern: rd, Op: "HSMRoleDefinitionList", Object: o, Action: authz.HSMRoleDefRead, Handle: listRoleDefinitions},
		{Method: http.MethodGet, Pattern: rd + "/{id}", Op: "HSMRoleDefinitionGet", Object: o, Action: authz.HSMRoleDefRead, Handle: getRoleDefinition},
		{Method: http.MethodPut, Pattern: rd + "/{id}", Op: "HSMRoleDefinitionCreate", Object: o, Action: authz.HSMRoleDefWrite, Handle: putRoleDefinition},
		{Method: http.MethodDelete, Pattern: rd + "/{id}", Op: "HSMRoleDefinitionDelete", Object: o, Action: authz.HSMRoleDefDelete, Handle: deleteRoleDefinition},
		{Method: http.MethodGet, Pattern: ra, Op: "HSMRoleAssignmentList", Object: o, Action: authz.HSMRoleAssignRead, Handle: listRoleAssignments},
		{Method: http.MethodGet, Pattern: ra + "/{id}", Op: "HSMRoleAssignmentGet", Object: o, Action: authz.HSMRoleAssignRead, Handle: getRoleAssignment},
		{Method: http.MethodPut, Pattern: ra + "/{id}", Op: "HSMRoleAssignmentCreate", Object: o, Action: authz.HSMRoleAssignWrite, Handle: putRoleAssignment},
		{Method: http.MethodDelete, Pattern: ra + "/{id}", Op: "HSMRoleAssignmentDelete", Object: o, Action: authz.HSMRoleAssignDelete, Handle: deleteRoleAssignment},
	}
}

// rbacScope is the scope a route's path names.
func (rq *request) rbacScope() string {
	p := rq.r.URL.Path
	i := strings.Index(strings.ToLower(p), "/providers/microsoft.authorization/")
	if i <= 0 {
		return "/"
	}
	if k := rq.params["key"]; k != "" {
		return "/keys/" + k
	}
	return "/keys"
}

const roleDefPrefix = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"

type permWire struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

type roleDefPropsWire struct {
	RoleName         string     `json:"roleName"`
	Description      string     `json:"description"`
	RoleType         string     `json:"type"`
	Permissions      []permWire `json:"permissions"`
	AssignableScopes []string   `json:"assignableScopes"`
}

type roleDefWire struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	Type       string           `json:"type"`
	Properties roleDefPropsWire `json:"properties"`
}

func nn(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func roleDefOut(d *mhsm.RoleDefinition) roleDefWire {
	t := "CustomRole"
	if d.BuiltIn {
		t = "AKVBuiltInRole"
	}
	w := roleDefWire{ID: roleDefPrefix + d.ID, Name: d.ID, Type: "Microsoft.Authorization/roleDefinitions",
		Properties: roleDefPropsWire{RoleName: d.Name, Description: d.Description, RoleType: t, AssignableScopes: nn(d.AssignableScopes)}}
	for _, p := range d.Permissions {
		w.Properties.Permissions = append(w.Properties.Permissions, permWire{nn(p.Actions), nn(p.NotActions), nn(p.DataActions), nn(p.NotDataActions)})
	}
	if w.Properties.Permissions == nil {
		w.Properties.Permissions = []permWire{}
	}
	return w
}

func listRoleDefinitions(rq *request) error {
	defs, err := rq.h.pools.RoleDefinitions(rq.r.Context(), rq.pool, rq.rbacScope())
	if err != nil {
		return err
	}
	out := page[roleDefWire]{Value: []roleDefWire{}}
	for i := range defs {
		out.Value = append(out.Value, roleDefOut(&defs[i]))
	}
	return rq.reply(http.StatusOK, out)
}

func getRoleDefinition(rq *request) error {
	d, err := rq.h.pools.RoleDefinition(rq.r.Context(), rq.pool, rq.params["id"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, roleDefOut(d))
}

func putRoleDefinition(rq *request) error {
	var b struct {
		Properties *roleDefPropsWire `json:"properties"`
	}
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Properties == nil {
		return badParam("properties is required.")
	}
	d := mhsm.RoleDefinition{ID: rq.params["id"], Name: b.Properties.RoleName, Description: b.Properties.Description,
		AssignableScopes: b.Properties.AssignableScopes}
	for _, p := range b.Properties.Permissions {
		d.Permissions = append(d.Permissions, authz.Perm{Actions: p.Actions, NotActions: p.NotActions, DataActions: p.DataActions, NotDataActions: p.NotDataActions})
	}
	out, err := rq.h.pools.PutRoleDefinition(rq.r.Context(), rq.pool, rq.rbacScope(), d)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusCreated, roleDefOut(out))
}

func deleteRoleDefinition(rq *request) error {
	d, err := rq.h.pools.DeleteRoleDefinition(rq.r.Context(), rq.pool, rq.params["id"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, roleDefOut(d))
}

type roleAssignPropsWire struct {
	Scope            string `json:"scope,omitempty"`
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
}

type roleAssignWire struct {
	ID         string              `json:"id"`
	Name       string              `json:"name"`
	Type       string              `json:"type"`
	Properties roleAssignPropsWire `json:"properties"`
}

func roleAssignOut(a *mhsm.Assignment) roleAssignWire {
	return roleAssignWire{ID: "/providers/Microsoft.Authorization/roleAssignments/" + a.ID, Name: a.ID,
		Type:       "Microsoft.Authorization/roleAssignments",
		Properties: roleAssignPropsWire{Scope: a.Scope, RoleDefinitionID: roleDefPrefix + a.RoleDefinitionID, PrincipalID: a.PrincipalID}}
}

func listRoleAssignments(rq *request) error {
	asg, err := rq.h.pools.Assignments(rq.r.Context(), rq.pool, rq.rbacScope())
	if err != nil {
		return err
	}
	out := page[roleAssignWire]{Value: []roleAssignWire{}}
	for i := range asg {
		out.Value = append(out.Value, roleAssignOut(&asg[i]))
	}
	return rq.reply(http.StatusOK, out)
}

func getRoleAssignment(rq *request) error {
	a, err := rq.h.pools.Assignment(rq.r.Context(), rq.pool, rq.params["id"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, roleAssignOut(a))
}

func putRoleAssignment(rq *request) error {
	var b struct {
		Properties *roleAssignPropsWire `json:"properties"`
	}
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Properties == nil {
		return badParam("properties is required.")
	}
	a, err := rq.h.pools.PutAssignment(rq.r.Context(), rq.pool, rq.rbacScope(), rq.params["id"], b.Properties.RoleDefinitionID, b.Properties.PrincipalID)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusCreated, roleAssignOut(a))
}

func deleteRoleAssignment(rq *request) error {
	a, err := rq.h.pools.DeleteAssignment(rq.r.Context(), rq.pool, rq.params["id"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, roleAssignOut(a))
}
