package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/storage"
)

// Store is what the domain needs from the barrier: the views of the
// namespaces it keeps its records in. The barrier owns the key layout.
type Store interface {
	// System holds the vault registry.
	System() *barrier.View
	// Vault holds everything in one vault; purging the vault destroys it.
	Vault(id string) *barrier.View
	// Tenant seals the tenant's backup blobs.
	Tenant(id string) *barrier.View
}

// Vault is a key vault: a container of keys, secrets and certificates that
// belongs to one tenant.
type Vault struct {
	ID             string    `json:"id"` // internal, never reused; names can be
	Name           string    `json:"name"`
	TenantID       string    `json:"tenantId"`
	SubscriptionID string    `json:"subscriptionId"`
	ResourceGroup  string    `json:"resourceGroup"`
	Location       string    `json:"location"`
	SKU            string    `json:"sku"` // "standard" or "premium"
	RetentionDays  int       `json:"softDeleteRetentionInDays"`
	PurgeProtected bool      `json:"enablePurgeProtection"`
	Created        time.Time `json:"created"`
	// Kind is "" for a vault, KindManagedHSM for a pool's key container
	// (pools.go), which is not in the vault registry.
	Kind string `json:"kind,omitempty"`
}

// RecoveryLevel is Azure's deletion recovery level for objects in v.
// It runs for every object a request returns, so it picks one of four
// constants instead of concatenating (an allocation per object).
func (v *Vault) RecoveryLevel() string {
	switch custom := v.RetentionDays < 90; {
	case custom && v.PurgeProtected:
		return "CustomizedRecoverable"
	case custom:
		return "CustomizedRecoverable+Purgeable"
	case v.PurgeProtected:
		return "Recoverable"
	}
	return "Recoverable+Purgeable"
}

var vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

// ValidVaultName reports whether name is a valid vault name (3-24
// characters, letters, digits and dashes, starting with a letter, not ending
// with a dash, no consecutive dashes).
func ValidVaultName(name string) bool {
	return vaultNameRE.MatchString(name) && !strings.Contains(name, "--")
}

// Service is the domain service.
type Service struct {
	store Store
	sys   *barrier.View // the vault registry
	clock clock.Clock

	software keys.Protector
	hsm      keys.Protector // nil: no HSM configured (-HSM keys refused)
	pool     keys.Protector // pools.go
	// poolHandlesElsewhere (pools.go) reports the token objects other
	// pools' containers hold.
	poolHandlesElsewhere func(ctx context.Context, v *Vault) (map[string]bool, error)
	ops                  *opCache
	decoded              *decodeCache // read-only records of the key-operation path
	vaultURL             func(name string) string
	release              *Release  // secure key release (release.go); nil: none configured
	attest               attestKey // the HSM instance attestation key (attestation.go)

	mu         sync.RWMutex
	vaults     map[string]*Vault // by lower-case name
	lastReload time.Time
}

// Deps are the Service's collaborators outside the domain. Each may be
// left nil. (Certificates' collaborators, the external CA and the mailer,
// are internal/certificates' Deps.)
type Deps struct {
	// HSM protects RSA-HSM and EC-HSM keys of premium vaults (nil: none
	// configured; such keys are refused).
	HSM keys.Protector
	// VaultURL is how clients address a vault, for event subjects and
	// mail (nil: https://{name}.vault.localhost/).
	VaultURL func(name string) string
	// Release configures secure key release (nil: releases are refused).
	Release *Release
}

// New returns a Service over store.
func New(store Store, clk clock.Clock, deps Deps) *Service {
	return &Service{store: store, sys: store.System(), clock: clk, vaults: map[string]*Vault{},
		software: keys.Software{}, hsm: deps.HSM, ops: newOpCache(10_000), decoded: newDecodeCache(4096),
		vaultURL: deps.VaultURL, release: deps.Release}
}

// in is the storage view of vault v: every key of the vault is relative
// to it.
func (s *Service) in(v *Vault) *barrier.View { return s.store.Vault(v.ID) }

// Unload forgets cached key material (on seal).
func (s *Service) Unload() {
	s.ops.clearAll()
	s.decoded.clearAll()
}

// Clock returns the service's clock.
func (s *Service) Clock() clock.Clock { return s.clock }

const vaultsPrefix = "sys/vaults/"

// Load reads the vault registry (after unseal).
func (s *Service) Load(ctx context.Context) error {
	vaults := map[string]*Vault{}
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return tx.Scan(vaultsPrefix, "", func(key string, val []byte) bool {
			v := new(Vault)
			if json.Unmarshal(val, v) == nil {
				vaults[strings.ToLower(v.Name)] = v
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.vaults = vaults
	s.mu.Unlock()
	return nil
}

// Vault returns the vault named name. A name this node does not know
// makes it re-read the registry once: another node may have created it.
func (s *Service) Vault(name string) (*Vault, error) {
	s.mu.RLock()
	v := s.vaults[strings.ToLower(name)]
	s.mu.RUnlock()
	if v == nil && ValidVaultName(name) && s.reloadOnMiss() {
		s.mu.RLock()
		v = s.vaults[strings.ToLower(name)]
		s.mu.RUnlock()
	}
	if v == nil {
		return nil, &Error{Kind: NotFound, Type: Vaults, Name: clip(name)}
	}
	return v, nil
}

// reloadOnMiss re-reads the registry, at most once a second (so that
// requests for names that do not exist cannot turn into a storage scan
// each), and reports whether it did.
func (s *Service) reloadOnMiss() bool {
	now := s.clock.Now()
	s.mu.Lock()
	if now.Sub(s.lastReload) < time.Second && !now.Before(s.lastReload) {
		s.mu.Unlock()
		return false
	}
	s.lastReload = now
	s.mu.Unlock()
	return s.Load(context.Background()) == nil
}

// Vaults returns every vault, sorted by name.
func (s *Service) Vaults() []*Vault {
	s.mu.RLock()
	out := make([]*Vault, 0, len(s.vaults))
	for _, v := range s.vaults {
		out = append(out, v)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// CreateVault creates a vault. RetentionDays defaults to 90 and must be 7-90.
func (s *Service) CreateVault(ctx context.Context, v Vault) (*Vault, error) {
	if !ValidVaultName(v.Name) {
		return nil, badParameter("The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.", clip(v.Name))
	}
	if v.RetentionDays == 0 {
		v.RetentionDays = 90
	}
	if v.RetentionDays < 7 || v.RetentionDays > 90 {
		return nil, badParameter("softDeleteRetentionInDays must be between 7 and 90.")
	}
	switch v.SKU {
	case "":
		v.SKU = "standard"
	case "standard", "premium":
	default:
		return nil, badParameter("sku must be standard or premium.")
	}
	id := make([]byte, 8)
	rand.Read(id)
	v.ID = hex.EncodeToString(id)
	v.TenantID = strings.ToLower(v.TenantID)
	now := s.clock.Now()
	v.Created = now.UTC()
	if err := s.in(&v).EnsureKeyring(ctx, now); err != nil {
		return nil, err
	}
	if err := s.store.Tenant(v.TenantID).EnsureKeyring(ctx, now); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(&v)
	if err != nil {
		return nil, err
	}
	err = s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(vaultsPrefix + strings.ToLower(v.Name)); err == nil {
			return &Error{Kind: Conflict, Type: Vaults, Name: v.Name, Reason: ReasonVaultExists}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return tx.Put(vaultsPrefix+strings.ToLower(v.Name), raw)
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.vaults[strings.ToLower(v.Name)] = &v
	s.mu.Unlock()
	return &v, nil
}
