package authz

import "strings"

// Managed HSM local RBAC (AZURE-API.md §5): a pool's own role definitions
// and assignments, separate from Azure RBAC on vaults. Data actions are the
// 34 of azadmin/rbac's DataAction enum plus keys/rotate/action and
// keys/derive/action, which Azure's built-in Crypto User role holds (see
// HSMBuiltInRoles); assignment scopes are "/", "/keys" and "/keys/{name}".
const (
	mh = "Microsoft.KeyVault/managedHsm/"

	HSMKeysRead          Action = mh + "keys/read/action"
	HSMKeysWrite         Action = mh + "keys/write/action"
	HSMKeysCreate        Action = mh + "keys/create"
	HSMKeysRotate        Action = mh + "keys/rotate/action"
	HSMKeysDerive        Action = mh + "keys/derive/action"
	HSMKeysDelete        Action = mh + "keys/delete"
	HSMKeysEncrypt       Action = mh + "keys/encrypt/action"
	HSMKeysDecrypt       Action = mh + "keys/decrypt/action"
	HSMKeysWrap          Action = mh + "keys/wrap/action"
	HSMKeysUnwrap        Action = mh + "keys/unwrap/action"
	HSMKeysSign          Action = mh + "keys/sign/action"
	HSMKeysVerify        Action = mh + "keys/verify/action"
	HSMKeysImport        Action = mh + "keys/import/action"
	HSMKeysExport        Action = mh + "keys/export/action"
	HSMKeysRelease       Action = mh + "keys/release/action"
	HSMKeysBackup        Action = mh + "keys/backup/action"
	HSMKeysRestore       Action = mh + "keys/restore/action"
	HSMDeletedKeysRead   Action = mh + "keys/deletedKeys/read/action"
	HSMDeletedKeysRecov  Action = mh + "keys/deletedKeys/recover/action"
	HSMDeletedKeysPurge  Action = mh + "keys/deletedKeys/delete"
	HSMRNG               Action = mh + "rng/action"
	HSMRoleAssignRead    Action = mh + "roleAssignments/read/action"
	HSMRoleAssignWrite   Action = mh + "roleAssignments/write/action"
	HSMRoleAssignDelete  Action = mh + "roleAssignments/delete/action"
	HSMRoleDefRead       Action = mh + "roleDefinitions/read/action"
	HSMRoleDefWrite      Action = mh + "roleDefinitions/write/action"
	HSMRoleDefDelete     Action = mh + "roleDefinitions/delete/action"
	HSMSDDownload        Action = mh + "securitydomain/download/action"
	HSMSDDownloadRead    Action = mh + "securitydomain/download/read"
	HSMSDUpload          Action = mh + "securitydomain/upload/action"
	HSMSDUploadRead      Action = mh + "securitydomain/upload/read"
	HSMSDTransferKeyRead Action = mh + "securitydomain/transferkey/read"
	HSMBackupStart       Action = mh + "backup/start/action"
	HSMBackupStatus      Action = mh + "backup/status/action"
	HSMRestoreStart      Action = mh + "restore/start/action"
	HSMRestoreStatus     Action = mh + "restore/status/action"
)

// HSMSettings is what the settings routes (azadmin/settings) require. Azure
// publishes no data action for settings (azadmin's enum has none, and no
// built-in role lists one), so this is not a data action: no role
// definition grants it, and DecideHSM gives it to holders of the built-in
// Managed HSM Administrator role at "/" only.
const HSMSettings Action = "keyward:managedHsm/settings"

// Built-in Managed HSM role definition IDs.
const (
	RoleHSMAdministrator        = "a290e904-7015-4bba-90c8-60543313cdb4"
	RoleHSMCryptoOfficer        = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"
	RoleHSMCryptoUser           = "21dbd100-6940-42c2-9190-5d6cb909625b"
	RoleHSMPolicyAdministrator  = "4bd23610-cdcf-4971-bdee-bdc562cc28e4"
	RoleHSMCryptoAuditor        = "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3"
	RoleHSMCryptoServiceEncUser = "33413926-3206-4cdd-b39a-83574fe37a17"
	RoleHSMCryptoServiceRelease = "21dbd100-6940-42c2-9190-5d6cb909625c"
	RoleHSMBackup               = "7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8"
	RoleHSMRestore              = "6efe6056-5259-49d2-8b3d-d3d73544b20b"
)

func acts(a ...Action) []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = string(x)
	}
	return out
}

var hsmRoleMgmt = []Action{HSMRoleAssignDelete, HSMRoleAssignRead, HSMRoleAssignWrite, HSMRoleDefRead, HSMRoleDefWrite, HSMRoleDefDelete}

// HSMBuiltInRoles are the built-in Managed HSM roles with the data actions
// Azure returns for them: the role definitions a Managed HSM lists
// (GET /providers/Microsoft.Authorization/roleDefinitions, as recorded by
// the Azure SDK for JavaScript's keyvault-admin tests against Azure), and,
// for Managed HSM Restore (newer than that recording), the permission table
// of "Local RBAC built-in roles for Managed HSM" (learn.microsoft.com). That
// table also marks keys/deletedKeys/delete for the Crypto Auditor; the
// service's own definition gives the auditor keys/deletedKeys/read/action,
// which Keyward follows. Descriptions are the table's.
func HSMBuiltInRoles() []RoleDefinition {
	role := func(id, name, desc string, a ...Action) RoleDefinition {
		return RoleDefinition{ID: id, Name: name, Description: desc, BuiltIn: true,
			Permissions:      []Perm{{Actions: []string{}, NotActions: []string{}, DataActions: acts(a...), NotDataActions: []string{}}},
			AssignableScopes: []string{"/"}}
	}
	admin := append(slicesClone(hsmRoleMgmt), HSMSDDownload, HSMSDDownloadRead, HSMSDUpload, HSMSDUploadRead, HSMSDTransferKeyRead,
		HSMBackupStart, HSMRestoreStart, HSMBackupStatus, HSMRestoreStatus)
	officer := append(slicesClone(hsmRoleMgmt), HSMDeletedKeysRead, HSMDeletedKeysPurge, HSMDeletedKeysRecov, HSMKeysExport)
	return []RoleDefinition{
		role(RoleHSMAdministrator, "Managed HSM Administrator", "Grants permissions to perform all operations related to the security domain, full backup and restore, and role management. Not permitted to perform any key management operations.", admin...),
		role(RoleHSMCryptoOfficer, "Managed HSM Crypto Officer", "Grants permissions to perform all role management, purge or recover deleted keys, and export keys. Not permitted to perform any other key management operations.", officer...),
		role(RoleHSMCryptoUser, "Managed HSM Crypto User", "Grants permissions to perform all key management operations except purge or recover deleted keys and export keys.",
			HSMRoleDefRead, HSMRoleAssignRead, HSMKeysRead, HSMKeysWrite, HSMKeysDelete, HSMKeysCreate, HSMKeysRotate, HSMKeysImport,
			HSMKeysRelease, HSMKeysBackup, HSMKeysRestore, HSMKeysEncrypt, HSMKeysDecrypt, HSMKeysWrap, HSMKeysUnwrap,
			HSMKeysSign, HSMKeysVerify, HSMKeysDerive, HSMRNG),
		role(RoleHSMPolicyAdministrator, "Managed HSM Policy Administrator", "Grants permissions to create and delete role assignments.",
			HSMRoleDefRead, HSMRoleDefWrite, HSMRoleDefDelete, HSMRoleAssignRead, HSMRoleAssignWrite, HSMRoleAssignDelete),
		role(RoleHSMCryptoAuditor, "Managed HSM Crypto Auditor", "Grants read permissions to read (but not use) key attributes.",
			HSMRoleAssignRead, HSMRoleDefRead, HSMKeysRead, HSMDeletedKeysRead),
		role(RoleHSMCryptoServiceEncUser, "Managed HSM Crypto Service Encryption User", "Grants permissions to use a key for service encryption.",
			HSMKeysRead, HSMKeysWrap, HSMKeysUnwrap),
		role(RoleHSMCryptoServiceRelease, "Managed HSM Crypto Service Release User", "Grants permissions to release a key to a trusted execution environment.",
			HSMKeysRelease),
		role(RoleHSMBackup, "Managed HSM Backup", "Grants permissions to perform single-key or whole-HSM backup.", HSMBackupStart, HSMBackupStatus, HSMKeysBackup),
		role(RoleHSMRestore, "Managed HSM Restore", "Grants permissions to perform single-key or whole-HSM restore.", HSMKeysRestore, HSMRestoreStart, HSMRestoreStatus),
	}
}

func slicesClone(a []Action) []Action { return append([]Action(nil), a...) }

// HSMAssignment is a role assignment in a pool.
type HSMAssignment struct {
	ID               string `json:"id"`
	Scope            string `json:"scope"`
	RoleDefinitionID string `json:"roleDefinitionId"` // GUID
	PrincipalID      string `json:"principalId"`
}

// ValidHSMScope reports whether s is an assignable pool scope: "/", "/keys"
// or "/keys/{name}".
func ValidHSMScope(s string) bool {
	if s == "/" || strings.EqualFold(s, "/keys") {
		return true
	}
	name, ok := strings.CutPrefix(strings.ToLower(s), "/keys/")
	return ok && name != "" && !strings.ContainsAny(name, "/?#")
}

// HSMScopeCovers reports whether an assignment at scope covers an action
// on key (key "" for pool-wide actions): "/" covers everything, "/keys"
// every key action and rng, "/keys/{name}" the actions on that key.
func HSMScopeCovers(scope string, a Action, key string) bool {
	if scope == "/" {
		return true
	}
	keyAction := strings.HasPrefix(string(a), mh+"keys/") || a == HSMRNG
	if strings.EqualFold(scope, "/keys") {
		return keyAction
	}
	name, _ := strings.CutPrefix(strings.ToLower(scope), "/keys/")
	return keyAction && key != "" && strings.EqualFold(name, key)
}

// HSMAssignableAt reports whether a role whose assignable scopes are
// assignable may be assigned at scope: one of them is scope or above it
// ("/" is above everything, "/keys" above every "/keys/{name}").
func HSMAssignableAt(assignable []string, scope string) bool {
	sc := strings.ToLower(scope)
	for _, a := range assignable {
		a = strings.ToLower(a)
		if a == "/" || a == sc || strings.HasPrefix(sc, a+"/") {
			return true
		}
	}
	return false
}

// DecideHSM reports whether any of principals' assignments grants a on key
// (DataActions minus NotDataActions of its role, within its scope). defs
// maps role definition GUIDs (lower case) to definitions.
func DecideHSM(principals []string, a Action, key string, asg []HSMAssignment, defs map[string]RoleDefinition) bool {
	for _, x := range asg {
		match := false
		for _, p := range principals {
			if strings.EqualFold(p, x.PrincipalID) {
				match = true
			}
		}
		if !match || !HSMScopeCovers(x.Scope, a, key) {
			continue
		}
		if a == HSMSettings {
			if x.Scope == "/" && strings.EqualFold(x.RoleDefinitionID, RoleHSMAdministrator) {
				return true
			}
			continue
		}
		d, ok := defs[strings.ToLower(x.RoleDefinitionID)]
		if !ok || !d.BuiltIn && !HSMAssignableAt(d.AssignableScopes, x.Scope) {
			// A custom role counts only where it is assignable (an
			// assignment made before its scopes were narrowed grants
			// nothing outside them).
			continue
		}
		for _, p := range d.Permissions {
			if matchAny(p.DataActions, string(a)) && !matchAny(p.NotDataActions, string(a)) {
				return true
			}
		}
	}
	return false
}
