package mhsm

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
)

// Local RBAC of a pool (azadmin/rbac). Built-in role definitions exist in
// every pool; custom ones and every assignment are stored in the pool.

func raKey(id string) string { return "mhsm/ra/" + strings.ToLower(id) }
func rdKey(id string) string { return "mhsm/rd/" + strings.ToLower(id) }

// RoleDefinition is a role definition as a pool stores it.
type RoleDefinition = authz.RoleDefinition

// Assignment is a role assignment in a pool.
type Assignment = authz.HSMAssignment

func (s *Service) definitions(ctx context.Context, p *Pool) (map[string]RoleDefinition, error) {
	defs := map[string]RoleDefinition{}
	for _, d := range authz.HSMBuiltInRoles() {
		defs[d.ID] = d
	}
	var bad error
	err := s.scanJSON(ctx, p, "mhsm/rd/", func(raw []byte) {
		var d RoleDefinition
		if err := jsonUnmarshal(raw, &d); err != nil {
			bad = err
			return
		}
		defs[strings.ToLower(d.ID)] = d
	})
	return defs, errors.Join(err, bad)
}

func (s *Service) assignments(ctx context.Context, p *Pool) ([]Assignment, error) {
	var out []Assignment
	var bad error
	err := s.scanJSON(ctx, p, "mhsm/ra/", func(raw []byte) {
		var a Assignment
		if err := jsonUnmarshal(raw, &a); err != nil {
			bad = err
			return
		}
		out = append(out, a)
	})
	return out, errors.Join(err, bad)
}

// Authorize reports whether one of principals (the caller's object ID and
// groups) holds a on key ("" for pool-wide actions) in pool p.
func (s *Service) Authorize(ctx context.Context, p *Pool, principals []string, a authz.Action, key string) (bool, error) {
	asg, err := s.assignments(ctx, p)
	if err != nil {
		return false, err
	}
	defs, err := s.definitions(ctx, p)
	if err != nil {
		return false, err
	}
	return authz.DecideHSM(principals, a, key, asg, defs), nil
}

func checkScope(scope string) error {
	if !authz.ValidHSMScope(scope) {
		return fail(errs.BadParameter, "BadParameter", "The scope %s is not valid: use /, /keys or /keys/{name}.", clip(scope))
	}
	return nil
}

// RoleDefinitions lists the definitions assignable at scope (every one:
// built-in roles are assignable at "/", hence below it too).
func (s *Service) RoleDefinitions(ctx context.Context, p *Pool, scope string) ([]RoleDefinition, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	defs, err := s.definitions(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]RoleDefinition, 0, len(defs))
	for _, d := range defs {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b RoleDefinition) int {
		if a.BuiltIn != b.BuiltIn {
			if a.BuiltIn {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// RoleDefinition returns one definition.
func (s *Service) RoleDefinition(ctx context.Context, p *Pool, id string) (*RoleDefinition, error) {
	defs, err := s.definitions(ctx, p)
	if err != nil {
		return nil, err
	}
	d, ok := defs[strings.ToLower(id)]
	if !ok {
		return nil, fail(errs.NotFound, "RoleDefinitionNotFound", "The role definition %s was not found.", clip(id))
	}
	return &d, nil
}

// validDataAction reports whether a is a managed HSM data action or a
// pattern over them.
func validDataAction(a string) bool {
	return strings.HasPrefix(strings.ToLower(a), "microsoft.keyvault/managedhsm/") && len(a) <= 200
}

// PutRoleDefinition creates or replaces a custom role definition.
func (s *Service) PutRoleDefinition(ctx context.Context, p *Pool, scope string, d RoleDefinition) (*RoleDefinition, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if !validGUID(d.ID) {
		return nil, fail(errs.BadParameter, "BadParameter", "A role definition name must be a GUID.")
	}
	for _, b := range authz.HSMBuiltInRoles() {
		if strings.EqualFold(b.ID, d.ID) || strings.EqualFold(b.Name, d.Name) {
			return nil, fail(errs.Conflict, "RoleDefinitionExists", "Built-in role definitions cannot be changed.")
		}
	}
	if d.Name == "" || len(d.Name) > 128 || len(d.Description) > 1024 {
		return nil, fail(errs.BadParameter, "BadParameter", "roleName is required (at most 128 characters).")
	}
	if len(d.Permissions) == 0 || len(d.Permissions) > 8 {
		return nil, fail(errs.BadParameter, "BadParameter", "A role definition needs one permission block (at most 8).")
	}
	for i := range d.Permissions {
		pm := &d.Permissions[i]
		if len(pm.Actions) > 0 || len(pm.NotActions) > 0 {
			return nil, fail(errs.BadParameter, "BadParameter", "Managed HSM roles have data actions only; actions must be empty.")
		}
		for _, a := range append(slices.Clone(pm.DataActions), pm.NotDataActions...) {
			if !validDataAction(a) {
				return nil, fail(errs.BadParameter, "BadParameter", "Unknown data action %s.", clip(a))
			}
		}
		pm.Actions, pm.NotActions = []string{}, []string{}
		if pm.DataActions == nil {
			pm.DataActions = []string{}
		}
		if pm.NotDataActions == nil {
			pm.NotDataActions = []string{}
		}
	}
	d.ID, d.BuiltIn, d.TenantID = strings.ToLower(d.ID), false, p.TenantID
	if len(d.AssignableScopes) == 0 {
		d.AssignableScopes = []string{"/"}
	}
	for _, sc := range d.AssignableScopes {
		if err := checkScope(sc); err != nil {
			return nil, err
		}
	}
	if err := s.putJSON(ctx, p, rdKey(d.ID), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// DeleteRoleDefinition deletes a custom role that no assignment uses.
func (s *Service) DeleteRoleDefinition(ctx context.Context, p *Pool, id string) (*RoleDefinition, error) {
	d, err := s.RoleDefinition(ctx, p, id)
	if err != nil {
		return nil, err
	}
	if d.BuiltIn {
		return nil, fail(errs.BadParameter, "BadParameter", "Built-in role definitions cannot be deleted.")
	}
	asg, err := s.assignments(ctx, p)
	if err != nil {
		return nil, err
	}
	for _, a := range asg {
		if strings.EqualFold(a.RoleDefinitionID, d.ID) {
			return nil, fail(errs.Conflict, "RoleDefinitionHasAssignments", "The role definition is in use by role assignment %s.", a.ID)
		}
	}
	err = s.view(p).Update(ctx, func(tx barrier.Tx) error { return tx.Delete(rdKey(d.ID)) })
	return d, err
}

// Assignments lists assignments at scope and above it ("/" lists all).
func (s *Service) Assignments(ctx context.Context, p *Pool, scope string) ([]Assignment, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	asg, err := s.assignments(ctx, p)
	if err != nil {
		return nil, err
	}
	out := []Assignment{}
	for _, a := range asg {
		if scope == "/" || a.Scope == "/" || strings.EqualFold(a.Scope, scope) ||
			(strings.EqualFold(a.Scope, "/keys") && strings.HasPrefix(strings.ToLower(scope), "/keys")) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Assignment) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Assignment returns one assignment.
func (s *Service) Assignment(ctx context.Context, p *Pool, id string) (*Assignment, error) {
	var a Assignment
	err := s.getJSON(ctx, p, raKey(id), &a)
	if errors.Is(err, storage.ErrNotFound) || !validGUID(id) {
		return nil, fail(errs.NotFound, "RoleAssignmentNotFound", "The role assignment %s was not found.", clip(id))
	}
	return &a, err
}

// PutAssignment creates an assignment (assignments are immutable: a
// second PUT with the same name must name the same role and principal).
func (s *Service) PutAssignment(ctx context.Context, p *Pool, scope, id, roleDefID, principalID string) (*Assignment, error) {
	if err := checkScope(scope); err != nil {
		return nil, err
	}
	if !validGUID(id) {
		return nil, fail(errs.BadParameter, "BadParameter", "A role assignment name must be a GUID.")
	}
	if principalID == "" || len(principalID) > 64 {
		return nil, fail(errs.BadParameter, "BadParameter", "principalId is required.")
	}
	guid := roleDefID[strings.LastIndex(roleDefID, "/")+1:]
	d, err := s.RoleDefinition(ctx, p, guid)
	if err != nil {
		return nil, fail(errs.BadParameter, "RoleDefinitionDoesNotExist", "The role definition %s does not exist in this managed HSM.", clip(guid))
	}
	if !d.BuiltIn && !authz.HSMAssignableAt(d.AssignableScopes, scope) {
		return nil, fail(errs.BadParameter, "RoleAssignmentScopeNotAllowed", "The role %s is not assignable at scope %s; its assignable scopes are %s.",
			clip(d.Name), clip(scope), clip(strings.Join(d.AssignableScopes, ", ")))
	}
	if old, err := s.Assignment(ctx, p, id); err == nil {
		if !strings.EqualFold(old.RoleDefinitionID, d.ID) || !strings.EqualFold(old.PrincipalID, principalID) || old.Scope != scope {
			return nil, fail(errs.Conflict, "RoleAssignmentUpdateNotPermitted", "A role assignment cannot be changed; delete it and create another.")
		}
		return old, nil
	}
	a := Assignment{ID: strings.ToLower(id), Scope: scope, RoleDefinitionID: d.ID, PrincipalID: strings.ToLower(principalID)}
	if err := s.putJSON(ctx, p, raKey(a.ID), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// DeleteAssignment deletes an assignment and returns it.
func (s *Service) DeleteAssignment(ctx context.Context, p *Pool, id string) (*Assignment, error) {
	a, err := s.Assignment(ctx, p, id)
	if err != nil {
		return nil, err
	}
	return a, s.view(p).Update(ctx, func(tx barrier.Tx) error { return tx.Delete(raKey(a.ID)) })
}

func validGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range strings.ToLower(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
