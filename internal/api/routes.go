package api

import (
	"net/http"

	"github.com/keyward/keyward/internal/authz"
)

// dataPlaneRoutes is the whole Azure Key Vault data-plane surface Keyward
// serves (AZURE-API.md §1). Order matters: a literal segment must come
// before a parameter that could match it.
func dataPlaneRoutes() []route {
	const s = "secrets"
	return compile([]route{
		// Secrets (§1.3).
		{method: http.MethodGet, pattern: "/secrets", op: "SecretList", collection: s, action: authz.SecretsReadMetadata, handle: listSecrets},
		{method: http.MethodPost, pattern: "/secrets/restore", op: "SecretRestore", collection: s, action: authz.SecretsRestore, handle: restoreSecret},
		{method: http.MethodGet, pattern: "/secrets/{name}/versions", op: "SecretListVersions", collection: s, action: authz.SecretsReadMetadata, handle: listSecretVersions},
		{method: http.MethodPost, pattern: "/secrets/{name}/backup", op: "SecretBackup", collection: s, action: authz.SecretsBackup, handle: backupSecret},
		{method: http.MethodPut, pattern: "/secrets/{name}", op: "SecretSet", collection: s, action: authz.SecretsSetSecret, handle: setSecret},
		{method: http.MethodGet, pattern: "/secrets/{name}/{version?}", op: "SecretGet", collection: s, action: authz.SecretsGetSecret, handle: getSecret},
		{method: http.MethodPatch, pattern: "/secrets/{name}/{version?}", op: "SecretUpdate", collection: s, action: authz.SecretsUpdate, handle: updateSecret},
		{method: http.MethodDelete, pattern: "/secrets/{name}", op: "SecretDelete", collection: s, action: authz.SecretsDelete, handle: deleteSecret},
		{method: http.MethodGet, pattern: "/deletedsecrets", op: "DeletedSecretList", collection: s, action: authz.SecretsReadDeleted, handle: listDeletedSecrets},
		{method: http.MethodGet, pattern: "/deletedsecrets/{name}", op: "DeletedSecretGet", collection: s, action: authz.SecretsReadDeleted, handle: getDeletedSecret},
		{method: http.MethodDelete, pattern: "/deletedsecrets/{name}", op: "SecretPurge", collection: s, action: authz.SecretsPurge, handle: purgeSecret},
		{method: http.MethodPost, pattern: "/deletedsecrets/{name}/recover", op: "SecretRecover", collection: s, action: authz.SecretsRecover, handle: recoverSecret},
	})
}
