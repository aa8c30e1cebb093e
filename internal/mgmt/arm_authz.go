package mgmt

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/route"
	"github.com/keyward/keyward/internal/storage"
)

// Microsoft.Authorization at the four scopes (plus the tenant root):
// role definitions, role assignments, and the PIM schedule requests that
// make assignments eligible, time-bound, and activated.

// authzHandler prepares one Microsoft.Authorization operation at scope sc
// (name is the resource's name, "" for lists): it validates the name and
// reads the body, and returns what the authorization step must grant
// before serve runs (internal/mgmt's one authorization step,
// call.authorizeGrants). It never asks the engine itself.
type authzHandler = func(c *call, sc authz.Scope, name string) (need []grant, serve func() error, err error)

// authorizationRoutes is Microsoft.Authorization, served at any scope
// (/, a subscription, a resource group, a vault, an object in a vault):
// the part of the path after the scope, matched by internal/route.
func authorizationRoutes() route.Table[authzHandler, authz.Action] {
	const (
		get = http.MethodGet
		ma  = "/providers/Microsoft.Authorization"
	)
	return route.Compile([]route.Route[authzHandler, authz.Action]{
		{Method: get, Pattern: ma + "/roleAssignments", Op: "RoleAssignmentList", Action: authz.RoleAssignmentsRead, Handle: (*call).listAssignments},
		{Pattern: ma + "/roleAssignments/{name}", Op: "RoleAssignment", Handle: (*call).roleAssignment},
		{Method: get, Pattern: ma + "/roleDefinitions", Op: "RoleDefinitionList", Action: authz.RoleDefinitionsRead, Handle: (*call).listRoleDefinitions},
		{Pattern: ma + "/roleDefinitions/{name}", Op: "RoleDefinition", Handle: (*call).roleDefinition},
		{Pattern: ma + "/roleEligibilityScheduleRequests/{name}", Op: "RoleEligibilityRequest", Handle: (*call).eligibilityRequest},
		{Pattern: ma + "/roleAssignmentScheduleRequests/{name}", Op: "RoleAssignmentScheduleRequest", Handle: (*call).assignmentScheduleRequest},
	})
}

// routeAuthorization serves Microsoft.Authorization at scopeStr: the
// scope is resolved (it must be the caller's tenant's), the route found,
// its handler prepares the request, the authorization step grants what it
// needs (the route's Action on the scope, or what the handler names), and
// the handler serves.
func (c *call) routeAuthorization(scopeStr string, rest []string) error {
	if len(rest) == 0 || len(rest) > 2 {
		return c.notFound()
	}
	scope, err := c.resolveScope(scopeStr)
	if err != nil {
		return err
	}
	if scope.Vault != "" {
		// At a vault's scope or an object's in it: the vault's event (its
		// audit report finds it by name, and by resource ID below the
		// vault's), as every other ARM request on the vault is.
		c.ev.Vault = clip(scope.Vault)
		c.ev.ResourceID = audit.VaultResourceID(scope.SubscriptionID, scope.ResourceGroup, scope.Vault)
	}
	path := "/providers/Microsoft.Authorization/" + url.PathEscape(rest[0])
	if len(rest) == 2 {
		path += "/" + url.PathEscape(rest[1])
	}
	rt, params, _ := c.h.authzRoutes.Match(c.r.Method, path)
	if rt == nil {
		return c.notFound()
	}
	c.ev.Operation = rt.Op
	// A role assignment at a vault's scope or an object's in it (decided on
	// the vault) or above it (decided by the tenant's approvers) may need
	// its approvers (quorum.go): keep its body to store the request.
	// PIM's admin requests (an eligibility, a time-bound assignment) grant
	// like an assignment does and go through the same step.
	c.keep = c.h.quorum != nil && c.r.Method == http.MethodPut &&
		(rt.Op == "RoleAssignment" || rt.Op == "RoleEligibilityRequest" || rt.Op == "RoleAssignmentScheduleRequest")
	need, serve, err := rt.Handle(c, scope, params["name"])
	if err != nil {
		return err
	}
	if rt.Action != "" {
		need = append([]grant{{action: rt.Action, scope: scope}}, need...)
	}
	if err := c.authorizeGrants(need); err != nil {
		return err
	}
	if c.keep && c.kept != nil {
		c.r.Body = io.NopCloser(bytes.NewReader(c.kept))
		if c.h.quorum(c.w, c.r, c.ev.Operation, scope.Vault, c.p) {
			return nil // quorum.go: the assignment waits for its approvers
		}
	}
	return serve()
}

// resolveScope parses an ARM scope and checks that what it names exists
// in the caller's tenant. The check comes after authentication, and the
// errors for other tenants' subscriptions do not reveal their contents.
func (c *call) resolveScope(s string) (authz.Scope, error) {
	sc, err := authz.ParseScope(s)
	if err != nil {
		return authz.Scope{}, errBad("InvalidScope", "The scope '%s' is not valid: use /, /subscriptions/{id}, a resource group, a vault or an object in a vault.", clip(s))
	}
	sc.TenantID = c.p.TenantID
	if sc.SubscriptionID == "" {
		return sc, nil
	}
	sub, err := c.subscription(sc.SubscriptionID)
	if err != nil {
		return authz.Scope{}, err
	}
	sc.SubscriptionID = sub.ID
	return sc, nil
}

// scopeExists checks the resources a scope names, for writes.
func (c *call) scopeExists(ctx context.Context, sc authz.Scope) error {
	if sc.ResourceGroup != "" {
		if _, err := c.h.svc.ResourceGroup(ctx, sc.SubscriptionID, sc.ResourceGroup); err != nil {
			return errNotFound("ResourceGroupNotFound", "Resource group '%s' could not be found.", clip(sc.ResourceGroup))
		}
	}
	if sc.Vault != "" {
		v, err := c.h.svc.vaults.Vault(sc.Vault)
		if err != nil || !strings.EqualFold(v.SubscriptionID, sc.SubscriptionID) || !strings.EqualFold(v.ResourceGroup, sc.ResourceGroup) {
			return errNotFound("ResourceNotFound", "The Resource 'Microsoft.KeyVault/vaults/%s' was not found.", clip(sc.Vault))
		}
	}
	return nil
}

func roleDefID(sc authz.Scope, guid string) string {
	if sc.SubscriptionID != "" {
		return "/subscriptions/" + sc.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
	}
	return "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

func scopePrefix(scope string) string {
	if scope == "/" || scope == "" {
		return ""
	}
	return strings.TrimSuffix(scope, "/")
}

type assignmentWire struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		RoleDefinitionID string  `json:"roleDefinitionId"`
		PrincipalID      string  `json:"principalId"`
		PrincipalType    string  `json:"principalType,omitempty"`
		Scope            string  `json:"scope"`
		Condition        *string `json:"condition"`
		ConditionVersion *string `json:"conditionVersion"`
		Description      string  `json:"description,omitempty"`
		CreatedOn        string  `json:"createdOn"`
		UpdatedOn        string  `json:"updatedOn"`
		CreatedBy        string  `json:"createdBy,omitempty"`
		UpdatedBy        string  `json:"updatedBy,omitempty"`
		// Keyward adds the window of time-bound (PIM) assignments.
		StartDateTime string `json:"startDateTime,omitempty"`
		EndDateTime   string `json:"endDateTime,omitempty"`
		Justification string `json:"justification,omitempty"`
	} `json:"properties"`
}

func assignmentOut(a *authz.Assignment) assignmentWire {
	var w assignmentWire
	sc, _ := authz.ParseScope(a.Scope)
	w.ID = scopePrefix(a.Scope) + "/providers/Microsoft.Authorization/roleAssignments/" + a.ID
	w.Name, w.Type = a.ID, "Microsoft.Authorization/roleAssignments"
	p := &w.Properties
	p.RoleDefinitionID = roleDefID(sc, a.RoleDefinitionID)
	p.PrincipalID, p.PrincipalType, p.Scope = a.PrincipalID, a.PrincipalType, a.Scope
	p.Description, p.CreatedBy, p.UpdatedBy = a.Description, a.CreatedBy, a.CreatedBy
	p.CreatedOn, p.UpdatedOn = fmtTime(a.Created), fmtTime(a.Created)
	if a.Start != nil {
		p.StartDateTime = fmtTime(*a.Start)
	}
	if a.End != nil {
		p.EndDateTime = fmtTime(*a.End)
	}
	p.Justification = a.Justification
	return w
}

func principalType(kind string) string {
	switch kind {
	case "User", "Group":
		return kind
	}
	return "ServicePrincipal"
}

var principalFilterRE = regexp.MustCompile(`(?i)principalId\s+eq\s+'([0-9a-fA-F-]{36})'`)

func (c *call) listAssignments(sc authz.Scope, _ string) ([]grant, func() error, error) {
	return nil, func() error { return c.serveAssignmentList(sc) }, nil
}

func (c *call) serveAssignmentList(sc authz.Scope) error {
	all, err := c.h.svc.Assignments(c.r.Context(), c.p.TenantID)
	if err != nil {
		return err
	}
	filter := c.q.Get("$filter")
	atScope := strings.Contains(strings.ToLower(filter), "atscope()")
	var principal string
	if m := principalFilterRE.FindStringSubmatch(filter); m != nil {
		principal = strings.ToLower(m[1])
	}
	req := strings.ToLower(strings.TrimSuffix(sc.String(), "/"))
	out := []assignmentWire{}
	for _, a := range all {
		as := strings.ToLower(strings.TrimSuffix(a.Scope, "/"))
		above := as == "" || as == "/" || req == as || strings.HasPrefix(req, as+"/")
		below := strings.HasPrefix(as, req+"/") || req == "/"
		if !above && (atScope || !below) {
			continue
		}
		if principal != "" && a.PrincipalID != principal {
			continue
		}
		out = append(out, assignmentOut(a))
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) roleAssignment(sc authz.Scope, name string) ([]grant, func() error, error) {
	ctx := c.r.Context()
	if _, err := uuid.Parse(name); err != nil {
		return nil, nil, errBad("InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", clip(name))
	}
	c.ev.ObjectID = sc.String() + "/providers/Microsoft.Authorization/roleAssignments/" + strings.ToLower(name)
	existing, err := c.h.svc.Assignment(ctx, name)
	if err == nil && (!strings.EqualFold(existing.TenantID, c.p.TenantID) || !strings.EqualFold(strings.TrimSuffix(existing.Scope, "/"), strings.TrimSuffix(sc.String(), "/"))) {
		existing, err = nil, storage.ErrNotFound
	}
	switch c.r.Method {
	case http.MethodGet:
		c.ev.Operation = "RoleAssignmentGet"
		return []grant{{action: authz.RoleAssignmentsRead, scope: sc}}, func() error {
			if existing == nil {
				return errNotFound("RoleAssignmentNotFound", "The role assignment '%s' is not found.", clip(name))
			}
			c.reply(http.StatusOK, assignmentOut(existing))
			return nil
		}, nil
	case http.MethodDelete:
		c.ev.Operation = "RoleAssignmentDelete"
		s := sc
		if existing != nil {
			s.RoleDefinitionID = existing.RoleDefinitionID
		}
		return []grant{{action: authz.RoleAssignmentsDelete, scope: s}}, func() error {
			if existing == nil {
				c.reply(http.StatusNoContent, nil)
				return nil
			}
			if err := c.h.svc.Unassign(ctx, existing.ID); err != nil {
				return err
			}
			c.reply(http.StatusOK, assignmentOut(existing))
			return nil
		}, nil
	case http.MethodPut:
		c.ev.Operation = "RoleAssignmentCreate"
		var body struct {
			Properties *struct {
				RoleDefinitionID string  `json:"roleDefinitionId"`
				PrincipalID      string  `json:"principalId"`
				PrincipalType    string  `json:"principalType"`
				Description      string  `json:"description"`
				Condition        *string `json:"condition"`
			} `json:"properties"`
		}
		if err := c.decode(&body); err != nil {
			return nil, nil, err
		}
		if body.Properties == nil {
			return nil, nil, errBad("InvalidRequestContent", "The 'properties' property is required.")
		}
		pr := body.Properties
		s := sc
		s.RoleDefinitionID = authz.RoleGUID(pr.RoleDefinitionID)
		return []grant{{action: authz.RoleAssignmentsWrite, scope: s}}, func() error {
			a, status, err := c.createAssignment(ctx, sc, name, pr.RoleDefinitionID, pr.PrincipalID, pr.PrincipalType, pr.Description, pr.Condition, nil, nil, "")
			if err != nil {
				return err
			}
			c.reply(status, assignmentOut(a))
			return nil
		}, nil
	}
	return nil, nil, errMethod
}

var errMethod = &armError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", message: "The method is not allowed on this resource."}

// createAssignment validates and stores an assignment the caller is
// authorized to make.
func (c *call) createAssignment(ctx context.Context, sc authz.Scope, name, roleID, principalID, ptype, desc string, cond *string, start, end *time.Time, justification string) (*authz.Assignment, int, error) {
	if cond != nil && *cond != "" {
		return nil, 0, errBad("InvalidRoleAssignmentCondition", "Role assignment conditions are not supported by Keyward.")
	}
	if len(desc) > 1024 {
		return nil, 0, errBad("InvalidRequestContent", "description is at most 1024 characters.")
	}
	if err := c.scopeExists(ctx, sc); err != nil {
		return nil, 0, err
	}
	role, err := c.h.svc.Role(ctx, c.p.TenantID, roleID)
	if err != nil {
		return nil, 0, err
	}
	if !role.BuiltIn && !assignableAt(role, sc) {
		return nil, 0, errBad("RoleAssignmentScopeNotAllowed", "The role '%s' is not assignable at scope '%s'.", role.Name, sc.String())
	}
	if sc.SubscriptionID == "" && !strings.HasPrefix(role.ID, "6b0f1a3e-") && role.ID != authz.RoleOwner {
		// The tenant root takes Keyward's instance roles and Owner only.
		return nil, 0, errBad("InvalidScope", "Only Keyward's root roles and Owner can be assigned at the tenant root '/'.")
	}
	if _, err := uuid.Parse(principalID); err != nil {
		return nil, 0, errBad("InvalidPrincipalId", "A valid principal ID must be provided for role assignment.")
	}
	rec, ok := c.h.svc.engine.Index().Principal(c.p.TenantID, principalID)
	if !ok {
		return nil, 0, errBad("PrincipalNotFound", "Principal %s does not exist in the directory %s.", strings.ToLower(principalID), c.p.TenantID)
	}
	if ptype != "" && !strings.EqualFold(ptype, principalType(rec.Kind)) && !(strings.EqualFold(ptype, "ServicePrincipal") && rec.Kind == "ManagedIdentity") {
		return nil, 0, errBad("PrincipalTypeNotSupported", "principalType %s does not match the principal (%s).", clip(ptype), principalType(rec.Kind))
	}
	_, existed := c.h.svc.Assignment(ctx, name)
	a, err := c.h.svc.Assign(ctx, authz.Assignment{ID: name, TenantID: c.p.TenantID, Scope: sc.String(), PrincipalID: principalID,
		PrincipalType: principalType(rec.Kind), RoleDefinitionID: role.ID, Start: start, End: end,
		Justification: justification, CreatedBy: c.p.ObjectID, Description: desc})
	if err != nil {
		return nil, 0, err
	}
	if existed == nil {
		return a, http.StatusOK, nil
	}
	return a, http.StatusCreated, nil
}

func assignableAt(r *authz.RoleDefinition, sc authz.Scope) bool {
	req := strings.ToLower(strings.TrimSuffix(sc.String(), "/"))
	for _, s := range r.AssignableScopes {
		as := strings.ToLower(strings.TrimSuffix(s, "/"))
		if as == "" || as == req || strings.HasPrefix(req, as+"/") {
			return true
		}
	}
	return false
}

// --- role definitions ---

type roleDefWire struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		RoleName         string      `json:"roleName"`
		Type             string      `json:"type"`
		Description      string      `json:"description"`
		AssignableScopes []string    `json:"assignableScopes"`
		Permissions      []permsWire `json:"permissions"`
	} `json:"properties"`
}

type permsWire struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

func roleOut(sc authz.Scope, r *authz.RoleDefinition) roleDefWire {
	var w roleDefWire
	w.ID, w.Name, w.Type = roleDefID(sc, r.ID), r.ID, "Microsoft.Authorization/roleDefinitions"
	w.Properties.RoleName, w.Properties.Description = r.Name, r.Description
	w.Properties.Type = "CustomRole"
	if r.BuiltIn {
		w.Properties.Type = "BuiltInRole"
	}
	w.Properties.AssignableScopes = nonNil(r.AssignableScopes)
	for _, p := range r.Permissions {
		w.Properties.Permissions = append(w.Properties.Permissions, permsWire{Actions: nonNil(p.Actions),
			NotActions: nonNil(p.NotActions), DataActions: nonNil(p.DataActions), NotDataActions: nonNil(p.NotDataActions)})
	}
	return w
}

var roleNameFilterRE = regexp.MustCompile(`(?i)roleName\s+eq\s+'([^']{1,256})'`)

func (c *call) listRoleDefinitions(sc authz.Scope, _ string) ([]grant, func() error, error) {
	return nil, func() error { return c.serveRoleDefinitionList(sc) }, nil
}

func (c *call) serveRoleDefinitionList(sc authz.Scope) error {
	custom, err := c.h.svc.CustomRoles(c.r.Context(), c.p.TenantID)
	if err != nil {
		return err
	}
	var name string
	if m := roleNameFilterRE.FindStringSubmatch(c.q.Get("$filter")); m != nil {
		name = m[1]
	}
	out := []roleDefWire{}
	add := func(r *authz.RoleDefinition) {
		if name == "" || strings.EqualFold(r.Name, name) {
			out = append(out, roleOut(sc, r))
		}
	}
	for i := range authz.BuiltinRoles {
		add(&authz.BuiltinRoles[i])
	}
	for _, r := range custom {
		if assignableAt(r, sc) || sc.SubscriptionID == "" {
			add(r)
		}
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) roleDefinition(sc authz.Scope, id string) ([]grant, func() error, error) {
	ctx := c.r.Context()
	switch c.r.Method {
	case http.MethodGet:
		c.ev.Operation = "RoleDefinitionGet"
		return []grant{{action: authz.RoleDefinitionsRead, scope: sc}}, func() error {
			r, err := c.h.svc.Role(ctx, c.p.TenantID, id)
			if err != nil {
				return err
			}
			c.reply(http.StatusOK, roleOut(sc, r))
			return nil
		}, nil
	case http.MethodDelete:
		c.ev.Operation = "RoleDefinitionDelete"
		return []grant{{action: authz.RoleDefinitionsDelete, scope: sc}}, func() error {
			r, err := c.h.svc.DeleteRole(ctx, c.p.TenantID, id)
			if errs.KindOf(err) == errs.NotFound {
				c.reply(http.StatusNoContent, nil)
				return nil
			}
			if err != nil {
				return err
			}
			c.reply(http.StatusOK, roleOut(sc, r))
			return nil
		}, nil
	case http.MethodPut:
		c.ev.Operation = "RoleDefinitionCreateOrUpdate"
		if _, err := uuid.Parse(id); err != nil {
			return nil, nil, errBad("InvalidRoleDefinitionId", "The role definition ID '%s' is not valid: it must be a GUID.", clip(id))
		}
		var body struct {
			Properties *struct {
				RoleName         string      `json:"roleName"`
				Description      string      `json:"description"`
				AssignableScopes []string    `json:"assignableScopes"`
				Permissions      []permsWire `json:"permissions"`
			} `json:"properties"`
		}
		if err := c.decode(&body); err != nil {
			return nil, nil, err
		}
		p := body.Properties
		if p == nil || p.RoleName == "" || len(p.RoleName) > 256 || len(p.Description) > 2048 || len(p.AssignableScopes) == 0 ||
			len(p.AssignableScopes) > 100 || len(p.Permissions) == 0 || len(p.Permissions) > 10 {
			return nil, nil, errBad("InvalidRoleDefinition", "A custom role needs roleName, 1-100 assignableScopes and 1-10 permissions blocks.")
		}
		r := authz.RoleDefinition{ID: id, Name: p.RoleName, Description: p.Description, TenantID: c.p.TenantID}
		// Each assignable scope is resolved and must be granted in
		// turn: a scope that does not resolve answers when the step
		// reaches it, after the grants before it.
		var need []grant
		for _, s := range p.AssignableScopes {
			asc, err := c.resolveScope(s)
			if err == nil && asc.SubscriptionID == "" {
				err = errBad("InvalidAssignableScope", "Custom roles are assignable at subscriptions and below.")
			}
			if err != nil {
				need = append(need, grant{err: err})
				break
			}
			need = append(need, grant{action: authz.RoleDefinitionsWrite, scope: asc})
			r.AssignableScopes = append(r.AssignableScopes, asc.String())
		}
		return need, func() error { return c.putRoleDefinition(sc, r, p.Permissions) }, nil
	}
	return nil, nil, errMethod
}

// putRoleDefinition validates a custom role's permissions and stores it.
func (c *call) putRoleDefinition(sc authz.Scope, r authz.RoleDefinition, perms []permsWire) error {
	for _, pw := range perms {
		for _, list := range [][]string{pw.Actions, pw.NotActions, pw.DataActions, pw.NotDataActions} {
			if len(list) > 500 {
				return errBad("InvalidRoleDefinition", "A permission list has at most 500 entries.")
			}
			for _, a := range list {
				if a == "" || len(a) > 256 || strings.ContainsAny(a, " \t\r\n") {
					return errBad("InvalidActionOrNotAction", "'%s' is not a valid action.", clip(a))
				}
			}
		}
		for _, a := range append(append([]string{}, pw.DataActions...), pw.NotDataActions...) {
			if !strings.HasPrefix(strings.ToLower(a), "microsoft.keyvault/") {
				return errBad("InvalidDataAction", "'%s' is not a Key Vault data action.", clip(a))
			}
		}
		r.Permissions = append(r.Permissions, authz.Perm{Actions: pw.Actions, NotActions: pw.NotActions,
			DataActions: pw.DataActions, NotDataActions: pw.NotDataActions})
	}
	out, created, err := c.h.svc.PutRole(c.r.Context(), r)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.reply(status, roleOut(sc, out))
	return nil
}

// --- PIM: eligible and time-bound assignments, activation ---

type scheduleInfo struct {
	StartDateTime *time.Time `json:"startDateTime"`
	Expiration    *struct {
		Type        string     `json:"type"`
		EndDateTime *time.Time `json:"endDateTime"`
		Duration    string     `json:"duration"`
	} `json:"expiration"`
}

type scheduleRequestBody struct {
	Properties *struct {
		PrincipalID      string        `json:"principalId"`
		RoleDefinitionID string        `json:"roleDefinitionId"`
		RequestType      string        `json:"requestType"`
		Justification    string        `json:"justification"`
		ScheduleInfo     *scheduleInfo `json:"scheduleInfo"`
	} `json:"properties"`
}

var isoDurRE = regexp.MustCompile(`^P(?:(\d{1,3})D)?(?:T(?:(\d{1,4})H)?(?:(\d{1,5})M)?(?:(\d{1,6})S)?)?$`)

// ParseISODuration parses the ISO 8601 durations PIM uses (P1D, PT8H,
// PT30M).
func ParseISODuration(s string) (time.Duration, error) {
	m := isoDurRE.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || s == "P" || s == "PT" {
		return 0, errBad("InvalidDuration", "'%s' is not an ISO 8601 duration such as PT8H.", clip(s))
	}
	n := func(i int) time.Duration {
		v, _ := strconv.Atoi(m[i])
		return time.Duration(v)
	}
	d := n(1)*24*time.Hour + n(2)*time.Hour + n(3)*time.Minute + n(4)*time.Second
	if d <= 0 {
		return 0, errBad("InvalidDuration", "The duration must be positive.")
	}
	return d, nil
}

// window turns scheduleInfo into [start, end); nil end means no
// expiration.
func window(now time.Time, si *scheduleInfo) (start time.Time, end *time.Time, dur time.Duration, err error) {
	start = now
	if si == nil {
		return start, nil, 0, nil
	}
	if si.StartDateTime != nil && si.StartDateTime.After(now) {
		start = si.StartDateTime.UTC()
	}
	if si.Expiration == nil {
		return start, nil, 0, nil
	}
	switch strings.ToLower(si.Expiration.Type) {
	case "", "noexpiration":
		if si.Expiration.Duration != "" {
			dur, err = ParseISODuration(si.Expiration.Duration)
			if err != nil {
				return
			}
			e := start.Add(dur)
			end = &e
		}
	case "afterduration":
		dur, err = ParseISODuration(si.Expiration.Duration)
		if err != nil {
			return
		}
		e := start.Add(dur)
		end = &e
	case "afterdatetime":
		if si.Expiration.EndDateTime == nil || !si.Expiration.EndDateTime.After(start) {
			err = errBad("InvalidExpiration", "expiration.endDateTime must be after the start.")
			return
		}
		e := si.Expiration.EndDateTime.UTC()
		end = &e
		dur = e.Sub(start)
	default:
		err = errBad("InvalidExpiration", "expiration.type must be NoExpiration, AfterDuration or AfterDateTime.")
	}
	return
}

func scheduleOut(kind string, sc authz.Scope, name string, a *authz.Assignment, requestType, status, requestor string) map[string]any {
	props := map[string]any{
		"principalId": a.PrincipalID, "principalType": a.PrincipalType, "roleDefinitionId": roleDefID(sc, a.RoleDefinitionID),
		"requestType": requestType, "status": status, "scope": a.Scope, "createdOn": fmtTime(a.Created),
		"requestorId": requestor, "justification": a.Justification,
	}
	si := map[string]any{"startDateTime": fmtTime(a.Created)}
	if a.Start != nil {
		si["startDateTime"] = fmtTime(*a.Start)
	}
	if a.End != nil {
		si["expiration"] = map[string]any{"type": "AfterDateTime", "endDateTime": fmtTime(*a.End)}
	} else {
		si["expiration"] = map[string]any{"type": "NoExpiration"}
	}
	props["scheduleInfo"] = si
	return map[string]any{"id": scopePrefix(sc.String()) + "/providers/Microsoft.Authorization/" + kind + "/" + name,
		"name": name, "type": "Microsoft.Authorization/" + kind, "properties": props}
}

func (c *call) decodeSchedule() (*scheduleRequestBody, error) {
	var body scheduleRequestBody
	if err := c.decode(&body); err != nil {
		return nil, err
	}
	if body.Properties == nil {
		return nil, errBad("InvalidRequestContent", "The 'properties' property is required.")
	}
	if len(body.Properties.Justification) > 1000 {
		return nil, errBad("InvalidRequestContent", "justification is at most 1000 characters.")
	}
	return &body, nil
}

// eligibilityRequest makes (AdminAssign) or removes (AdminRemove) an
// eligible assignment. Making someone eligible is as privileged as
// assigning the role.
func (c *call) eligibilityRequest(sc authz.Scope, name string) ([]grant, func() error, error) {
	if _, err := uuid.Parse(name); err != nil {
		return nil, nil, errBad("InvalidRequestId", "The request name must be a GUID.")
	}
	if c.r.Method == http.MethodGet {
		c.ev.Operation = "RoleEligibilityRequestGet"
		return []grant{{action: authz.RoleAssignmentsRead, scope: sc}}, func() error { return c.getEligibilityRequest(sc, name) }, nil
	}
	if c.r.Method != http.MethodPut {
		return nil, nil, errMethod
	}
	c.ev.Operation = "RoleEligibilityRequest"
	body, err := c.decodeSchedule()
	if err != nil {
		return nil, nil, err
	}
	if strings.EqualFold(body.Properties.RequestType, "AdminRemove") {
		c.ev.Operation = "RoleEligibilityRemove"
	}
	s := sc
	s.RoleDefinitionID = authz.RoleGUID(body.Properties.RoleDefinitionID)
	return []grant{{action: authz.RoleAssignmentsWrite, scope: s}}, func() error { return c.putEligibilityRequest(sc, name, body) }, nil
}

func (c *call) getEligibilityRequest(sc authz.Scope, name string) error {
	es, err := c.h.svc.Eligibilities(c.r.Context(), c.p.TenantID)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.ID == strings.ToLower(name) {
			c.reply(http.StatusOK, scheduleOut("roleEligibilityScheduleRequests", sc, e.ID, &e.Assignment, "AdminAssign", "Provisioned", e.CreatedBy))
			return nil
		}
	}
	return errNotFound("RoleEligibilityScheduleRequestNotFound", "The request '%s' was not found.", clip(name))
}

func (c *call) putEligibilityRequest(sc authz.Scope, name string, body *scheduleRequestBody) error {
	ctx := c.r.Context()
	pr := body.Properties
	s := sc
	s.RoleDefinitionID = authz.RoleGUID(pr.RoleDefinitionID)
	switch strings.ToLower(pr.RequestType) {
	case "adminassign", "adminupdate":
	case "adminremove":
		es, err := c.h.svc.Eligibilities(ctx, c.p.TenantID)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.PrincipalID == strings.ToLower(pr.PrincipalID) && e.RoleDefinitionID == s.RoleDefinitionID && strings.EqualFold(e.Scope, sc.String()) {
				if err := c.h.svc.RemoveEligibility(ctx, e.ID); err != nil {
					return err
				}
			}
		}
		c.reply(http.StatusCreated, map[string]any{"name": name, "properties": map[string]any{"requestType": "AdminRemove", "status": "Revoked"}})
		return nil
	default:
		return errBad("InvalidRequestType", "requestType must be AdminAssign, AdminUpdate or AdminRemove.")
	}
	if err := c.scopeExists(ctx, sc); err != nil {
		return err
	}
	role, err := c.h.svc.Role(ctx, c.p.TenantID, pr.RoleDefinitionID)
	if err != nil {
		return err
	}
	rec, ok := c.h.svc.engine.Index().Principal(c.p.TenantID, pr.PrincipalID)
	if !ok {
		return errBad("PrincipalNotFound", "Principal %s does not exist in the directory %s.", clip(pr.PrincipalID), c.p.TenantID)
	}
	start, end, _, err := window(c.h.svc.clock.Now(), pr.ScheduleInfo)
	if err != nil {
		return err
	}
	e, err := c.h.svc.AddEligibility(ctx, Eligibility{Assignment: authz.Assignment{ID: name, TenantID: c.p.TenantID, Scope: sc.String(),
		PrincipalID: pr.PrincipalID, PrincipalType: principalType(rec.Kind), RoleDefinitionID: role.ID, Start: &start, End: end,
		CreatedBy: c.p.ObjectID, Justification: pr.Justification}})
	if err != nil {
		return err
	}
	c.ev.ObjectID = sc.String() + "/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/" + e.ID
	c.reply(http.StatusCreated, scheduleOut("roleEligibilityScheduleRequests", sc, e.ID, &e.Assignment, "AdminAssign", "Provisioned", c.p.ObjectID))
	return nil
}

// assignmentScheduleRequest creates a time-bound assignment
// (AdminAssign), activates an eligible one (SelfActivate: the caller, a
// justification, at most the eligibility's maximum duration), or ends one
// (AdminRemove, SelfDeactivate). Every activation is audited.
func (c *call) assignmentScheduleRequest(sc authz.Scope, name string) ([]grant, func() error, error) {
	if _, err := uuid.Parse(name); err != nil {
		return nil, nil, errBad("InvalidRequestId", "The request name must be a GUID.")
	}
	c.ev.ObjectID = sc.String() + "/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/" + strings.ToLower(name)
	if c.r.Method == http.MethodGet {
		c.ev.Operation = "RoleAssignmentScheduleRequestGet"
		return []grant{{action: authz.RoleAssignmentsRead, scope: sc}}, func() error { return c.getAssignmentScheduleRequest(sc, name) }, nil
	}
	if c.r.Method != http.MethodPut {
		return nil, nil, errMethod
	}
	body, err := c.decodeSchedule()
	if err != nil {
		return nil, nil, err
	}
	pr := body.Properties
	s := sc
	s.RoleDefinitionID = authz.RoleGUID(pr.RoleDefinitionID)
	var need []grant
	switch strings.ToLower(pr.RequestType) {
	case "adminassign", "adminupdate":
		c.ev.Operation = "RoleAssignmentScheduleRequest"
		need = []grant{{action: authz.RoleAssignmentsWrite, scope: s}}
	case "adminremove":
		c.ev.Operation = "RoleAssignmentScheduleRemove"
		need = []grant{{action: authz.RoleAssignmentsDelete, scope: s}}
	case "selfdeactivate":
		// No role is needed to end one's own activation; the handler
		// checks that it is one's own (PIM's policy, not RBAC).
		c.ev.Operation = "RoleAssignmentScheduleRemove"
	case "selfactivate", "selfextend", "selfrenew":
		// Activation is authorized by an eligibility in force, which
		// the handler checks (PIM's policy, audited as such).
		c.ev.Operation = "RoleActivation"
	}
	return need, func() error { return c.putAssignmentScheduleRequest(sc, name, body) }, nil
}

func (c *call) getAssignmentScheduleRequest(sc authz.Scope, name string) error {
	a, err := c.h.svc.Assignment(c.r.Context(), name)
	if err != nil || !strings.EqualFold(a.TenantID, c.p.TenantID) {
		return errNotFound("RoleAssignmentScheduleRequestNotFound", "The request '%s' was not found.", clip(name))
	}
	c.reply(http.StatusOK, scheduleOut("roleAssignmentScheduleRequests", sc, a.ID, a, "AdminAssign", "Provisioned", a.CreatedBy))
	return nil
}

func (c *call) putAssignmentScheduleRequest(sc authz.Scope, name string, body *scheduleRequestBody) error {
	ctx := c.r.Context()
	pr := body.Properties
	now := c.h.svc.clock.Now()
	switch strings.ToLower(pr.RequestType) {
	case "adminassign", "adminupdate":
		start, end, _, err := window(now, pr.ScheduleInfo)
		if err != nil {
			return err
		}
		a, _, err := c.createAssignment(ctx, sc, name, pr.RoleDefinitionID, pr.PrincipalID, "", "", nil, &start, end, pr.Justification)
		if err != nil {
			return err
		}
		c.reply(http.StatusCreated, scheduleOut("roleAssignmentScheduleRequests", sc, a.ID, a, "AdminAssign", "Provisioned", c.p.ObjectID))
		return nil
	case "adminremove", "selfdeactivate":
		self := strings.EqualFold(pr.RequestType, "selfdeactivate")
		s := sc
		s.RoleDefinitionID = authz.RoleGUID(pr.RoleDefinitionID)
		if self && !strings.EqualFold(pr.PrincipalID, c.p.ObjectID) {
			return c.denyActivation("a principal can deactivate only its own assignments")
		}
		all, err := c.h.svc.Assignments(ctx, c.p.TenantID)
		if err != nil {
			return err
		}
		for _, a := range all {
			if a.End != nil && a.PrincipalID == strings.ToLower(pr.PrincipalID) && a.RoleDefinitionID == s.RoleDefinitionID && strings.EqualFold(a.Scope, sc.String()) {
				if err := c.h.svc.Unassign(ctx, a.ID); err != nil {
					return err
				}
			}
		}
		c.reply(http.StatusCreated, map[string]any{"name": name, "properties": map[string]any{"requestType": pr.RequestType, "status": "Revoked"}})
		return nil
	case "selfactivate", "selfextend", "selfrenew":
		return c.activate(ctx, sc, name, pr.PrincipalID, pr.RoleDefinitionID, pr.Justification, pr.ScheduleInfo, now)
	}
	return errBad("InvalidRequestType", "requestType must be AdminAssign, AdminUpdate, AdminRemove, SelfActivate or SelfDeactivate.")
}

func (c *call) denyActivation(reason string) error {
	c.ev.Reason = "activation refused: " + reason
	c.ev.Result = audit.Denied
	return &armError{status: http.StatusForbidden, code: "RoleAssignmentRequestPolicyValidationFailed",
		message: "The role activation was refused: " + reason + "."}
}

func (c *call) activate(ctx context.Context, sc authz.Scope, name, principalID, roleID, justification string, si *scheduleInfo, now time.Time) error {
	if !strings.EqualFold(principalID, c.p.ObjectID) {
		return c.denyActivation("a principal can activate only its own eligible assignments")
	}
	if strings.TrimSpace(justification) == "" {
		return c.denyActivation("a justification is required")
	}
	role := authz.RoleGUID(roleID)
	ids := map[string]bool{strings.ToLower(c.p.ObjectID): true}
	if rec, ok := c.h.svc.engine.Index().Principal(c.p.TenantID, c.p.ObjectID); ok {
		for _, g := range rec.Groups {
			ids[strings.ToLower(g)] = true
		}
	}
	es, err := c.h.svc.Eligibilities(ctx, c.p.TenantID)
	if err != nil {
		return err
	}
	req := strings.ToLower(strings.TrimSuffix(sc.String(), "/"))
	var match *Eligibility
	for _, e := range es {
		es := strings.ToLower(strings.TrimSuffix(e.Scope, "/"))
		if ids[e.PrincipalID] && e.RoleDefinitionID == role && (es == req || strings.HasPrefix(req, es+"/")) && e.ActiveAt(now) {
			match = e
			break
		}
	}
	if match == nil {
		return c.denyActivation("no eligible assignment of this role at this scope is in force")
	}
	max := match.MaxDuration
	dur := max
	if si != nil && si.Expiration != nil && si.Expiration.Duration != "" {
		d, err := ParseISODuration(si.Expiration.Duration)
		if err != nil {
			return err
		}
		dur = d
	}
	if dur > max {
		return c.denyActivation("the requested duration exceeds the maximum of " + max.String())
	}
	end := now.Add(dur)
	if match.End != nil && end.After(*match.End) {
		end = *match.End
	}
	start := now
	a, err := c.h.svc.Assign(ctx, authz.Assignment{ID: name, TenantID: c.p.TenantID, Scope: sc.String(), PrincipalID: c.p.ObjectID,
		PrincipalType: principalType(kindOf(c)), RoleDefinitionID: role, Start: &start, End: &end, Justification: justification,
		CreatedBy: c.p.ObjectID, Description: "activated from eligibility " + match.ID})
	if err != nil {
		return err
	}
	r, _ := c.h.svc.Role(ctx, c.p.TenantID, role)
	roleName := role
	if r != nil {
		roleName = r.Name
	}
	c.ev.Reason = "activated eligible role '" + roleName + "' at " + sc.String() + " until " + end.UTC().Format(time.RFC3339) + " (eligibility " + match.ID + ", justification recorded)"
	c.reply(http.StatusCreated, scheduleOut("roleAssignmentScheduleRequests", sc, a.ID, a, "SelfActivate", "Provisioned", c.p.ObjectID))
	return nil
}

func kindOf(c *call) string {
	rec, _ := c.h.svc.engine.Index().Principal(c.p.TenantID, c.p.ObjectID)
	return rec.Kind
}
