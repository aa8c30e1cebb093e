package authz

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// Snapshot is everything a decision may depend on, as stored records. The
// management plane builds one from storage and compiles it with Build.
type Snapshot struct {
	Principals  []PrincipalRecord
	Roles       []RoleDefinition // custom roles; built-ins are always present
	Assignments []Assignment     // active assignments (eligible ones are not granted)
	Vaults      []VaultPolicy
}

// PrincipalRecord is a principal that exists in a tenant's directory.
// Tokens of principals missing from the index are refused, so deleting a
// principal takes effect at once, before its tokens expire.
type PrincipalRecord struct {
	TenantID string
	ObjectID string
	Kind     string   // "User", "Group", "ServicePrincipal", "ManagedIdentity"
	Groups   []string // groups it is a direct member of
	// Trusted marks a service an administrator trusts to bypass vault
	// firewalls whose bypass is AzureServices.
	Trusted bool
}

// Assignment is a role assignment: a principal (user, group, service
// principal, managed identity) holds a role at a scope, optionally only
// within [Start, End).
type Assignment struct {
	ID               string     `json:"id"` // GUID (the assignment name)
	TenantID         string     `json:"tenantId"`
	Scope            string     `json:"scope"`
	PrincipalID      string     `json:"principalId"`
	PrincipalType    string     `json:"principalType,omitempty"`
	RoleDefinitionID string     `json:"roleDefinitionId"` // GUID
	Start            *time.Time `json:"start,omitempty"`
	End              *time.Time `json:"end,omitempty"`
	// Justification is given when an eligible assignment is activated.
	Justification string    `json:"justification,omitempty"`
	Created       time.Time `json:"created"`
	CreatedBy     string    `json:"createdBy,omitempty"`
	Description   string    `json:"description,omitempty"`
}

// ActiveAt reports whether a is in force at now.
func (a *Assignment) ActiveAt(now time.Time) bool {
	if a.Start != nil && now.Before(*a.Start) {
		return false
	}
	if a.End != nil && !now.Before(*a.End) {
		return false
	}
	return true
}

// VaultPolicy is a vault's permission model, access policies and network
// rules.
type VaultPolicy struct {
	Name           string
	TenantID       string
	RBAC           bool // enableRbacAuthorization: access policies are ignored
	AccessPolicies []AccessPolicy
	Network        NetworkRules
}

// AccessPolicy is an access-policy entry (AZURE-API.md §6). An entry with
// an ApplicationID matches only the compound identity of that application
// acting for ObjectID (a delegated token with azp = ApplicationID).
type AccessPolicy struct {
	TenantID      string   `json:"tenantId"`
	ObjectID      string   `json:"objectId"`
	ApplicationID string   `json:"applicationId,omitempty"`
	Keys          []string `json:"keys,omitempty"`
	Secrets       []string `json:"secrets,omitempty"`
	Certificates  []string `json:"certificates,omitempty"`
	Storage       []string `json:"storage,omitempty"`
}

// NetworkRules are a vault's firewall (AZURE-API.md §6 networkAcls and
// publicNetworkAccess). They apply to the data plane only.
type NetworkRules struct {
	DefaultAction string // "Allow" (default) or "Deny"
	Bypass        string // "AzureServices" (default) or "None"
	IPRules       []netip.Prefix
	// PublicDisabled is publicNetworkAccess: Disabled: only listeners
	// marked private (self-hosted private endpoints) reach the vault.
	PublicDisabled bool
}

// Index is a compiled Snapshot: immutable, safe for concurrent use.
type Index struct {
	principals  map[string]*principalInfo // tenant|oid
	roles       map[string]*RoleDefinition
	byPrincipal map[string][]*compiled // tenant|oid -> assignments
	vaults      map[string]*VaultPolicy
	count       int
}

type principalInfo struct {
	rec      PrincipalRecord
	memberOf []string // transitive
}

type compiled struct {
	a     *Assignment
	scope string
	role  *RoleDefinition
}

func pkey(tenant, oid string) string { return strings.ToLower(tenant) + "|" + strings.ToLower(oid) }

// Build compiles s. Assignments naming an unknown role are skipped (a
// custom role deleted after assignment grants nothing).
func Build(s Snapshot) (*Index, error) {
	idx := &Index{
		principals:  map[string]*principalInfo{},
		roles:       map[string]*RoleDefinition{},
		byPrincipal: map[string][]*compiled{},
		vaults:      map[string]*VaultPolicy{},
	}
	for i := range BuiltinRoles {
		r := BuiltinRoles[i]
		idx.roles[r.ID] = &r
	}
	for i := range s.Roles {
		r := s.Roles[i]
		id := RoleGUID(r.ID)
		if prev, ok := idx.roles[id]; ok && prev.BuiltIn {
			return nil, fmt.Errorf("authz: custom role %s collides with a built-in role", id)
		}
		r.ID = id
		idx.roles[id] = &r
	}
	direct := map[string][]string{}
	for _, p := range s.Principals {
		k := pkey(p.TenantID, p.ObjectID)
		idx.principals[k] = &principalInfo{rec: p}
		direct[k] = p.Groups
	}
	// Transitive group membership, cycle-safe.
	for k, info := range idx.principals {
		tenant, _, _ := strings.Cut(k, "|")
		seen := map[string]bool{}
		queue := append([]string(nil), direct[k]...)
		for len(queue) > 0 {
			g := strings.ToLower(queue[0])
			queue = queue[1:]
			if seen[g] {
				continue
			}
			seen[g] = true
			queue = append(queue, direct[tenant+"|"+g]...)
		}
		for g := range seen {
			info.memberOf = append(info.memberOf, g)
		}
		sort.Strings(info.memberOf)
	}
	for i := range s.Assignments {
		a := s.Assignments[i]
		role := idx.roles[RoleGUID(a.RoleDefinitionID)]
		if role == nil {
			continue
		}
		k := pkey(a.TenantID, a.PrincipalID)
		idx.byPrincipal[k] = append(idx.byPrincipal[k], &compiled{a: &a, scope: normScope(a.Scope), role: role})
		idx.count++
	}
	for i := range s.Vaults {
		v := s.Vaults[i]
		idx.vaults[strings.ToLower(v.Name)] = &v
	}
	return idx, nil
}

// Role returns the role definition with id (built-in or custom).
func (x *Index) Role(id string) (*RoleDefinition, bool) {
	r, ok := x.roles[RoleGUID(id)]
	return r, ok
}

// Principal reports whether the principal exists, and its record.
func (x *Index) Principal(tenant, oid string) (PrincipalRecord, bool) {
	p, ok := x.principals[pkey(tenant, oid)]
	if !ok {
		return PrincipalRecord{}, false
	}
	return p.rec, true
}

// MemberOf returns the groups a principal belongs to, directly or through
// nested groups (a copy; nil for an unknown principal).
func (x *Index) MemberOf(tenant, oid string) []string {
	p, ok := x.principals[pkey(tenant, oid)]
	if !ok {
		return nil
	}
	return slices.Clone(p.memberOf)
}

// Vault returns the policy of vault name, if the index has one.
func (x *Index) Vault(name string) (*VaultPolicy, bool) {
	v, ok := x.vaults[strings.ToLower(name)]
	return v, ok
}

// Decide is the decision function: pure, over the index and the time.
//
// Order: tenant, principal existence, then by kind of action: control
// actions by RBAC "actions"; data actions by the vault's permission model
// (RBAC data actions, or access policies). Deny by default.
func (x *Index) Decide(p Principal, a Action, s Scope, now time.Time) Decision {
	data := IsDataAction(a)
	code := CodeRbac
	var pv *VaultPolicy
	if data {
		if s.Vault == "" {
			return Decision{Reason: "data action without a vault", Code: code, Missing: string(a)}
		}
		pv = x.vaults[strings.ToLower(s.Vault)]
		if pv != nil && !pv.RBAC {
			code = CodePolicy
		}
	}
	deny := func(reason string) Decision {
		d := Decision{Reason: reason, Code: code, Missing: string(a)}
		if code == CodePolicy {
			if perm, ok := PolicyPermission(a, s.List); ok {
				d.Missing = perm.String()
			}
		}
		return d
	}
	if p.TenantID == "" || !strings.EqualFold(p.TenantID, s.TenantID) {
		return deny("caller is not in the resource's tenant")
	}
	var kbuf [160]byte
	var info *principalInfo
	if k, ok := pkeyBytes(kbuf[:], p.TenantID, p.ObjectID); ok {
		info = x.principals[string(k)]
	} else {
		info = x.principals[pkey(p.TenantID, p.ObjectID)]
	}
	if info == nil {
		return deny("caller's principal does not exist in the directory")
	}
	ids := make([]string, 0, 1+len(info.memberOf)+len(p.Groups))
	ids = append(ids, strings.ToLower(p.ObjectID))
	ids = append(ids, info.memberOf...)
	for _, g := range p.Groups {
		ids = append(ids, strings.ToLower(g))
	}
	if data && pv != nil && !pv.RBAC {
		return decidePolicy(pv, p, ids, a, s)
	}
	req := normScopeOf(s)
	for _, id := range ids {
		var cs []*compiled
		if k, ok := pkeyBytes(kbuf[:], p.TenantID, id); ok {
			cs = x.byPrincipal[string(k)]
		} else {
			cs = x.byPrincipal[pkey(p.TenantID, id)]
		}
		for _, c := range cs {
			if !covers(c.scope, req) || !c.a.ActiveAt(now) {
				continue
			}
			if c.role.allows(a, data, s.RoleDefinitionID) {
				return Decision{Allowed: true, Reason: "Assignment: " + c.a.ID + " (" + c.role.Name + ") at " + c.a.Scope}
			}
		}
	}
	return deny("Assignment: (not found)")
}

func decidePolicy(v *VaultPolicy, p Principal, ids []string, a Action, s Scope) Decision {
	perm, ok := PolicyPermission(a, s.List)
	if !ok {
		return Decision{Reason: "access policies cannot grant this action", Code: CodePolicy, Missing: string(a)}
	}
	for i := range v.AccessPolicies {
		e := &v.AccessPolicies[i]
		if !strings.EqualFold(e.TenantID, p.TenantID) {
			continue
		}
		if e.ApplicationID != "" {
			// Compound identity: this app acting for this user, only.
			if !p.Delegated || !strings.EqualFold(e.ApplicationID, p.AppID) || !strings.EqualFold(e.ObjectID, p.ObjectID) {
				continue
			}
		} else if !containsFold(ids, e.ObjectID) {
			continue
		}
		var granted []string
		switch perm.Collection {
		case "keys":
			granted = e.Keys
		case "secrets":
			granted = e.Secrets
		case "certificates":
			granted = e.Certificates
		}
		for _, g := range granted {
			if strings.EqualFold(g, "all") || strings.EqualFold(g, perm.Op) {
				return Decision{Allowed: true, Reason: "Access policy: " + e.ObjectID + " " + perm.String()}
			}
			for _, imp := range policyImplies[perm] {
				if strings.EqualFold(g, imp) {
					return Decision{Allowed: true, Reason: "Access policy: " + e.ObjectID + " " + perm.Collection + " " + imp}
				}
			}
		}
	}
	return Decision{Reason: "Access policy: (not found)", Code: CodePolicy, Missing: perm.String()}
}

func containsFold(list []string, s string) bool {
	s = strings.ToLower(s)
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Len is the number of active assignments indexed (for metrics and tests).
func (x *Index) Len() int { return x.count }
