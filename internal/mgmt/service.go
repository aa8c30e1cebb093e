package mgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// Store is the part of the barrier the management plane needs: the
// system namespace for its records, and each vault's namespace for the
// vault's properties (so that purging the vault removes them).
type Store interface {
	System() *barrier.View
	Vault(id string) *barrier.View
}

// Subscription is a billing and access boundary in a tenant.
type Subscription struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenantId"`
	DisplayName string    `json:"displayName"`
	State       string    `json:"state"`
	Created     time.Time `json:"created"`
}

// ResourceGroup groups vaults in a subscription.
type ResourceGroup struct {
	SubscriptionID string            `json:"subscriptionId"`
	Name           string            `json:"name"`
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	Created        time.Time         `json:"created"`
}

// VaultProps are a vault's management-plane properties beyond what the
// data plane needs (vault.Vault): permission model, access policies,
// network rules, tags and the flags ARM round-trips.
type VaultProps struct {
	RBAC                   bool                 `json:"enableRbacAuthorization"`
	AccessPolicies         []authz.AccessPolicy `json:"accessPolicies"`
	DefaultAction          string               `json:"defaultAction"`
	Bypass                 string               `json:"bypass"`
	IPRules                []string             `json:"ipRules,omitempty"`
	PublicNetworkAccess    string               `json:"publicNetworkAccess"`
	Tags                   map[string]string    `json:"tags,omitempty"`
	EnabledForDeployment   bool                 `json:"enabledForDeployment,omitempty"`
	EnabledForDiskEncrypt  bool                 `json:"enabledForDiskEncryption,omitempty"`
	EnabledForTemplateDepl bool                 `json:"enabledForTemplateDeployment,omitempty"`
	CreatedBy              string               `json:"createdBy,omitempty"`
	CreatedByType          string               `json:"createdByType,omitempty"`
	Created                time.Time            `json:"created"`
	LastModifiedBy         string               `json:"lastModifiedBy,omitempty"`
	LastModifiedByType     string               `json:"lastModifiedByType,omitempty"`
	LastModified           time.Time            `json:"lastModified"`
}

// Eligibility is an eligible role assignment (PIM): the principal may
// activate the role at the scope, for at most MaxDuration at a time, with
// a justification, while the eligibility's own window is open.
type Eligibility struct {
	authz.Assignment
	MaxDuration time.Duration `json:"maxDuration"`
}

const (
	subsPrefix        = "sys/mgmt/subscriptions/"
	rgPrefix          = "sys/mgmt/resourcegroups/"
	assignmentsPrefix = "sys/authz/assignments/"
	eligiblePrefix    = "sys/authz/eligibility/"
	rolesPrefix       = "sys/authz/roles/"
	// DefaultMaxActivation bounds an activation when the eligibility does
	// not say otherwise (PIM's default is 8 hours).
	DefaultMaxActivation = 8 * time.Hour
	maxAccessPolicies    = 1024
)

// propsKey is where a vault's properties live in the vault's view.
const propsKey = "props"

// Service is the management plane's domain: records and the index.
type Service struct {
	store  Store
	sys    *barrier.View // the system namespace
	dir    *identity.Directory
	vaults *vault.Service
	engine *authz.Engine
	clock  clock.Clock

	// pools serve Microsoft.KeyVault/managedHSMs (arm_mhsm.go); nil: none.
	pools   *mhsm.Service
	poolURL func(string) string

	auditSrc AuditSource // the audit report API's log (arm_audit.go); nil: none

	// The alert rule API (arm_alertrules.go): the config's destination
	// names and the engine's loader; nil apply: no API.
	alertDests []string
	alertApply func([]alerts.Rule)

	mu sync.Mutex // serializes read-modify-write of records and reloads
}

// New returns a Service.
func New(store Store, dir *identity.Directory, vaults *vault.Service, engine *authz.Engine, clk clock.Clock) *Service {
	return &Service{store: store, sys: store.System(), dir: dir, vaults: vaults, engine: engine, clock: clk}
}

// Engine is the authorizer whose index this service maintains.
func (s *Service) Engine() *authz.Engine { return s.engine }

// Directory is the identity directory.
func (s *Service) Directory() *identity.Directory { return s.dir }

// Vaults is the vault domain service.
func (s *Service) Vaults() *vault.Service { return s.vaults }

func getJSON(tx barrier.Tx, key string, v any) error {
	raw, err := tx.Get(key)
	if err != nil {
		return err
	}
	defer clear(raw)
	return json.Unmarshal(raw, v)
}

func putJSON(tx barrier.Tx, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	defer clear(raw)
	return tx.Put(key, raw)
}

func scanJSON[T any](tx barrier.Tx, prefix string, fn func(*T)) error {
	return tx.Scan(prefix, "", func(_ string, raw []byte) bool {
		v := new(T)
		if json.Unmarshal(raw, v) == nil {
			fn(v)
		}
		return true
	})
}

// Reload rebuilds the authorization index from storage and swaps it in.
func (s *Service) Reload(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(ctx)
}

func (s *Service) reloadLocked(ctx context.Context) error {
	var snap authz.Snapshot
	ps, err := s.dir.Principals(ctx)
	if err != nil {
		return fmt.Errorf("mgmt: loading principals: %w", err)
	}
	for _, p := range ps {
		snap.Principals = append(snap.Principals, authz.PrincipalRecord{TenantID: p.TenantID, ObjectID: p.ObjectID,
			Kind: p.Kind, Groups: p.Groups, Trusted: p.Trusted})
	}
	vaults := s.vaults.Vaults()
	err = s.sys.View(ctx, func(tx barrier.Tx) error {
		if err := scanJSON(tx, rolesPrefix, func(r *authz.RoleDefinition) { snap.Roles = append(snap.Roles, *r) }); err != nil {
			return err
		}
		if err := scanJSON(tx, assignmentsPrefix, func(a *authz.Assignment) { snap.Assignments = append(snap.Assignments, *a) }); err != nil {
			return err
		}
		for _, v := range vaults {
			p, err := s.propsTx(tx, v)
			if err != nil {
				return err
			}
			snap.Vaults = append(snap.Vaults, policyOf(v, p))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mgmt: loading authorization records: %w", err)
	}
	idx, err := authz.Build(snap)
	if err != nil {
		return err
	}
	s.engine.Swap(idx)
	return nil
}

// propsTx reads a vault's properties; a vault made before the management
// plane existed (or by the data-plane foundation) is an RBAC vault with
// open network rules.
func (s *Service) propsTx(tx barrier.Tx, v *vault.Vault) (*VaultProps, error) {
	p := new(VaultProps)
	err := getJSON(s.store.Vault(v.ID).In(tx), propsKey, p)
	if errors.Is(err, storage.ErrNotFound) {
		return &VaultProps{RBAC: true, DefaultAction: "Allow", Bypass: "AzureServices", PublicNetworkAccess: "Enabled",
			AccessPolicies: []authz.AccessPolicy{}, Created: v.Created, LastModified: v.Created}, nil
	}
	return p, err
}

func policyOf(v *vault.Vault, p *VaultProps) authz.VaultPolicy {
	vp := authz.VaultPolicy{Name: v.Name, TenantID: v.TenantID, RBAC: p.RBAC, AccessPolicies: p.AccessPolicies,
		Network: authz.NetworkRules{DefaultAction: p.DefaultAction, Bypass: p.Bypass,
			PublicDisabled: strings.EqualFold(p.PublicNetworkAccess, "Disabled")}}
	for _, r := range p.IPRules {
		if pr, err := authz.ParseIPRule(r); err == nil {
			vp.Network.IPRules = append(vp.Network.IPRules, pr)
		}
	}
	return vp
}

// Props returns the properties of vault v.
func (s *Service) Props(ctx context.Context, v *vault.Vault) (*VaultProps, error) {
	var p *VaultProps
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		var err error
		p, err = s.propsTx(tx, v)
		return err
	})
	return p, err
}

// --- subscriptions and resource groups ---

// CreateSubscription records a subscription of tenant (id empty:
// generated).
func (s *Service) CreateSubscription(ctx context.Context, tenant, id, displayName string) (*Subscription, error) {
	if id == "" {
		id = identity.NewID()
	}
	sub := &Subscription{ID: strings.ToLower(id), TenantID: strings.ToLower(tenant), DisplayName: displayName,
		State: "Enabled", Created: s.clock.Now().UTC()}
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(subsPrefix + sub.ID); err == nil {
			return nil // idempotent
		}
		return putJSON(tx, subsPrefix+sub.ID, sub)
	})
	if err != nil {
		return nil, err
	}
	return s.Subscription(ctx, sub.ID)
}

// Subscription returns subscription id.
func (s *Service) Subscription(ctx context.Context, id string) (*Subscription, error) {
	sub := new(Subscription)
	err := s.sys.View(ctx, func(tx barrier.Tx) error { return getJSON(tx, subsPrefix+strings.ToLower(id), sub) })
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// Subscriptions lists the subscriptions of tenant.
func (s *Service) Subscriptions(ctx context.Context, tenant string) ([]*Subscription, error) {
	var out []*Subscription
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return scanJSON(tx, subsPrefix, func(sub *Subscription) {
			if strings.EqualFold(sub.TenantID, tenant) {
				out = append(out, sub)
			}
		})
	})
	return out, err
}

func rgKey(sub, name string) string {
	return rgPrefix + strings.ToLower(sub) + "/" + strings.ToLower(name)
}

// PutResourceGroup creates or updates a resource group.
func (s *Service) PutResourceGroup(ctx context.Context, rg ResourceGroup) (*ResourceGroup, bool, error) {
	created := false
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		old := new(ResourceGroup)
		err := getJSON(tx, rgKey(rg.SubscriptionID, rg.Name), old)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			created = true
			rg.Created = s.clock.Now().UTC()
		case err != nil:
			return err
		default:
			rg.Name, rg.Created = old.Name, old.Created
		}
		return putJSON(tx, rgKey(rg.SubscriptionID, rg.Name), &rg)
	})
	if err != nil {
		return nil, false, err
	}
	return &rg, created, nil
}

// ResourceGroup returns a resource group.
func (s *Service) ResourceGroup(ctx context.Context, sub, name string) (*ResourceGroup, error) {
	rg := new(ResourceGroup)
	err := s.sys.View(ctx, func(tx barrier.Tx) error { return getJSON(tx, rgKey(sub, name), rg) })
	if err != nil {
		return nil, err
	}
	return rg, nil
}

// ResourceGroups lists the resource groups of a subscription.
func (s *Service) ResourceGroups(ctx context.Context, sub string) ([]*ResourceGroup, error) {
	var out []*ResourceGroup
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return scanJSON(tx, rgPrefix+strings.ToLower(sub)+"/", func(rg *ResourceGroup) { out = append(out, rg) })
	})
	return out, err
}

// DeleteResourceGroup deletes an empty resource group.
func (s *Service) DeleteResourceGroup(ctx context.Context, sub, name string) error {
	for _, v := range s.vaults.Vaults() {
		if strings.EqualFold(v.SubscriptionID, sub) && strings.EqualFold(v.ResourceGroup, name) {
			return errConflict("ResourceGroupNotEmpty", "The resource group '%s' still contains vaults; delete them first.", name)
		}
	}
	return s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(rgKey(sub, name)); err != nil {
			return err
		}
		return tx.Delete(rgKey(sub, name))
	})
}

// --- vaults created outside the ARM handlers (bootstrap, tests) ---

// CreateVault creates a vault with its properties and rebuilds the index.
func (s *Service) CreateVault(ctx context.Context, v vault.Vault, props VaultProps) (*vault.Vault, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.vaults.DeletedVault(ctx, v.Name); err == nil {
		return nil, errConflict("ConflictError", "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault.")
	}
	nv, err := s.vaults.CreateVault(ctx, v)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	if props.Created.IsZero() {
		props.Created = now
	}
	props.LastModified = now
	normalizeProps(&props)
	if err := s.sys.Update(ctx, func(tx barrier.Tx) error { return putJSON(s.store.Vault(nv.ID).In(tx), propsKey, &props) }); err != nil {
		return nil, err
	}
	return nv, s.reloadLocked(ctx)
}

func normalizeProps(p *VaultProps) {
	if p.DefaultAction == "" {
		p.DefaultAction = "Allow"
	}
	if p.Bypass == "" {
		p.Bypass = "AzureServices"
	}
	if p.PublicNetworkAccess == "" {
		p.PublicNetworkAccess = "Enabled"
	}
	if p.AccessPolicies == nil {
		p.AccessPolicies = []authz.AccessPolicy{}
	}
}

// SetVaultProps replaces the properties of vault v and rebuilds the index.
func (s *Service) SetVaultProps(ctx context.Context, v *vault.Vault, fn func(*VaultProps) error) (*VaultProps, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var p *VaultProps
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		var err error
		if p, err = s.propsTx(tx, v); err != nil {
			return err
		}
		if err := fn(p); err != nil {
			return err
		}
		normalizeProps(p)
		p.LastModified = s.clock.Now().UTC()
		return putJSON(s.store.Vault(v.ID).In(tx), propsKey, p)
	})
	if err != nil {
		return nil, err
	}
	return p, s.reloadLocked(ctx)
}

// --- role assignments ---

// Assign stores a role assignment (active, optionally time-bound) and
// rebuilds the index. The caller has authorized it.
func (s *Service) Assign(ctx context.Context, a authz.Assignment) (*authz.Assignment, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.assignLocked(ctx, a)
	if err != nil {
		return nil, err
	}
	return out, s.reloadLocked(ctx)
}

func (s *Service) assignLocked(ctx context.Context, a authz.Assignment) (*authz.Assignment, error) {
	if a.ID == "" {
		a.ID = identity.NewID()
	}
	a.ID = strings.ToLower(a.ID)
	a.TenantID = strings.ToLower(a.TenantID)
	a.PrincipalID = strings.ToLower(a.PrincipalID)
	a.RoleDefinitionID = authz.RoleGUID(a.RoleDefinitionID)
	if a.Created.IsZero() {
		a.Created = s.clock.Now().UTC()
	}
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		var dup *authz.Assignment
		if err := scanJSON(tx, assignmentsPrefix, func(x *authz.Assignment) {
			if x.ID != a.ID && x.TenantID == a.TenantID && x.PrincipalID == a.PrincipalID &&
				x.RoleDefinitionID == a.RoleDefinitionID && strings.EqualFold(x.Scope, a.Scope) &&
				x.Start == nil && x.End == nil && a.Start == nil && a.End == nil {
				dup = x
			}
		}); err != nil {
			return err
		}
		if dup != nil {
			return errConflict("RoleAssignmentExists", "The role assignment already exists. The ID of the existing role assignment is %s.", dup.ID)
		}
		old := new(authz.Assignment)
		if err := getJSON(tx, assignmentsPrefix+a.ID, old); err == nil {
			if old.PrincipalID != a.PrincipalID || old.RoleDefinitionID != a.RoleDefinitionID || !strings.EqualFold(old.Scope, a.Scope) {
				return errConflict("RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
			}
			a.Created = old.Created
		}
		return putJSON(tx, assignmentsPrefix+a.ID, &a)
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// Assignment returns the role assignment id.
func (s *Service) Assignment(ctx context.Context, id string) (*authz.Assignment, error) {
	a := new(authz.Assignment)
	err := s.sys.View(ctx, func(tx barrier.Tx) error { return getJSON(tx, assignmentsPrefix+strings.ToLower(id), a) })
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Assignments lists the role assignments of tenant.
func (s *Service) Assignments(ctx context.Context, tenant string) ([]*authz.Assignment, error) {
	var out []*authz.Assignment
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return scanJSON(tx, assignmentsPrefix, func(a *authz.Assignment) {
			if strings.EqualFold(a.TenantID, tenant) {
				out = append(out, a)
			}
		})
	})
	return out, err
}

// Unassign deletes a role assignment and rebuilds the index.
func (s *Service) Unassign(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(assignmentsPrefix + strings.ToLower(id)); err != nil {
			return err
		}
		return tx.Delete(assignmentsPrefix + strings.ToLower(id))
	})
	if err != nil {
		return err
	}
	return s.reloadLocked(ctx)
}

// unassignUnder deletes every assignment at or below scope (a purged
// vault's, so a new vault of the same name inherits nothing).
func (s *Service) unassignUnder(ctx context.Context, scope string) error {
	scope = strings.ToLower(strings.TrimSuffix(scope, "/"))
	return s.sys.Update(ctx, func(tx barrier.Tx) error {
		var ids []string
		for _, prefix := range []string{assignmentsPrefix, eligiblePrefix} {
			if err := tx.Scan(prefix, "", func(k string, raw []byte) bool {
				var a authz.Assignment
				if json.Unmarshal(raw, &a) == nil {
					sc := strings.ToLower(a.Scope)
					if sc == scope || strings.HasPrefix(sc, scope+"/") {
						ids = append(ids, k)
					}
				}
				return true
			}); err != nil {
				return err
			}
		}
		for _, k := range ids {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// --- eligible assignments (PIM) ---

// AddEligibility stores an eligible assignment.
func (s *Service) AddEligibility(ctx context.Context, e Eligibility) (*Eligibility, error) {
	if e.ID == "" {
		e.ID = identity.NewID()
	}
	e.ID = strings.ToLower(e.ID)
	e.TenantID, e.PrincipalID = strings.ToLower(e.TenantID), strings.ToLower(e.PrincipalID)
	e.RoleDefinitionID = authz.RoleGUID(e.RoleDefinitionID)
	if e.MaxDuration <= 0 || e.MaxDuration > 24*time.Hour {
		e.MaxDuration = DefaultMaxActivation
	}
	e.Created = s.clock.Now().UTC()
	err := s.sys.Update(ctx, func(tx barrier.Tx) error { return putJSON(tx, eligiblePrefix+e.ID, &e) })
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Eligibilities lists the eligible assignments of tenant.
func (s *Service) Eligibilities(ctx context.Context, tenant string) ([]*Eligibility, error) {
	var out []*Eligibility
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return scanJSON(tx, eligiblePrefix, func(e *Eligibility) {
			if strings.EqualFold(e.TenantID, tenant) {
				out = append(out, e)
			}
		})
	})
	return out, err
}

// RemoveEligibility deletes an eligible assignment.
func (s *Service) RemoveEligibility(ctx context.Context, id string) error {
	return s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(eligiblePrefix + strings.ToLower(id)); err != nil {
			return err
		}
		return tx.Delete(eligiblePrefix + strings.ToLower(id))
	})
}

// --- custom role definitions ---

// PutRole stores a custom role definition.
func (s *Service) PutRole(ctx context.Context, r authz.RoleDefinition) (*authz.RoleDefinition, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.ID = authz.RoleGUID(r.ID)
	if _, ok := authz.BuiltinRole(r.ID); ok {
		return nil, false, errBad("RoleDefinitionIdIsReserved", "The role definition ID '%s' is a built-in role.", r.ID)
	}
	if _, ok := authz.BuiltinRoleByName(r.Name); ok {
		return nil, false, errConflict("RoleDefinitionWithSameNameExists", "A role definition cannot be updated with a name that already exists.")
	}
	created := false
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		var clash bool
		if err := scanJSON(tx, rolesPrefix, func(x *authz.RoleDefinition) {
			if x.ID != r.ID && strings.EqualFold(x.TenantID, r.TenantID) && strings.EqualFold(x.Name, r.Name) {
				clash = true
			}
		}); err != nil {
			return err
		}
		if clash {
			return errConflict("RoleDefinitionWithSameNameExists", "A role definition cannot be updated with a name that already exists.")
		}
		old := new(authz.RoleDefinition)
		if err := getJSON(tx, rolesPrefix+r.ID, old); err == nil {
			if !strings.EqualFold(old.TenantID, r.TenantID) {
				return errNotFound("RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", r.ID)
			}
		} else {
			created = true
		}
		return putJSON(tx, rolesPrefix+r.ID, &r)
	})
	if err != nil {
		return nil, false, err
	}
	return &r, created, s.reloadLocked(ctx)
}

// CustomRoles lists the custom roles of tenant.
func (s *Service) CustomRoles(ctx context.Context, tenant string) ([]*authz.RoleDefinition, error) {
	var out []*authz.RoleDefinition
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return scanJSON(tx, rolesPrefix, func(r *authz.RoleDefinition) {
			if strings.EqualFold(r.TenantID, tenant) {
				out = append(out, r)
			}
		})
	})
	return out, err
}

// Role returns the built-in or tenant's custom role id.
func (s *Service) Role(ctx context.Context, tenant, id string) (*authz.RoleDefinition, error) {
	if r, ok := authz.BuiltinRole(id); ok {
		return &r, nil
	}
	r := new(authz.RoleDefinition)
	err := s.sys.View(ctx, func(tx barrier.Tx) error { return getJSON(tx, rolesPrefix+authz.RoleGUID(id), r) })
	if err != nil || !strings.EqualFold(r.TenantID, tenant) {
		return nil, errNotFound("RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", authz.RoleGUID(id))
	}
	return r, nil
}

// DeleteRole deletes a custom role that nothing is assigned.
func (s *Service) DeleteRole(ctx context.Context, tenant, id string) (*authz.RoleDefinition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = authz.RoleGUID(id)
	r := new(authz.RoleDefinition)
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		if err := getJSON(tx, rolesPrefix+id, r); err != nil || !strings.EqualFold(r.TenantID, tenant) {
			return errNotFound("RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", id)
		}
		used := false
		if err := scanJSON(tx, assignmentsPrefix, func(a *authz.Assignment) { used = used || a.RoleDefinitionID == id }); err != nil {
			return err
		}
		if used {
			return errConflict("RoleDefinitionHasAssignments", "There are existing role assignments referencing role (code: RoleDefinitionHasAssignments).")
		}
		return tx.Delete(rolesPrefix + id)
	})
	if err != nil {
		return nil, err
	}
	return r, s.reloadLocked(ctx)
}

// --- vault deletion with cleanup ---

// PurgeVault purges a soft-deleted vault and removes the role assignments
// at or below its scope.
func (s *Service) PurgeVault(ctx context.Context, name string) error {
	dv, err := s.vaults.DeletedVault(ctx, name)
	if err != nil {
		return err
	}
	if err := s.vaults.PurgeVault(ctx, name, false); err != nil {
		return err
	}
	v := dv.Vault
	scope := authz.Scope{SubscriptionID: v.SubscriptionID, ResourceGroup: v.ResourceGroup, Vault: v.Name}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.unassignUnder(ctx, scope.String()); err != nil {
		return err
	}
	return s.reloadLocked(ctx)
}

// PurgeDue purges soft-deleted vaults whose retention has ended (the
// scheduler calls it), then rebuilds the index.
func (s *Service) PurgeDue(ctx context.Context) (int, error) {
	dvs, err := s.vaults.DeletedVaults(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	now := s.clock.Now()
	for _, dv := range dvs {
		if now.Before(dv.ScheduledPurgeDate) {
			continue
		}
		if err := s.vaults.PurgeVault(ctx, dv.Vault.Name, true); err != nil {
			return n, err
		}
		v := dv.Vault
		if err := s.unassignUnder(ctx, authz.Scope{SubscriptionID: v.SubscriptionID, ResourceGroup: v.ResourceGroup, Vault: v.Name}.String()); err != nil {
			return n, err
		}
		n++
	}
	if n > 0 {
		return n, s.Reload(ctx)
	}
	return 0, nil
}
