package identity

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// Principal kinds.
const (
	KindUser             = "User"
	KindGroup            = "Group"
	KindServicePrincipal = "ServicePrincipal"
	KindManagedIdentity  = "ManagedIdentity"
)

// PrincipalExt is what service principals carry beyond a client secret.
type PrincipalExt struct {
	// Kind is KindServicePrincipal (also when empty) or KindManagedIdentity.
	Kind string `json:"kind,omitempty"`
	// MIType is "SystemAssigned" or "UserAssigned" for managed identities.
	MIType string `json:"miType,omitempty"`
	// ResourceID is the ARM ID of a managed identity (the token's
	// xms_mirid): the user-assigned identity resource, or the workload it
	// belongs to for a system-assigned one.
	ResourceID   string                `json:"resourceId,omitempty"`
	Certificates []ClientCertificate   `json:"certificates,omitempty"`
	Federated    []FederatedCredential `json:"federatedCredentials,omitempty"`
	// TrustedService marks a principal an administrator trusts to bypass
	// vault firewalls whose bypass is AzureServices.
	TrustedService bool `json:"trustedService,omitempty"`
}

// IsManagedIdentity reports whether sp is a managed identity: it has no
// credentials of its own and gets tokens only through a workload binding.
func (sp *ServicePrincipal) IsManagedIdentity() bool { return sp.Kind == KindManagedIdentity }

// ClientCertificate is a certificate an application proves possession of
// with a signed client assertion. Only the public certificate is stored.
type ClientCertificate struct {
	ID               string    `json:"id"`
	ThumbprintSHA256 []byte    `json:"x5tS256"`
	ThumbprintSHA1   []byte    `json:"x5t"`
	DER              []byte    `json:"der"`
	NotBefore        time.Time `json:"notBefore"`
	NotAfter         time.Time `json:"notAfter"`
	Added            time.Time `json:"added"`
}

// FederatedCredential trusts tokens of an external OIDC issuer for one
// exact subject and audience (IDENTITY.md §7): no wildcards.
type FederatedCredential struct {
	Name        string   `json:"name"`
	Issuer      string   `json:"issuer"`
	Subject     string   `json:"subject"`
	Audiences   []string `json:"audiences"`
	Description string   `json:"description,omitempty"`
}

// User is a person who signs in with a password and, once enrolled, a
// TOTP second factor.
type User struct {
	TenantID          string    `json:"tenantId"`
	ObjectID          string    `json:"objectId"`
	UserPrincipalName string    `json:"userPrincipalName"`
	DisplayName       string    `json:"displayName"`
	PasswordHash      string    `json:"passwordHash,omitempty"` // argon2id, PHC string
	TOTPSecret        []byte    `json:"totpSecret,omitempty"`   // stored behind the barrier
	LastTOTPStep      int64     `json:"lastTotpStep,omitempty"` // replay protection
	Disabled          bool      `json:"disabled,omitempty"`
	Created           time.Time `json:"created"`
	// FailedSignIns counts failed sign-ins since FailedSince, stored so
	// that every node of a cluster sees the same count (device.go).
	FailedSignIns int       `json:"failedSignIns,omitempty"`
	FailedSince   time.Time `json:"failedSince,omitzero"`
}

// MFAEnrolled reports whether the user has a TOTP second factor.
func (u *User) MFAEnrolled() bool { return len(u.TOTPSecret) > 0 }

// Group is a set of principals; groups may contain groups.
type Group struct {
	TenantID    string    `json:"tenantId"`
	ObjectID    string    `json:"objectId"`
	DisplayName string    `json:"displayName"`
	Members     []string  `json:"members"` // object IDs
	Created     time.Time `json:"created"`
}

// ErrConflict means a name or credential already exists.
var ErrConflict = errors.New("identity: already exists")

// ErrInvalid wraps a validation failure; its message is safe to show.
type ErrInvalid struct{ Msg string }

func (e *ErrInvalid) Error() string { return e.Msg }

func invalid(format string, args ...any) error { return &ErrInvalid{Msg: fmt.Sprintf(format, args...)} }

func userKey(tenant, oid string) string {
	return "sys/identity/users/" + strings.ToLower(tenant) + "/" + strings.ToLower(oid)
}
func groupKey(tenant, oid string) string {
	return "sys/identity/groups/" + strings.ToLower(tenant) + "/" + strings.ToLower(oid)
}

var upnRE = regexp.MustCompile(`^[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,190}$`)

// CreateUser adds a user with a password (hashed with argon2id).
func (d *Directory) CreateUser(ctx context.Context, tenant, upn, displayName, password string, now time.Time) (*User, error) {
	if !upnRE.MatchString(upn) {
		return nil, invalid("userPrincipalName must look like name@domain")
	}
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	if _, err := d.Tenant(ctx, tenant); err != nil {
		return nil, err
	}
	if u, _ := d.UserByName(ctx, tenant, upn); u != nil {
		return nil, ErrConflict
	}
	hash, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &User{TenantID: strings.ToLower(tenant), ObjectID: NewID(), UserPrincipalName: strings.ToLower(upn),
		DisplayName: displayName, PasswordHash: hash, Created: now.UTC()}
	return u, put(ctx, d.store, userKey(u.TenantID, u.ObjectID), u)
}

// User returns the user with object ID oid.
func (d *Directory) User(ctx context.Context, tenant, oid string) (*User, error) {
	u := new(User)
	if err := get(ctx, d.store, userKey(tenant, oid), u); err != nil {
		return nil, err
	}
	return u, nil
}

// UserByName finds a user by userPrincipalName (case-insensitive).
func (d *Directory) UserByName(ctx context.Context, tenant, upn string) (*User, error) {
	return findRecord(ctx, d.store, "sys/identity/users/"+strings.ToLower(tenant)+"/", func(u *User) bool {
		return strings.EqualFold(u.UserPrincipalName, upn)
	})
}

// UpdateUser applies fn to the stored user in one transaction.
func (d *Directory) UpdateUser(ctx context.Context, tenant, oid string, fn func(*User) error) (*User, error) {
	u := new(User)
	err := d.store.Update(ctx, func(tx barrier.Tx) error {
		if err := getTx(tx, userKey(tenant, oid), u); err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
		return putTx(tx, userKey(tenant, oid), u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// CreateGroup adds an empty group.
func (d *Directory) CreateGroup(ctx context.Context, tenant, displayName string, now time.Time) (*Group, error) {
	if displayName == "" || len(displayName) > 256 {
		return nil, invalid("displayName must be 1-256 characters")
	}
	if _, err := d.Tenant(ctx, tenant); err != nil {
		return nil, err
	}
	g := &Group{TenantID: strings.ToLower(tenant), ObjectID: NewID(), DisplayName: displayName, Members: []string{}, Created: now.UTC()}
	return g, put(ctx, d.store, groupKey(g.TenantID, g.ObjectID), g)
}

// Group returns the group with object ID oid.
func (d *Directory) Group(ctx context.Context, tenant, oid string) (*Group, error) {
	g := new(Group)
	if err := get(ctx, d.store, groupKey(tenant, oid), g); err != nil {
		return nil, err
	}
	return g, nil
}

// AddMember adds the principal member (any kind, groups included) to the
// group. The member must exist.
func (d *Directory) AddMember(ctx context.Context, tenant, groupID, member string) error {
	if _, err := uuid.Parse(member); err != nil {
		return invalid("member must be an object ID")
	}
	if k, _ := d.KindOf(ctx, tenant, member); k == "" {
		return ErrNotFound
	}
	return d.store.Update(ctx, func(tx barrier.Tx) error {
		g := new(Group)
		if err := getTx(tx, groupKey(tenant, groupID), g); err != nil {
			return err
		}
		m := strings.ToLower(member)
		for _, x := range g.Members {
			if x == m {
				return nil
			}
		}
		if len(g.Members) >= 10000 {
			return invalid("a group has at most 10000 members")
		}
		g.Members = append(g.Members, m)
		return putTx(tx, groupKey(tenant, groupID), g)
	})
}

// RemoveMember removes member from the group.
func (d *Directory) RemoveMember(ctx context.Context, tenant, groupID, member string) error {
	return d.store.Update(ctx, func(tx barrier.Tx) error {
		g := new(Group)
		if err := getTx(tx, groupKey(tenant, groupID), g); err != nil {
			return err
		}
		out := g.Members[:0]
		for _, x := range g.Members {
			if !strings.EqualFold(x, member) {
				out = append(out, x)
			}
		}
		g.Members = out
		return putTx(tx, groupKey(tenant, groupID), g)
	})
}

// ServicePrincipalByObjectID finds a service principal or managed identity
// by object ID.
func (d *Directory) ServicePrincipalByObjectID(ctx context.Context, tenant, oid string) (*ServicePrincipal, error) {
	return findRecord(ctx, d.store, "sys/identity/apps/"+strings.ToLower(tenant)+"/", func(sp *ServicePrincipal) bool {
		return strings.EqualFold(sp.ObjectID, oid)
	})
}

// KindOf returns the kind of the principal with object ID oid, or "" if
// there is none.
func (d *Directory) KindOf(ctx context.Context, tenant, oid string) (string, error) {
	if _, err := d.User(ctx, tenant, oid); err == nil {
		return KindUser, nil
	}
	if _, err := d.Group(ctx, tenant, oid); err == nil {
		return KindGroup, nil
	}
	sp, err := d.ServicePrincipalByObjectID(ctx, tenant, oid)
	if err == nil {
		if sp.IsManagedIdentity() {
			return KindManagedIdentity, nil
		}
		return KindServicePrincipal, nil
	}
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return "", err
}

// DeletePrincipal deletes the user, group, service principal or managed
// identity with object ID oid, and removes it from every group. Its
// tokens stop working as soon as the authorization index is rebuilt
// (the caller does that), even before they expire.
func (d *Directory) DeletePrincipal(ctx context.Context, tenant, oid string) (kind string, err error) {
	kind, err = d.KindOf(ctx, tenant, oid)
	if err != nil {
		return "", err
	}
	if kind == "" {
		return "", ErrNotFound
	}
	t := strings.ToLower(tenant)
	err = d.store.Update(ctx, func(tx barrier.Tx) error {
		switch kind {
		case KindUser:
			if err := tx.Delete(userKey(t, oid)); err != nil {
				return err
			}
		case KindGroup:
			if err := tx.Delete(groupKey(t, oid)); err != nil {
				return err
			}
		default:
			var key string
			if err := tx.Scan("sys/identity/apps/"+t+"/", "", func(k string, v []byte) bool {
				sp := new(ServicePrincipal)
				if jsonUnmarshal(v, sp) == nil && strings.EqualFold(sp.ObjectID, oid) {
					key = k
					return false
				}
				return true
			}); err != nil {
				return err
			}
			if key == "" {
				return ErrNotFound
			}
			if err := tx.Delete(key); err != nil {
				return err
			}
		}
		// Drop memberships.
		var groups []*Group
		if err := tx.Scan("sys/identity/groups/"+t+"/", "", func(_ string, v []byte) bool {
			g := new(Group)
			if jsonUnmarshal(v, g) == nil {
				for _, m := range g.Members {
					if strings.EqualFold(m, oid) {
						groups = append(groups, g)
						break
					}
				}
			}
			return true
		}); err != nil {
			return err
		}
		for _, g := range groups {
			out := g.Members[:0]
			for _, m := range g.Members {
				if !strings.EqualFold(m, oid) {
					out = append(out, m)
				}
			}
			g.Members = out
			if err := putTx(tx, groupKey(t, g.ObjectID), g); err != nil {
				return err
			}
		}
		return nil
	})
	return kind, err
}

// UpdateServicePrincipal applies fn to the stored service principal (or
// managed identity) of application appID in one transaction.
func (d *Directory) UpdateServicePrincipal(ctx context.Context, tenant, appID string, fn func(*ServicePrincipal) error) (*ServicePrincipal, error) {
	sp := new(ServicePrincipal)
	err := d.store.Update(ctx, func(tx barrier.Tx) error {
		if err := getTx(tx, appKey(tenant, appID), sp); err != nil {
			return err
		}
		if err := fn(sp); err != nil {
			return err
		}
		return putTx(tx, appKey(tenant, appID), sp)
	})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// CreateManagedIdentity creates a managed identity: a service principal
// with no credentials of its own. resourceID is its ARM ID (xms_mirid);
// miType is "SystemAssigned" or "UserAssigned".
func (d *Directory) CreateManagedIdentity(ctx context.Context, tenant, name, miType, resourceID string, now time.Time) (*ServicePrincipal, error) {
	if miType != "SystemAssigned" && miType != "UserAssigned" {
		return nil, invalid("type must be SystemAssigned or UserAssigned")
	}
	if name == "" || len(name) > 128 || len(resourceID) > 512 {
		return nil, invalid("name must be 1-128 characters and resourceId at most 512")
	}
	sp, err := d.CreateServicePrincipal(ctx, tenant, name, now)
	if err != nil {
		return nil, err
	}
	return d.UpdateServicePrincipal(ctx, tenant, sp.AppID, func(sp *ServicePrincipal) error {
		sp.Kind, sp.MIType, sp.ResourceID = KindManagedIdentity, miType, resourceID
		return nil
	})
}

// AddCertificate registers a client certificate (DER) for an application.
func (d *Directory) AddCertificate(ctx context.Context, tenant, appID string, der []byte, now time.Time) (*ClientCertificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, invalid("the certificate is not a valid X.509 DER certificate")
	}
	s256 := sha256.Sum256(der)
	s1 := sha1.Sum(der)
	cc := ClientCertificate{ID: NewID(), ThumbprintSHA256: s256[:], ThumbprintSHA1: s1[:], DER: der,
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), Added: now.UTC()}
	_, err = d.UpdateServicePrincipal(ctx, tenant, appID, func(sp *ServicePrincipal) error {
		if sp.IsManagedIdentity() {
			return invalid("managed identities have no credentials of their own")
		}
		for _, c := range sp.Certificates {
			if hex.EncodeToString(c.ThumbprintSHA256) == hex.EncodeToString(s256[:]) {
				return ErrConflict
			}
		}
		if len(sp.Certificates) >= 16 {
			return invalid("an application has at most 16 certificates")
		}
		sp.Certificates = append(sp.Certificates, cc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &cc, nil
}

var ficNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$`)

// SetFederatedCredential adds or replaces (by name) a federated identity
// credential on an application or a user-assigned managed identity
// (IDENTITY.md §7: at most 20, (issuer, subject) unique, one audience).
func (d *Directory) SetFederatedCredential(ctx context.Context, tenant, appID string, fc FederatedCredential) error {
	switch {
	case !ficNameRE.MatchString(fc.Name):
		return invalid("name must be 3-120 characters: letters, digits, '-' and '_'")
	case fc.Issuer == "" || len(fc.Issuer) > 600 || strings.TrimSpace(fc.Issuer) != fc.Issuer || !strings.HasPrefix(fc.Issuer, "https://"):
		return invalid("issuer must be an https URL of at most 600 characters without surrounding whitespace")
	case fc.Subject == "" || len(fc.Subject) > 600 || strings.TrimSpace(fc.Subject) != fc.Subject:
		return invalid("subject must be 1-600 characters without surrounding whitespace")
	case len(fc.Audiences) != 1 || fc.Audiences[0] == "" || len(fc.Audiences[0]) > 600:
		return invalid("audiences must hold exactly one value")
	case len(fc.Description) > 600:
		return invalid("description is at most 600 characters")
	}
	_, err := d.UpdateServicePrincipal(ctx, tenant, appID, func(sp *ServicePrincipal) error {
		if sp.IsManagedIdentity() && sp.MIType != "UserAssigned" {
			return invalid("only user-assigned managed identities take federated credentials")
		}
		out := sp.Federated[:0]
		for _, f := range sp.Federated {
			if f.Name == fc.Name {
				continue
			}
			if f.Issuer == fc.Issuer && f.Subject == fc.Subject {
				return ErrConflict
			}
			out = append(out, f)
		}
		if len(out) >= 20 {
			return invalid("an application has at most 20 federated credentials")
		}
		sp.Federated = append(out, fc)
		return nil
	})
	return err
}

// DeleteFederatedCredential removes the federated credential name.
func (d *Directory) DeleteFederatedCredential(ctx context.Context, tenant, appID, name string) error {
	_, err := d.UpdateServicePrincipal(ctx, tenant, appID, func(sp *ServicePrincipal) error {
		out := sp.Federated[:0]
		found := false
		for _, f := range sp.Federated {
			if f.Name == name {
				found = true
				continue
			}
			out = append(out, f)
		}
		if !found {
			return ErrNotFound
		}
		sp.Federated = out
		return nil
	})
	return err
}

// PrincipalInfo is a principal as the authorization index sees it.
type PrincipalInfo struct {
	TenantID    string
	ObjectID    string
	AppID       string
	Kind        string
	DisplayName string
	Trusted     bool
	Groups      []string // direct memberships
}

// Principals lists every principal of every tenant, with direct group
// memberships, for the authorization index.
func (d *Directory) Principals(ctx context.Context) ([]PrincipalInfo, error) {
	var out []PrincipalInfo
	memberOf := map[string][]string{} // tenant|member -> groups
	err := d.store.View(ctx, func(tx barrier.Tx) error {
		if err := tx.Scan("sys/identity/apps/", "", func(_ string, v []byte) bool {
			sp := new(ServicePrincipal)
			if jsonUnmarshal(v, sp) == nil {
				k := KindServicePrincipal
				if sp.IsManagedIdentity() {
					k = KindManagedIdentity
				}
				out = append(out, PrincipalInfo{TenantID: sp.TenantID, ObjectID: sp.ObjectID, AppID: sp.AppID,
					Kind: k, DisplayName: sp.DisplayName, Trusted: sp.TrustedService})
			}
			return true
		}); err != nil {
			return err
		}
		if err := tx.Scan("sys/identity/users/", "", func(_ string, v []byte) bool {
			u := new(User)
			if jsonUnmarshal(v, u) == nil && !u.Disabled {
				out = append(out, PrincipalInfo{TenantID: u.TenantID, ObjectID: u.ObjectID, Kind: KindUser, DisplayName: u.UserPrincipalName})
			}
			return true
		}); err != nil {
			return err
		}
		return tx.Scan("sys/identity/groups/", "", func(_ string, v []byte) bool {
			g := new(Group)
			if jsonUnmarshal(v, g) == nil {
				out = append(out, PrincipalInfo{TenantID: g.TenantID, ObjectID: g.ObjectID, Kind: KindGroup, DisplayName: g.DisplayName})
				for _, m := range g.Members {
					k := g.TenantID + "|" + strings.ToLower(m)
					memberOf[k] = append(memberOf[k], g.ObjectID)
				}
			}
			return true
		})
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	for i := range out {
		out[i].Groups = memberOf[out[i].TenantID+"|"+strings.ToLower(out[i].ObjectID)]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ObjectID < out[j].ObjectID })
	return out, nil
}

// ListServicePrincipals lists the applications and managed identities of
// a tenant, without credentials.
func (d *Directory) ListServicePrincipals(ctx context.Context, tenant string) ([]*ServicePrincipal, error) {
	return listRecords(ctx, d.store, "sys/identity/apps/"+strings.ToLower(tenant)+"/", func(sp *ServicePrincipal) { sp.Secrets = nil })
}

// ListUsers lists the users of a tenant, without password hashes or TOTP
// secrets.
func (d *Directory) ListUsers(ctx context.Context, tenant string) ([]*User, error) {
	return listRecords(ctx, d.store, "sys/identity/users/"+strings.ToLower(tenant)+"/", func(u *User) { u.PasswordHash, u.TOTPSecret = "", nil })
}

// ListGroups lists the groups of a tenant.
func (d *Directory) ListGroups(ctx context.Context, tenant string) ([]*Group, error) {
	return listRecords[Group](ctx, d.store, "sys/identity/groups/"+strings.ToLower(tenant)+"/", nil)
}
