package authz

import "strings"

// Management-plane (control) actions, as Azure Resource Manager names them
// (AZURE-API.md §6). They are granted by the "actions" of a role, never by
// data actions or access policies, whatever a vault's permission model.
const (
	SubscriptionsRead   Action = "Microsoft.Resources/subscriptions/read"
	ResourceGroupsRead  Action = "Microsoft.Resources/subscriptions/resourceGroups/read"
	ResourceGroupsWrite Action = "Microsoft.Resources/subscriptions/resourceGroups/write"
	ResourceGroupsDel   Action = "Microsoft.Resources/subscriptions/resourceGroups/delete"

	VaultsRead             Action = "Microsoft.KeyVault/vaults/read"
	VaultsWrite            Action = "Microsoft.KeyVault/vaults/write"
	VaultsDelete           Action = "Microsoft.KeyVault/vaults/delete"
	VaultsAccessPolicies   Action = "Microsoft.KeyVault/vaults/accessPolicies/write"
	VaultsCheckName        Action = "Microsoft.KeyVault/checkNameAvailability/read"
	DeletedVaultsRead      Action = "Microsoft.KeyVault/deletedVaults/read"
	DeletedVaultsLocRead   Action = "Microsoft.KeyVault/locations/deletedVaults/read"
	DeletedVaultsPurge     Action = "Microsoft.KeyVault/locations/deletedVaults/purge/action"
	RoleAssignmentsRead    Action = "Microsoft.Authorization/roleAssignments/read"
	RoleAssignmentsWrite   Action = "Microsoft.Authorization/roleAssignments/write"
	RoleAssignmentsDelete  Action = "Microsoft.Authorization/roleAssignments/delete"
	RoleDefinitionsRead    Action = "Microsoft.Authorization/roleDefinitions/read"
	RoleDefinitionsWrite   Action = "Microsoft.Authorization/roleDefinitions/write"
	RoleDefinitionsDelete  Action = "Microsoft.Authorization/roleDefinitions/delete"
	RoleEligibilityRead    Action = "Microsoft.Authorization/roleEligibilityScheduleRequests/read"
	RoleEligibilityWrite   Action = "Microsoft.Authorization/roleEligibilityScheduleRequests/write"
	RoleAssignSchedRead    Action = "Microsoft.Authorization/roleAssignmentScheduleRequests/read"
	RoleAssignSchedWrite   Action = "Microsoft.Authorization/roleAssignmentScheduleRequests/write"
	DirectoryRead          Action = "Keyward/directory/read"
	DirectoryWrite         Action = "Keyward/directory/write"
	DirectoryTrustServices Action = "Keyward/directory/trustedServices/write"

	// Key Management engine (internal/keymgmt), at the tenant scope.
	KeyMgmtKeysRead          Action = "Keyward/keymgmt/keys/read"
	KeyMgmtKeysWrite         Action = "Keyward/keymgmt/keys/write"
	KeyMgmtKeysRotate        Action = "Keyward/keymgmt/keys/rotate/action"
	KeyMgmtKeysDelete        Action = "Keyward/keymgmt/keys/delete"
	KeyMgmtKMSRead           Action = "Keyward/keymgmt/kms/read"
	KeyMgmtKMSWrite          Action = "Keyward/keymgmt/kms/write"
	KeyMgmtKMSDelete         Action = "Keyward/keymgmt/kms/delete"
	KeyMgmtDistributionRead  Action = "Keyward/keymgmt/distributions/read"
	KeyMgmtDistributionWrite Action = "Keyward/keymgmt/distributions/write"
	KeyMgmtDistributionDel   Action = "Keyward/keymgmt/distributions/delete"
)

// Key Vault data actions not used by the secrets and keys routes but part
// of the built-in roles (certificates are added by the certificates API).
const (
	CertificatesRead         Action = "Microsoft.KeyVault/vaults/certificates/read"
	CertificatesCreate       Action = "Microsoft.KeyVault/vaults/certificates/create/action"
	CertificatesImport       Action = "Microsoft.KeyVault/vaults/certificates/import/action"
	CertificatesUpdate       Action = "Microsoft.KeyVault/vaults/certificates/update/action"
	CertificatesDelete       Action = "Microsoft.KeyVault/vaults/certificates/delete"
	CertificatesBackup       Action = "Microsoft.KeyVault/vaults/certificates/backup/action"
	CertificatesRestore      Action = "Microsoft.KeyVault/vaults/certificates/restore/action"
	CertificatesRecover      Action = "Microsoft.KeyVault/vaults/certificates/recover/action"
	CertificatesPurge        Action = "Microsoft.KeyVault/vaults/certificates/purge/action"
	CertificateIssuersRead   Action = "Microsoft.KeyVault/vaults/certificatecas/read"
	CertificateIssuersWrite  Action = "Microsoft.KeyVault/vaults/certificatecas/write"
	CertificateIssuersDelete Action = "Microsoft.KeyVault/vaults/certificatecas/delete"
	CertificateContactsWrite Action = "Microsoft.KeyVault/vaults/certificatecontacts/write"
)

// DataActions lists every Key Vault data action Keyward knows, for tables
// and tests: what a role × action matrix runs over.
var DataActions = []Action{
	SecretsGetSecret, SecretsReadMetadata, SecretsSetSecret, SecretsUpdate, SecretsDelete,
	SecretsBackup, SecretsRestore, SecretsRecover, SecretsPurge,
	KeysRead, KeysCreate, KeysImport, KeysUpdate, KeysDelete, KeysBackup, KeysRestore, KeysRotate,
	KeysEncrypt, KeysDecrypt, KeysWrap, KeysUnwrap, KeysSign, KeysVerify, KeysRelease,
	KeysRotationRead, KeysRotationWrite, KeysRecover, KeysPurge,
	CertificatesRead, CertificatesCreate, CertificatesImport, CertificatesUpdate, CertificatesDelete,
	CertificatesBackup, CertificatesRestore, CertificatesRecover, CertificatesPurge,
	CertificateIssuersRead, CertificateIssuersWrite, CertificateIssuersDelete, CertificateContactsWrite,
}

// dataCollections are the path segments after Microsoft.KeyVault/vaults/
// that make an action a data action.
var dataCollections = map[string]bool{
	"keys": true, "secrets": true, "certificates": true, "certificatecas": true,
	"certificatecontacts": true, "keyrotationpolicies": true, "storage": true,
	"deletedkeys": true, "deletedsecrets": true, "deletedcertificates": true,
}

// IsDataAction reports whether a is a Key Vault data-plane action: one that
// a vault's permission model (RBAC data actions or access policies)
// decides. Every other action is a control action, decided by RBAC
// "actions" alone.
func IsDataAction(a Action) bool {
	rest, ok := cutPrefixFold(string(a), "Microsoft.KeyVault/vaults/")
	if !ok {
		return false
	}
	coll, _, _ := strings.Cut(rest, "/")
	return dataCollections[strings.ToLower(coll)]
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// Permission is an access-policy permission: a collection ("keys",
// "secrets", "certificates") and an operation ("get", "wrapKey", ...).
type Permission struct {
	Collection string
	Op         string
}

func (p Permission) String() string { return p.Collection + " " + p.Op }

// PolicyPermission maps a data action to the access-policy permission that
// grants it (AZURE-API.md §6, access-policy permission enums). list says
// whether the request lists a collection. ok is false for actions access
// policies cannot grant.
func PolicyPermission(a Action, list bool) (Permission, bool) {
	rest, ok := cutPrefixFold(string(a), "Microsoft.KeyVault/vaults/")
	if !ok {
		return Permission{}, false
	}
	rest = strings.ToLower(rest)
	readOp := "get"
	if list {
		readOp = "list"
	}
	switch rest {
	// Secrets.
	case "secrets/getsecret/action":
		return Permission{"secrets", "get"}, true
	case "secrets/readmetadata/action":
		return Permission{"secrets", readOp}, true
	case "secrets/setsecret/action", "secrets/update/action":
		return Permission{"secrets", "set"}, true
	case "secrets/delete":
		return Permission{"secrets", "delete"}, true
	case "secrets/backup/action":
		return Permission{"secrets", "backup"}, true
	case "secrets/restore/action":
		return Permission{"secrets", "restore"}, true
	case "secrets/recover/action":
		return Permission{"secrets", "recover"}, true
	case "secrets/purge/action":
		return Permission{"secrets", "purge"}, true
	// Keys.
	case "keys/read":
		return Permission{"keys", readOp}, true
	case "keys/create/action":
		return Permission{"keys", "create"}, true
	case "keys/import/action":
		return Permission{"keys", "import"}, true
	case "keys/update/action":
		return Permission{"keys", "update"}, true
	case "keys/delete":
		return Permission{"keys", "delete"}, true
	case "keys/backup/action":
		return Permission{"keys", "backup"}, true
	case "keys/restore/action":
		return Permission{"keys", "restore"}, true
	case "keys/recover/action":
		return Permission{"keys", "recover"}, true
	case "keys/purge/action":
		return Permission{"keys", "purge"}, true
	case "keys/rotate/action":
		return Permission{"keys", "rotate"}, true
	case "keys/release/action":
		return Permission{"keys", "release"}, true
	case "keys/encrypt/action":
		return Permission{"keys", "encrypt"}, true
	case "keys/decrypt/action":
		return Permission{"keys", "decrypt"}, true
	case "keys/wrap/action":
		return Permission{"keys", "wrapKey"}, true
	case "keys/unwrap/action":
		return Permission{"keys", "unwrapKey"}, true
	case "keys/sign/action":
		return Permission{"keys", "sign"}, true
	case "keys/verify/action":
		return Permission{"keys", "verify"}, true
	case "keyrotationpolicies/read":
		return Permission{"keys", "getrotationpolicy"}, true
	case "keyrotationpolicies/write":
		return Permission{"keys", "setrotationpolicy"}, true
	// Certificates.
	case "certificates/read":
		return Permission{"certificates", readOp}, true
	case "certificates/create/action":
		return Permission{"certificates", "create"}, true
	case "certificates/import/action":
		return Permission{"certificates", "import"}, true
	case "certificates/update/action":
		return Permission{"certificates", "update"}, true
	case "certificates/delete":
		return Permission{"certificates", "delete"}, true
	case "certificates/backup/action":
		return Permission{"certificates", "backup"}, true
	case "certificates/restore/action":
		return Permission{"certificates", "restore"}, true
	case "certificates/recover/action":
		return Permission{"certificates", "recover"}, true
	case "certificates/purge/action":
		return Permission{"certificates", "purge"}, true
	case "certificatecas/read":
		if list {
			return Permission{"certificates", "listissuers"}, true
		}
		return Permission{"certificates", "getissuers"}, true
	case "certificatecas/write":
		return Permission{"certificates", "setissuers"}, true
	case "certificatecas/delete":
		return Permission{"certificates", "deleteissuers"}, true
	case "certificatecontacts/write", "certificatecontacts/read", "certificatecontacts/delete":
		return Permission{"certificates", "managecontacts"}, true
	}
	return Permission{}, false
}

// policyImplies lists access-policy permissions that include others.
var policyImplies = map[Permission][]string{
	{"certificates", "getissuers"}:    {"manageissuers"},
	{"certificates", "listissuers"}:   {"manageissuers"},
	{"certificates", "setissuers"}:    {"manageissuers"},
	{"certificates", "deleteissuers"}: {"manageissuers"},
}

// KeyPermissions, SecretPermissions and CertificatePermissions are the
// access-policy permission names Azure accepts, for validation.
var (
	KeyPermissions = []string{"all", "encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify", "get", "list",
		"create", "update", "import", "delete", "backup", "restore", "recover", "purge", "release", "rotate",
		"getrotationpolicy", "setrotationpolicy"}
	SecretPermissions      = []string{"all", "get", "list", "set", "delete", "backup", "restore", "recover", "purge"}
	CertificatePermissions = []string{"all", "get", "list", "delete", "create", "import", "update", "managecontacts",
		"getissuers", "listissuers", "setissuers", "deleteissuers", "manageissuers", "recover", "purge", "backup", "restore"}
	StoragePermissions = []string{"all", "get", "list", "delete", "set", "update", "regeneratekey", "recover",
		"purge", "backup", "restore", "setsas", "listsas", "getsas", "deletesas"}
)

// ValidPolicyPermission reports whether name is a permission Azure accepts
// for collection (case-insensitively).
func ValidPolicyPermission(collection, name string) bool {
	var list []string
	switch collection {
	case "keys":
		list = KeyPermissions
	case "secrets":
		list = SecretPermissions
	case "certificates":
		list = CertificatePermissions
	case "storage":
		list = StoragePermissions
	}
	for _, p := range list {
		if strings.EqualFold(p, name) {
			return true
		}
	}
	return false
}
