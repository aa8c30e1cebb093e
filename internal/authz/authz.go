// Package authz decides who may do what: one pure decision function over
// (principal, action, scope). It never performs I/O during a decision and
// never imports net/http.
//
// The foundation ships a single rule, TenantAdmins: the administrators of a
// tenant may do everything on that tenant's vaults. Role definitions,
// assignments at four scopes, access policies and network rules replace it
// behind the same Authorizer interface.
package authz

import (
	"strings"
	"sync"
)

// Principal is an authenticated caller.
type Principal struct {
	TenantID string
	ObjectID string
	AppID    string   // the calling application (azp/appid)
	Groups   []string // object IDs of groups the principal belongs to
}

// Action is an Azure RBAC data or control action, e.g.
// "Microsoft.KeyVault/vaults/secrets/getSecret/action".
type Action string

// Data actions used by the Secrets API (AZURE-API.md §6).
const (
	SecretsGetSecret    Action = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
	SecretsReadMetadata Action = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
	SecretsSetSecret    Action = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
	SecretsUpdate       Action = "Microsoft.KeyVault/vaults/secrets/update/action"
	SecretsDelete       Action = "Microsoft.KeyVault/vaults/secrets/delete"
	SecretsBackup       Action = "Microsoft.KeyVault/vaults/secrets/backup/action"
	SecretsRestore      Action = "Microsoft.KeyVault/vaults/secrets/restore/action"
	SecretsRecover      Action = "Microsoft.KeyVault/vaults/deletedSecrets/recover/action"
	SecretsPurge        Action = "Microsoft.KeyVault/vaults/deletedSecrets/delete"
	SecretsReadDeleted  Action = "Microsoft.KeyVault/vaults/deletedSecrets/read"

	KeysRead              Action = "Microsoft.KeyVault/vaults/keys/read"
	KeysCreate            Action = "Microsoft.KeyVault/vaults/keys/create/action"
	KeysImport            Action = "Microsoft.KeyVault/vaults/keys/import/action"
	KeysUpdate            Action = "Microsoft.KeyVault/vaults/keys/update/action"
	KeysDelete            Action = "Microsoft.KeyVault/vaults/keys/delete"
	KeysBackup            Action = "Microsoft.KeyVault/vaults/keys/backup/action"
	KeysRestore           Action = "Microsoft.KeyVault/vaults/keys/restore/action"
	KeysRotate            Action = "Microsoft.KeyVault/vaults/keys/rotate/action"
	KeysEncrypt           Action = "Microsoft.KeyVault/vaults/keys/encrypt/action"
	KeysDecrypt           Action = "Microsoft.KeyVault/vaults/keys/decrypt/action"
	KeysWrap              Action = "Microsoft.KeyVault/vaults/keys/wrap/action"
	KeysUnwrap            Action = "Microsoft.KeyVault/vaults/keys/unwrap/action"
	KeysSign              Action = "Microsoft.KeyVault/vaults/keys/sign/action"
	KeysVerify            Action = "Microsoft.KeyVault/vaults/keys/verify/action"
	KeysRotationRead      Action = "Microsoft.KeyVault/vaults/keyrotationpolicies/read"
	KeysRotationWrite     Action = "Microsoft.KeyVault/vaults/keyrotationpolicies/write"
	KeysReadDeleted       Action = "Microsoft.KeyVault/vaults/deletedKeys/read"
	KeysRecover           Action = "Microsoft.KeyVault/vaults/deletedKeys/recover/action"
	KeysPurge             Action = "Microsoft.KeyVault/vaults/deletedKeys/delete"
	EventSubscriptionsRW  Action = "Keyward/vaults/eventSubscriptions/write"
	EventSubscriptionsGet Action = "Keyward/vaults/eventSubscriptions/read"

	// Operator actions on the Keyward instance itself.
	SysSeal          Action = "Keyward/sys/seal/action"
	SysRotateSigning Action = "Keyward/sys/rotateSigningKey/action"
)

// Scope is what an action is performed on.
type Scope struct {
	TenantID       string
	SubscriptionID string
	ResourceGroup  string
	Vault          string // vault name; empty for tenant-wide actions
	ObjectType     string // "keys", "secrets", "certificates"
	ObjectName     string
}

// Decision is the outcome of an authorization check. Reason says why, in
// fixed words, for the audit log and the 403 message.
type Decision struct {
	Allowed bool
	Reason  string
}

// Authorizer decides. Implementations must be safe for concurrent use and
// must not block.
type Authorizer interface {
	Authorize(p Principal, a Action, s Scope) Decision
}

// TenantAdmins allows the administrators of a tenant every action in that
// tenant and denies everyone else.
type TenantAdmins struct {
	mu     sync.RWMutex
	admins map[string]map[string]bool // tenant -> object IDs
}

var _ Authorizer = (*TenantAdmins)(nil)

// NewTenantAdmins returns an empty rule set: it denies everything.
func NewTenantAdmins() *TenantAdmins {
	return &TenantAdmins{admins: map[string]map[string]bool{}}
}

// Grant makes objectID an administrator of tenant.
func (t *TenantAdmins) Grant(tenant, objectID string) {
	tenant, objectID = strings.ToLower(tenant), strings.ToLower(objectID)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.admins[tenant] == nil {
		t.admins[tenant] = map[string]bool{}
	}
	t.admins[tenant][objectID] = true
}

// Authorize allows p when p is an administrator of the scope's tenant.
func (t *TenantAdmins) Authorize(p Principal, a Action, s Scope) Decision {
	if !strings.EqualFold(p.TenantID, s.TenantID) {
		return Decision{Reason: "caller is not in the vault's tenant"}
	}
	t.mu.RLock()
	ok := t.admins[strings.ToLower(s.TenantID)][strings.ToLower(p.ObjectID)]
	t.mu.RUnlock()
	if !ok {
		return Decision{Reason: "Assignment: (not found)"}
	}
	return Decision{Allowed: true, Reason: "tenant administrator"}
}
