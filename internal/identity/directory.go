// Package identity is Keyward's Entra-compatible authority: the directory
// of tenants and principals, the token service (OIDC discovery, JWKS, the
// OAuth 2.0 token endpoint) and validation of the tokens it issues.
//
// It speaks the wire format of Microsoft Entra ID as MSAL and azidentity
// expect it (../shared/IDENTITY.md §1, §6, §9): tokens are RS256 JWTs whose
// issuer is the discovery document's issuer, signed by persistent keys kept
// behind the barrier and rotated with old keys kept in the JWKS.
//
// It never stores a client secret, only a salted hash, and never logs a
// secret or a token.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// Store is the part of the barrier the directory needs.
type Store interface {
	View(ctx context.Context, fn func(barrier.Tx) error) error
	Update(ctx context.Context, fn func(barrier.Tx) error) error
}

var (
	// ErrNotFound means the tenant or principal does not exist.
	ErrNotFound = errors.New("identity: not found")
	// ErrInvalidCredential means a client secret did not match.
	ErrInvalidCredential = errors.New("identity: invalid client credential")
)

// Tenant is an organisation.
type Tenant struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"displayName"`
	Created     time.Time `json:"created"`
}

// ServicePrincipal is an application's identity in a tenant. AppID is the
// client_id clients authenticate with; ObjectID is what authorization keys on.
type ServicePrincipal struct {
	TenantID    string         `json:"tenantId"`
	ObjectID    string         `json:"objectId"`
	AppID       string         `json:"appId"`
	DisplayName string         `json:"displayName"`
	Secrets     []ClientSecret `json:"secrets"`
	Created     time.Time      `json:"created"`

	// The fields below are added by principals.go (certificates, federated
	// credentials, managed identities, trusted services).
	PrincipalExt

	// TokenFailures are recent failed authentications of this client at
	// the token endpoint, by source (tokenlimits.go): stored with the
	// client so that a lockout holds on every node of a cluster.
	TokenFailures map[string]*SourceFailures `json:"tokenFailures,omitempty"`
}

// ClientSecret is a stored client secret: only a salted SHA-256 hash of
// it. Client secrets are 256-bit random values, so a fast hash does not
// make guessing feasible; the salt keeps equal hashes from showing.
type ClientSecret struct {
	ID      string     `json:"id"`
	Hint    string     `json:"hint"` // first three characters, as Entra shows them
	Salt    []byte     `json:"salt"`
	Hash    []byte     `json:"hash"`
	Created time.Time  `json:"created"`
	Expires *time.Time `json:"expires,omitempty"`
}

func tenantKey(id string) string { return "sys/identity/tenants/" + strings.ToLower(id) }
func appKey(tenant, appID string) string {
	return "sys/identity/apps/" + strings.ToLower(tenant) + "/" + strings.ToLower(appID)
}

// Directory stores tenants and principals behind the barrier.
type Directory struct {
	store Store
}

// NewDirectory returns a Directory over store.
func NewDirectory(store Store) *Directory { return &Directory{store: store} }

// NewID returns a random GUID in Entra's lower-case form.
func NewID() string { return uuid.NewString() }

// CreateTenant stores a new tenant. An empty ID is generated.
func (d *Directory) CreateTenant(ctx context.Context, t Tenant) (*Tenant, error) {
	if t.ID == "" {
		t.ID = NewID()
	}
	if _, err := uuid.Parse(t.ID); err != nil {
		return nil, fmt.Errorf("identity: tenant ID must be a GUID")
	}
	t.ID = strings.ToLower(t.ID)
	return &t, put(ctx, d.store, tenantKey(t.ID), &t)
}

// Tenant returns the tenant with id.
func (d *Directory) Tenant(ctx context.Context, id string) (*Tenant, error) {
	t := new(Tenant)
	if err := get(ctx, d.store, tenantKey(id), t); err != nil {
		return nil, err
	}
	return t, nil
}

// CreateServicePrincipal creates an application and its service principal
// in tenant. IDs are generated.
func (d *Directory) CreateServicePrincipal(ctx context.Context, tenant, displayName string, now time.Time) (*ServicePrincipal, error) {
	if _, err := d.Tenant(ctx, tenant); err != nil {
		return nil, err
	}
	sp := &ServicePrincipal{
		TenantID:    strings.ToLower(tenant),
		ObjectID:    NewID(),
		AppID:       NewID(),
		DisplayName: displayName,
		Created:     now.UTC(),
	}
	return sp, put(ctx, d.store, appKey(sp.TenantID, sp.AppID), sp)
}

// ServicePrincipal returns the service principal of the application appID.
func (d *Directory) ServicePrincipal(ctx context.Context, tenant, appID string) (*ServicePrincipal, error) {
	sp := new(ServicePrincipal)
	if err := get(ctx, d.store, appKey(tenant, appID), sp); err != nil {
		return nil, err
	}
	return sp, nil
}

// AddClientSecret creates a new client secret for the application and
// returns its value. The value is shown once: only its hash is stored.
func (d *Directory) AddClientSecret(ctx context.Context, tenant, appID string, now time.Time, expires *time.Time) (string, error) {
	raw := make([]byte, 32)
	rand.Read(raw)
	value := base64.RawURLEncoding.EncodeToString(raw)
	salt := make([]byte, 16)
	rand.Read(salt)
	cs := ClientSecret{ID: NewID(), Hint: value[:3], Salt: salt, Hash: hashSecret(salt, value), Created: now.UTC(), Expires: expires}
	err := d.store.Update(ctx, func(tx barrier.Tx) error {
		sp := new(ServicePrincipal)
		if err := getTx(tx, appKey(tenant, appID), sp); err != nil {
			return err
		}
		sp.Secrets = append(sp.Secrets, cs)
		return putTx(tx, appKey(tenant, appID), sp)
	})
	if err != nil {
		return "", err
	}
	return value, nil
}

// AuthenticateSecret checks a client secret for appID in tenant. Every
// stored secret is compared in constant time; expired secrets never match.
func (d *Directory) AuthenticateSecret(ctx context.Context, tenant, appID, secret string, now time.Time) (*ServicePrincipal, error) {
	sp, err := d.ServicePrincipal(ctx, tenant, appID)
	if err != nil {
		return nil, err
	}
	match := 0
	for _, cs := range sp.Secrets {
		ok := subtle.ConstantTimeCompare(hashSecret(cs.Salt, secret), cs.Hash)
		if cs.Expires != nil && !now.Before(*cs.Expires) {
			ok = 0
		}
		match |= ok
	}
	if match != 1 {
		return nil, ErrInvalidCredential
	}
	return sp, nil
}

func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write([]byte("keyward/client-secret/v1\x00"))
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

func get(ctx context.Context, s Store, key string, v any) error {
	return s.View(ctx, func(tx barrier.Tx) error { return getTx(tx, key, v) })
}

func put(ctx context.Context, s Store, key string, v any) error {
	return s.Update(ctx, func(tx barrier.Tx) error { return putTx(tx, key, v) })
}

func getTx(tx barrier.Tx, key string, v any) error {
	raw, err := tx.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	defer clear(raw)
	return json.Unmarshal(raw, v)
}

func putTx(tx barrier.Tx, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	defer clear(raw)
	return tx.Put(key, raw)
}
