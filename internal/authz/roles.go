package authz

import (
	"slices"
	"strings"
)

// RoleDefinition is an Azure role definition: named sets of actions and
// data actions, with exclusions. Built-in roles carry Azure's names and
// GUIDs; custom roles are stored by the management plane.
type RoleDefinition struct {
	ID               string   `json:"id"` // GUID
	Name             string   `json:"roleName"`
	Description      string   `json:"description,omitempty"`
	BuiltIn          bool     `json:"builtIn,omitempty"`
	Permissions      []Perm   `json:"permissions"`
	AssignableScopes []string `json:"assignableScopes"`
	// TenantID owns a custom role; empty for built-ins.
	TenantID string `json:"tenantId,omitempty"`
}

// Perm is one permission block of a role definition. AssignableRoles,
// when not empty, is the typed form of the ABAC condition of Key Vault
// Data Access Administrator: roleAssignments/write and /delete are allowed
// only for these role definition IDs.
type Perm struct {
	Actions         []string `json:"actions"`
	NotActions      []string `json:"notActions"`
	DataActions     []string `json:"dataActions"`
	NotDataActions  []string `json:"notDataActions"`
	AssignableRoles []string `json:"assignableRoles,omitempty"`
}

// Built-in role definition IDs (AZURE-API.md §6 and the seed documents).
const (
	RoleKeyVaultAdministrator           = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
	RoleKeyVaultCertificatesOfficer     = "a4417e6f-fecd-4de8-b567-7b0420556985"
	RoleKeyVaultCertificateUser         = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba"
	RoleKeyVaultContributor             = "f25e0fa2-a7c8-4377-a976-54943a77a395"
	RoleKeyVaultCryptoOfficer           = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
	RoleKeyVaultCryptoServiceEncUser    = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
	RoleKeyVaultCryptoServiceRelease    = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"
	RoleKeyVaultCryptoUser              = "12338af0-0e69-4776-bea7-57ae8d297424"
	RoleKeyVaultDataAccessAdministrator = "8b54135c-b56d-4d72-a534-26097cfdc8d8"
	RoleKeyVaultReader                  = "21090545-7ca7-4776-b22c-e363652d74d2"
	RoleKeyVaultSecretsOfficer          = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
	RoleKeyVaultSecretsUser             = "4633458b-17de-408a-b874-0445c86b69e6"

	RoleOwner                   = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	RoleContributor             = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	RoleReader                  = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	RoleUserAccessAdministrator = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

	// Keyward's own built-in roles, assignable at the tenant root scope "/".
	RoleKeywardOperator       = "6b0f1a3e-5c55-4b8e-9a53-6b6579776172" // seal, signing keys: the whole instance
	RoleKeywardDirectoryAdmin = "6b0f1a3e-5c55-4b8e-9a53-6469726563a0" // principals, groups, credentials of a tenant
	RoleKeyManagementOfficer  = "6b0f1a3e-5c55-4b8e-9a53-6b6d676d7401" // keymgmt: central keys, KMS providers, distributions of a tenant
	RoleKeyManagementReader   = "6b0f1a3e-5c55-4b8e-9a53-6b6d676d7402" // keymgmt: read them
)

// kvReadActions are the control actions every Key Vault data role carries
// so that its holder can see the vault in the portal.
var kvReadActions = []string{
	"Microsoft.Authorization/*/read",
	"Microsoft.Insights/alertRules/*",
	"Microsoft.Resources/deployments/*",
	"Microsoft.Resources/subscriptions/resourceGroups/read",
	"Microsoft.Support/*",
	"Microsoft.KeyVault/checkNameAvailability/read",
	"Microsoft.KeyVault/deletedVaults/read",
	"Microsoft.KeyVault/locations/*/read",
	"Microsoft.KeyVault/vaults/*/read",
	"Microsoft.KeyVault/operations/read",
}

// kvDataRoles are the roles Key Vault Data Access Administrator may assign.
var kvDataRoles = []string{
	RoleKeyVaultAdministrator, RoleKeyVaultCertificatesOfficer, RoleKeyVaultCryptoOfficer,
	RoleKeyVaultCryptoServiceEncUser, RoleKeyVaultCryptoUser, RoleKeyVaultReader,
	RoleKeyVaultSecretsOfficer, RoleKeyVaultSecretsUser,
}

func builtin(id, name, desc string, p Perm) RoleDefinition {
	return RoleDefinition{ID: id, Name: name, Description: desc, BuiltIn: true,
		Permissions: []Perm{p}, AssignableScopes: []string{"/"}}
}

// BuiltinRoles are the built-in role definitions, exactly as Azure defines
// them (azure-docs built-in-roles/security.md), plus the four general
// roles and Keyward's two instance roles.
var BuiltinRoles = []RoleDefinition{
	builtin(RoleKeyVaultAdministrator, "Key Vault Administrator",
		"Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{Actions: kvReadActions, DataActions: []string{"Microsoft.KeyVault/vaults/*"}}),
	builtin(RoleKeyVaultCertificatesOfficer, "Key Vault Certificates Officer",
		"Perform any action on the certificates of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{Actions: kvReadActions, DataActions: []string{"Microsoft.KeyVault/vaults/certificatecas/*",
			"Microsoft.KeyVault/vaults/certificates/*", "Microsoft.KeyVault/vaults/certificatecontacts/write"}}),
	builtin(RoleKeyVaultCertificateUser, "Key Vault Certificate User",
		"Read certificate contents. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{DataActions: []string{"Microsoft.KeyVault/vaults/certificates/read", "Microsoft.KeyVault/vaults/secrets/getSecret/action",
			"Microsoft.KeyVault/vaults/secrets/readMetadata/action", "Microsoft.KeyVault/vaults/keys/read"}}),
	builtin(RoleKeyVaultContributor, "Key Vault Contributor", "Lets you manage key vaults, but not access to them.",
		Perm{Actions: []string{"Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.KeyVault/*",
			"Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*"},
			NotActions: []string{"Microsoft.KeyVault/locations/deletedVaults/purge/action", "Microsoft.KeyVault/hsmPools/*",
				"Microsoft.KeyVault/managedHsms/*"}}),
	builtin(RoleKeyVaultCryptoOfficer, "Key Vault Crypto Officer",
		"Perform any action on the keys of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{Actions: kvReadActions, DataActions: []string{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"}}),
	builtin(RoleKeyVaultCryptoServiceEncUser, "Key Vault Crypto Service Encryption User",
		"Read metadata of keys and perform wrap/unwrap operations. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{Actions: []string{"Microsoft.EventGrid/eventSubscriptions/write", "Microsoft.EventGrid/eventSubscriptions/read",
			"Microsoft.EventGrid/eventSubscriptions/delete"},
			DataActions: []string{"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
				"Microsoft.KeyVault/vaults/keys/unwrap/action"}}),
	builtin(RoleKeyVaultCryptoServiceRelease, "Key Vault Crypto Service Release User",
		"Release keys. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{DataActions: []string{"Microsoft.KeyVault/vaults/keys/release/action"}}),
	builtin(RoleKeyVaultCryptoUser, "Key Vault Crypto User",
		"Perform cryptographic operations using keys. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{DataActions: []string{"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/update/action",
			"Microsoft.KeyVault/vaults/keys/backup/action", "Microsoft.KeyVault/vaults/keys/encrypt/action",
			"Microsoft.KeyVault/vaults/keys/decrypt/action", "Microsoft.KeyVault/vaults/keys/wrap/action",
			"Microsoft.KeyVault/vaults/keys/unwrap/action", "Microsoft.KeyVault/vaults/keys/sign/action",
			"Microsoft.KeyVault/vaults/keys/verify/action"}}),
	builtin(RoleKeyVaultDataAccessAdministrator, "Key Vault Data Access Administrator",
		"Manage access to Azure Key Vault by adding or removing role assignments for the Key Vault Administrator, Key Vault Certificates Officer, Key Vault Crypto Officer, Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader, Key Vault Secrets Officer, or Key Vault Secrets User roles. Includes an ABAC condition to constrain role assignments.",
		Perm{Actions: []string{"Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete",
			"Microsoft.Authorization/*/read", "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read",
			"Microsoft.Resources/subscriptions/read", "Microsoft.Management/managementGroups/read", "Microsoft.Support/*",
			"Microsoft.KeyVault/vaults/*/read"},
			AssignableRoles: kvDataRoles}),
	builtin(RoleKeyVaultReader, "Key Vault Reader",
		"Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{Actions: kvReadActions, DataActions: []string{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}}),
	builtin(RoleKeyVaultSecretsOfficer, "Key Vault Secrets Officer",
		"Perform any action on the secrets of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{Actions: kvReadActions, DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}}),
	builtin(RoleKeyVaultSecretsUser, "Key Vault Secrets User",
		"Read secret contents. Only works for key vaults that use the 'Azure role-based access control' permission model.",
		Perm{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"}}),

	builtin(RoleOwner, "Owner", "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Perm{Actions: []string{"*"}}),
	builtin(RoleContributor, "Contributor", "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
		Perm{Actions: []string{"*"}, NotActions: []string{"Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
			"Microsoft.Authorization/elevateAccess/Action", "Keyward/*"}}),
	builtin(RoleReader, "Reader", "View all resources, but does not allow you to make any changes.",
		Perm{Actions: []string{"*/read"}}),
	builtin(RoleUserAccessAdministrator, "User Access Administrator", "Lets you manage user access to Azure resources.",
		Perm{Actions: []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"}}),

	builtin(RoleKeywardOperator, "Keyward Operator",
		"Operate the Keyward instance: seal it and rotate the token signing keys. Assign only at the root scope of the first tenant.",
		Perm{Actions: []string{"Keyward/sys/*"}}),
	builtin(RoleKeywardDirectoryAdmin, "Keyward Directory Administrator",
		"Manage the tenant's directory: users, groups, applications, managed identities, credentials, workload bindings and trusted services.",
		Perm{Actions: []string{"Keyward/directory/*"}}),
	builtin(RoleKeyManagementOfficer, "Key Management Officer",
		"Manage the tenant's centrally held keys (Vault's Key Management engine API): create, rotate and delete keys, configure KMS providers, distribute keys to them and remove them.",
		Perm{Actions: []string{"Keyward/keymgmt/*"}}),
	builtin(RoleKeyManagementReader, "Key Management Reader",
		"Read the tenant's centrally held keys (public parts and versions), KMS providers (without credentials) and distributions.",
		Perm{Actions: []string{"Keyward/keymgmt/*/read"}}),
}

// BuiltinRole returns the built-in role with id (a GUID or a full
// /providers/Microsoft.Authorization/roleDefinitions/{id}).
func BuiltinRole(id string) (RoleDefinition, bool) {
	id = RoleGUID(id)
	for _, r := range BuiltinRoles {
		if r.ID == id {
			return r, true
		}
	}
	return RoleDefinition{}, false
}

// BuiltinRoleByName returns the built-in role named name (case-insensitive).
func BuiltinRoleByName(name string) (RoleDefinition, bool) {
	for _, r := range BuiltinRoles {
		if strings.EqualFold(r.Name, name) {
			return r, true
		}
	}
	return RoleDefinition{}, false
}

// RoleGUID extracts the GUID from a role definition ID in any of the forms
// ARM uses (bare GUID, /providers/..., /subscriptions/.../providers/...).
func RoleGUID(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	}
	return strings.ToLower(id)
}

// allows reports whether role grants action a: data actions through
// DataActions/NotDataActions, control actions through Actions/NotActions.
// roleDef, when a is roleAssignments/write or /delete, is checked against
// the role's AssignableRoles condition.
func (r *RoleDefinition) allows(a Action, data bool, roleDef string) bool {
	for _, p := range r.Permissions {
		var grant, deny []string
		if data {
			grant, deny = p.DataActions, p.NotDataActions
		} else {
			grant, deny = p.Actions, p.NotActions
		}
		if !matchAny(grant, string(a)) || matchAny(deny, string(a)) {
			continue
		}
		if len(p.AssignableRoles) > 0 && (strings.EqualFold(string(a), string(RoleAssignmentsWrite)) ||
			strings.EqualFold(string(a), string(RoleAssignmentsDelete))) {
			if !slices.Contains(p.AssignableRoles, RoleGUID(roleDef)) {
				continue
			}
		}
		return true
	}
	return false
}

func matchAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if MatchAction(p, action) {
			return true
		}
	}
	return false
}

// MatchAction matches an action against an Azure action pattern,
// case-insensitively. "*" matches any run of characters, slashes
// included, as in Azure ("Microsoft.KeyVault/vaults/*/read" matches
// "Microsoft.KeyVault/vaults/keys/read" and ".../vaults/secrets/x/read").
func MatchAction(pattern, action string) bool {
	p, a := strings.ToLower(pattern), strings.ToLower(action)
	// Iterative glob with backtracking to the last star.
	pi, ai, star, mark := 0, 0, -1, 0
	for ai < len(a) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ai
			pi++
		case pi < len(p) && p[pi] == a[ai]:
			pi++
			ai++
		case star >= 0:
			pi = star + 1
			mark++
			ai = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
