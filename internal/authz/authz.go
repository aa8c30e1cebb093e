// Package authz decides who may do what: one pure decision function over
// (principal, action, scope). It never performs I/O during a decision and
// never imports net/http.
//
// The decision is made by Engine over an immutable Index compiled from
// stored records (principals and group memberships, role definitions, role
// assignments at four scopes with optional time windows, and per-vault
// permission model, access policies and network rules). The index is
// rebuilt by its owner (internal/mgmt) whenever a record changes and
// swapped atomically; a decision never waits for I/O. See ../../docs/ACCESS.md.
package authz

// Principal is an authenticated caller.
type Principal struct {
	TenantID string
	ObjectID string
	AppID    string   // the calling application (azp/appid)
	Groups   []string // object IDs of groups the principal belongs to (the index adds nested ones)
	// Delegated is true for a user token obtained by an application (scp
	// present, idtyp=user, e.g. on-behalf-of): the compound identity that
	// access-policy entries with an applicationId require.
	Delegated bool
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
	SecretsRecover      Action = "Microsoft.KeyVault/vaults/secrets/recover/action"
	SecretsPurge        Action = "Microsoft.KeyVault/vaults/secrets/purge/action"
	// SecretsReadDeleted: Azure has no separate action for deleted secrets;
	// reading them is reading metadata.
	SecretsReadDeleted Action = SecretsReadMetadata

	KeysRead          Action = "Microsoft.KeyVault/vaults/keys/read"
	KeysCreate        Action = "Microsoft.KeyVault/vaults/keys/create/action"
	KeysImport        Action = "Microsoft.KeyVault/vaults/keys/import/action"
	KeysUpdate        Action = "Microsoft.KeyVault/vaults/keys/update/action"
	KeysDelete        Action = "Microsoft.KeyVault/vaults/keys/delete"
	KeysBackup        Action = "Microsoft.KeyVault/vaults/keys/backup/action"
	KeysRestore       Action = "Microsoft.KeyVault/vaults/keys/restore/action"
	KeysRotate        Action = "Microsoft.KeyVault/vaults/keys/rotate/action"
	KeysEncrypt       Action = "Microsoft.KeyVault/vaults/keys/encrypt/action"
	KeysDecrypt       Action = "Microsoft.KeyVault/vaults/keys/decrypt/action"
	KeysWrap          Action = "Microsoft.KeyVault/vaults/keys/wrap/action"
	KeysUnwrap        Action = "Microsoft.KeyVault/vaults/keys/unwrap/action"
	KeysSign          Action = "Microsoft.KeyVault/vaults/keys/sign/action"
	KeysVerify        Action = "Microsoft.KeyVault/vaults/keys/verify/action"
	KeysRotationRead  Action = "Microsoft.KeyVault/vaults/keyrotationpolicies/read"
	KeysRotationWrite Action = "Microsoft.KeyVault/vaults/keyrotationpolicies/write"
	KeysReadDeleted   Action = KeysRead // as for secrets: no separate action
	KeysRecover       Action = "Microsoft.KeyVault/vaults/keys/recover/action"
	KeysPurge         Action = "Microsoft.KeyVault/vaults/keys/purge/action"
	KeysRelease       Action = "Microsoft.KeyVault/vaults/keys/release/action"
	// Event subscriptions are Event Grid's in Azure: control-plane actions
	// on the vault scope, granted by RBAC "actions" (Owner, Contributor,
	// Key Vault Crypto Service Encryption User), never by data roles or
	// access policies.
	EventSubscriptionsRW  Action = "Microsoft.EventGrid/eventSubscriptions/write"
	EventSubscriptionsGet Action = "Microsoft.EventGrid/eventSubscriptions/read"

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
	// List is true when the action lists a collection (objects, versions of
	// an object, deleted objects): access policies grant it with "list"
	// where RBAC has one read action for listing and getting.
	List bool
	// RoleDefinitionID is the role being assigned or unassigned, for
	// Microsoft.Authorization/roleAssignments/write and /delete (the
	// condition of Key Vault Data Access Administrator).
	RoleDefinitionID string
}

// Decision is the outcome of an authorization check. Reason says why, in
// fixed words, for the audit log and the 403 message.
type Decision struct {
	Allowed bool
	Reason  string
	// Code is the innererror code of a denial: ForbiddenByRbac,
	// AccessDenied (access policies) or ForbiddenByFirewall.
	Code string
	// Missing names what the caller lacks: the action (RBAC) or the
	// access-policy permission, e.g. "secrets get".
	Missing string
}

// Innererror codes of denials (AZURE-API.md §1.5).
const (
	CodeRbac     = "ForbiddenByRbac"
	CodePolicy   = "AccessDenied"
	CodeFirewall = "ForbiddenByFirewall"
)

// Authorizer decides. Implementations must be safe for concurrent use and
// must not block.
type Authorizer interface {
	Authorize(p Principal, a Action, s Scope) Decision
}

// Certificate contacts read: Azure has only certificatecontacts/write as an
// RBAC data action; reading contacts is granted by Key Vault Administrator
// and Key Vault Reader (vaults/*/read) and, in access-policy mode, by
// "managecontacts".
const CertificateContactsRead Action = "Microsoft.KeyVault/vaults/certificatecontacts/read"
