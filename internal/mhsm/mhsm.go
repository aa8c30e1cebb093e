// Package mhsm is the managed HSM pool domain (AZURE-API.md §5): the pool
// registry (the Microsoft.KeyVault/managedHSMs resource), each pool's local
// RBAC (role definitions and assignments, separate from Azure RBAC on
// vaults), its settings and its activation state. A pool's keys live in a
// vault.Vault of kind KindManagedHSM (its "container") and are served by
// internal/vault like a vault's.
//
// Storage: the registry in the system view (sys/mhsm/{name}); everything
// else in the container's barrier view (mhsm/rd/, mhsm/ra/, mhsm/set/,
// mhsm/job/ and mhsm/jobrun for backup and restore jobs), so
// that purging the pool destroys it with the keys.
package mhsm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// Store is what the domain needs from the barrier.
type Store interface {
	System() *barrier.View
	Vault(id string) *barrier.View
}

// Activation states (ARM securityDomainProperties.activationStatus).
const (
	NotActivated = "NotActivated"
	Active       = "Active"
)

// Pool is a managed HSM pool.
type Pool struct {
	Name                string            `json:"name"`
	TenantID            string            `json:"tenantId"`
	SubscriptionID      string            `json:"subscriptionId"`
	ResourceGroup       string            `json:"resourceGroup"`
	Location            string            `json:"location"`
	SKU                 string            `json:"sku"`
	InitialAdmins       []string          `json:"initialAdminObjectIds"`
	Tags                map[string]string `json:"tags,omitempty"`
	PublicNetworkAccess string            `json:"publicNetworkAccess"`
	RetentionDays       int               `json:"softDeleteRetentionInDays"`
	PurgeProtection     bool              `json:"enablePurgeProtection"`
	Status              string            `json:"activationStatus"`
	StatusMessage       string            `json:"activationStatusMessage"`
	Created             time.Time         `json:"created"`
	Deleted             *time.Time        `json:"deleted,omitempty"`
	ScheduledPurge      *time.Time        `json:"scheduledPurge,omitempty"`
	// Container holds the pool's keys (vault/pools.go).
	Container vault.Vault `json:"container"`
}

// Active reports whether the pool serves key operations.
func (p *Pool) Active() bool { return p.Status == Active }

// Error is a domain error: a kind, an Azure-independent code for the
// surfaces' tables, and a message without secrets.
type Error struct {
	Kind errs.Kind
	Code string
	Msg  string
}

func (e *Error) Error() string      { return e.Msg }
func (e *Error) ErrKind() errs.Kind { return e.Kind }
func fail(k errs.Kind, code, f string, a ...any) *Error {
	return &Error{Kind: k, Code: code, Msg: fmt.Sprintf(f, a...)}
}

var nameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

// ValidName reports whether name is a valid pool name (3-24 characters,
// letters, digits and dashes, starting with a letter).
func ValidName(name string) bool { return nameRE.MatchString(name) && !strings.Contains(name, "--") }

// Service is the pool domain service.
type Service struct {
	store  Store
	sys    *barrier.View
	vaults *vault.Service
	clock  clock.Clock

	mu    sync.RWMutex
	pools map[string]*Pool // by lower-case name, deleted ones too
	// lastReload limits registry re-reads for unknown names to one a
	// second, so requests for names that do not exist cannot each scan.
	lastReload time.Time

	// backup.go
	opener Opener
	// log reports what cannot reach a caller (nil: nothing).
	log func(msg string, args ...any)
}

// SetLogger sets where the service reports what cannot reach a caller.
func (s *Service) SetLogger(log func(msg string, args ...any)) { s.log = log }

// New returns a Service.
func New(store Store, vaults *vault.Service, clk clock.Clock) *Service {
	s := &Service{store: store, sys: store.System(), vaults: vaults, clock: clk, pools: map[string]*Pool{}}
	vaults.SetPoolHandlesElsewhere(s.handlesElsewhere)
	return s
}

// handlesElsewhere is the set of token objects the keys of every pool but
// the one whose container is v hold (live or deleted pools, live or
// deleted keys): a full backup restored into another pool shares its HSM
// keys' objects, and purging one pool must not destroy the other's keys.
func (s *Service) handlesElsewhere(ctx context.Context, v *vault.Vault) (map[string]bool, error) {
	if err := s.Load(ctx); err != nil { // pools another node made
		return nil, err
	}
	s.mu.RLock()
	var others []vault.Vault
	for _, p := range s.pools {
		if p.Container.ID != v.ID {
			others = append(others, p.Container)
		}
	}
	s.mu.RUnlock()
	out := map[string]bool{}
	for i := range others {
		held, err := s.vaults.HSMHandles(ctx, &others[i])
		if err != nil {
			return nil, err
		}
		for _, h := range held {
			out[string(h)] = true
		}
	}
	return out, nil
}

const prefix = "sys/mhsm/"

// Load reads the registry (after unseal).
func (s *Service) Load(ctx context.Context) error {
	pools := map[string]*Pool{}
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return tx.Scan(prefix, "", func(_ string, val []byte) bool {
			p := new(Pool)
			if json.Unmarshal(val, p) == nil {
				pools[strings.ToLower(p.Name)] = p
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pools = pools
	s.mu.Unlock()
	return nil
}

func clone(p *Pool) *Pool {
	c := *p
	c.InitialAdmins = append([]string(nil), p.InitialAdmins...)
	return &c
}

func notFound(name string) error {
	return fail(errs.NotFound, "PoolNotFound", "Managed HSM %s was not found.", clip(name))
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func (s *Service) reloadDue() bool {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastReload) < time.Second && !now.Before(s.lastReload) {
		return false
	}
	s.lastReload = now
	return true
}

// Get returns the live pool named name.
func (s *Service) Get(name string) (*Pool, error) {
	s.mu.RLock()
	p := s.pools[strings.ToLower(name)]
	s.mu.RUnlock()
	if p == nil && ValidName(name) && s.reloadDue() {
		_ = s.Load(context.Background()) // another node may have created it
		s.mu.RLock()
		p = s.pools[strings.ToLower(name)]
		s.mu.RUnlock()
	}
	if p == nil || p.Deleted != nil {
		return nil, notFound(name)
	}
	return p, nil
}

// List returns the live pools (deleted: the soft-deleted ones), by name.
func (s *Service) List(deleted bool) []*Pool {
	s.mu.RLock()
	var out []*Pool
	for _, p := range s.pools {
		if (p.Deleted != nil) == deleted {
			out = append(out, p)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// GetDeleted returns a soft-deleted pool.
func (s *Service) GetDeleted(name string) (*Pool, error) {
	s.mu.RLock()
	p := s.pools[strings.ToLower(name)]
	s.mu.RUnlock()
	if p == nil || p.Deleted == nil {
		return nil, fail(errs.NotFound, "DeletedPoolNotFound", "Deleted managed HSM %s was not found.", clip(name))
	}
	return p, nil
}

func (s *Service) put(ctx context.Context, p *Pool, create bool) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	err = s.sys.Update(ctx, func(tx barrier.Tx) error {
		if create {
			if _, err := tx.Get(prefix + strings.ToLower(p.Name)); err == nil {
				return fail(errs.Conflict, "ConflictError", "A managed HSM named %s already exists (or is deleted and not yet purged).", p.Name)
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		return tx.Put(prefix+strings.ToLower(p.Name), raw)
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.pools[strings.ToLower(p.Name)] = p
	s.mu.Unlock()
	return nil
}

// Create makes a pool: NotActivated, its initial administrators holding
// Managed HSM Administrator at "/".
func (s *Service) Create(ctx context.Context, p Pool) (*Pool, error) {
	if !ValidName(p.Name) {
		return nil, fail(errs.BadParameter, "BadParameter", "The managed HSM name '%s' is invalid: 3-24 letters, digits and dashes, starting with a letter.", clip(p.Name))
	}
	if len(p.InitialAdmins) == 0 {
		return nil, fail(errs.BadParameter, "BadParameter", "initialAdminObjectIds must name at least one administrator.")
	}
	if p.RetentionDays == 0 {
		p.RetentionDays = 90
	}
	if p.RetentionDays < 7 || p.RetentionDays > 90 {
		return nil, fail(errs.BadParameter, "BadParameter", "softDeleteRetentionInDays must be between 7 and 90.")
	}
	if p.SKU == "" {
		p.SKU = "Standard_B1"
	}
	if p.PublicNetworkAccess == "" {
		p.PublicNetworkAccess = "Enabled"
	}
	id := make([]byte, 8)
	rand.Read(id)
	now := s.clock.Now().UTC()
	p.TenantID = strings.ToLower(p.TenantID)
	p.Status, p.StatusMessage, p.Created = NotActivated, "The managed HSM is not activated: download its security domain.", now
	p.Container = vault.Vault{ID: "mhsm-" + hex.EncodeToString(id), Name: p.Name, TenantID: p.TenantID,
		SubscriptionID: p.SubscriptionID, ResourceGroup: p.ResourceGroup, Location: p.Location, SKU: "premium",
		RetentionDays: p.RetentionDays, PurgeProtected: p.PurgeProtection, Created: now, Kind: vault.KindManagedHSM}
	if err := s.vaults.InitContainer(ctx, &p.Container); err != nil {
		return nil, err
	}
	for _, oid := range p.InitialAdmins {
		a := authz.HSMAssignment{ID: newGUID(), Scope: "/", RoleDefinitionID: authz.RoleHSMAdministrator, PrincipalID: strings.ToLower(oid)}
		if err := s.putJSON(ctx, &p, raKey(a.ID), &a); err != nil {
			return nil, err
		}
	}
	if err := s.put(ctx, &p, true); err != nil {
		return nil, err
	}
	return clone(&p), nil
}

// Update changes a live pool's properties through fn.
func (s *Service) Update(ctx context.Context, name string, fn func(*Pool) error) (*Pool, error) {
	cur, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	p := clone(cur)
	if err := fn(p); err != nil {
		return nil, err
	}
	if err := s.put(ctx, p, false); err != nil {
		return nil, err
	}
	return clone(p), nil
}

// Delete soft-deletes a pool: it leaves the data plane and can be
// recovered or purged until its retention ends.
func (s *Service) Delete(ctx context.Context, name string) error {
	_, err := s.Update(ctx, name, func(p *Pool) error {
		now := s.clock.Now().UTC()
		purge := now.AddDate(0, 0, p.RetentionDays)
		p.Deleted, p.ScheduledPurge = &now, &purge
		return nil
	})
	return err
}

// Recover undoes a soft delete.
func (s *Service) Recover(ctx context.Context, name string) (*Pool, error) {
	cur, err := s.GetDeleted(name)
	if err != nil {
		return nil, err
	}
	p := clone(cur)
	p.Deleted, p.ScheduledPurge = nil, nil
	return p, s.put(ctx, p, false)
}

// Purge destroys a soft-deleted pool and its keys for good.
func (s *Service) Purge(ctx context.Context, name string) error {
	p, err := s.GetDeleted(name)
	if err != nil {
		return err
	}
	if p.PurgeProtection && s.clock.Now().Before(*p.ScheduledPurge) {
		return fail(errs.Conflict, "PurgeProtected", "Managed HSM %s has purge protection: it is purged when its retention ends.", p.Name)
	}
	if err := s.vaults.PurgeContainer(ctx, &p.Container); err != nil {
		return err
	}
	err = s.sys.Update(ctx, func(tx barrier.Tx) error { return tx.Delete(prefix + strings.ToLower(p.Name)) })
	if err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.pools, strings.ToLower(p.Name))
	s.mu.Unlock()
	return nil
}

// PurgeDue purges soft-deleted pools whose retention has ended.
func (s *Service) PurgeDue(ctx context.Context) (int, error) {
	n := 0
	for _, p := range s.List(true) {
		if s.clock.Now().Before(*p.ScheduledPurge) {
			continue
		}
		if err := s.vaults.PurgeContainer(ctx, &p.Container); err != nil {
			return n, err
		}
		if err := s.sys.Update(ctx, func(tx barrier.Tx) error { return tx.Delete(prefix + strings.ToLower(p.Name)) }); err != nil {
			return n, err
		}
		s.mu.Lock()
		delete(s.pools, strings.ToLower(p.Name))
		s.mu.Unlock()
		n++
	}
	return n, nil
}

func newGUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Service) view(p *Pool) *barrier.View { return s.store.Vault(p.Container.ID) }

func (s *Service) putJSON(ctx context.Context, p *Pool, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.view(p).Update(ctx, func(tx barrier.Tx) error { return tx.Put(key, raw) })
}

func (s *Service) getJSON(ctx context.Context, p *Pool, key string, v any) error {
	return s.view(p).View(ctx, func(tx barrier.Tx) error {
		raw, err := tx.Get(key)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, v)
	})
}

func (s *Service) scanJSON(ctx context.Context, p *Pool, pfx string, each func(raw []byte)) error {
	return s.view(p).View(ctx, func(tx barrier.Tx) error {
		return tx.Scan(pfx, "", func(_ string, val []byte) bool { each(val); return true })
	})
}
