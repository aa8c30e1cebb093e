package api

import (
	"net/http"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/vault"
)

// dataPlaneRoutes is the whole Azure Key Vault data-plane surface Keyward
// serves (AZURE-API.md §1). Order matters: a literal segment must come
// before a parameter that could match it.
func dataPlaneRoutes() []route {
	var all []route
	for _, group := range [][]route{secretRoutes(), keyRoutes(), certificateRoutes(), extensionRoutes()} {
		all = append(all, group...)
	}
	return compile(all)
}

// secretRoutes is the Secrets API (§1.3).
func secretRoutes() []route {
	const s = "secrets"
	return []route{
		{method: http.MethodGet, pattern: "/secrets", op: "SecretList", collection: s, action: authz.SecretsReadMetadata, handle: listHandler((*vault.Service).ListSecrets, secretItem)},
		{method: http.MethodPost, pattern: "/secrets/restore", op: "SecretRestore", collection: s, action: authz.SecretsRestore, handle: restoreSecret},
		{method: http.MethodGet, pattern: "/secrets/{name}/versions", op: "SecretListVersions", collection: s, action: authz.SecretsReadMetadata, handle: versionsHandler((*vault.Service).ListSecretVersions, secretFull)},
		{method: http.MethodPost, pattern: "/secrets/{name}/backup", op: "SecretBackup", collection: s, action: authz.SecretsBackup, handle: backupSecret},
		{method: http.MethodPut, pattern: "/secrets/{name}", op: "SecretSet", collection: s, action: authz.SecretsSetSecret, handle: setSecret},
		{method: http.MethodGet, pattern: "/secrets/{name}/{version?}", op: "SecretGet", collection: s, action: authz.SecretsGetSecret, handle: getSecret},
		{method: http.MethodPatch, pattern: "/secrets/{name}/{version?}", op: "SecretUpdate", collection: s, action: authz.SecretsUpdate, handle: updateSecret},
		{method: http.MethodDelete, pattern: "/secrets/{name}", op: "SecretDelete", collection: s, action: authz.SecretsDelete, handle: objectHandler((*vault.Service).DeleteSecret, secretFull)},
		{method: http.MethodGet, pattern: "/deletedsecrets", op: "DeletedSecretList", collection: s, action: authz.SecretsReadDeleted, handle: listHandler((*vault.Service).ListDeletedSecrets, secretItem)},
		{method: http.MethodGet, pattern: "/deletedsecrets/{name}", op: "DeletedSecretGet", collection: s, action: authz.SecretsReadDeleted, handle: objectHandler((*vault.Service).GetDeletedSecret, secretFull)},
		{method: http.MethodDelete, pattern: "/deletedsecrets/{name}", op: "SecretPurge", collection: s, action: authz.SecretsPurge, handle: purgeHandler((*vault.Service).PurgeSecret)},
		{method: http.MethodPost, pattern: "/deletedsecrets/{name}/recover", op: "SecretRecover", collection: s, action: authz.SecretsRecover, handle: objectHandler((*vault.Service).RecoverSecret, secretFull)},
	}
}

// keyRoutes is the Keys API (§1.2).
func keyRoutes() []route {
	const k = "keys"
	return []route{
		{method: http.MethodGet, pattern: "/keys", op: "KeyList", collection: k, action: authz.KeysRead, handle: listHandler((*vault.Service).ListKeys, keyItem)},
		{method: http.MethodPost, pattern: "/keys/restore", op: "KeyRestore", collection: k, action: authz.KeysRestore, handle: restoreKey},
		{method: http.MethodGet, pattern: "/keys/{name}/versions", op: "KeyListVersions", collection: k, action: authz.KeysRead, handle: versionsHandler((*vault.Service).ListKeyVersions, keyVersionItem)},
		{method: http.MethodPost, pattern: "/keys/{name}/create", op: "KeyCreate", collection: k, action: authz.KeysCreate, handle: createKey},
		{method: http.MethodPost, pattern: "/keys/{name}/backup", op: "KeyBackup", collection: k, action: authz.KeysBackup, handle: backupKey},
		{method: http.MethodPost, pattern: "/keys/{name}/rotate", op: "KeyRotate", collection: k, action: authz.KeysRotate, handle: rotateKey},
		{method: http.MethodGet, pattern: "/keys/{name}/rotationpolicy", op: "KeyRotationPolicyGet", collection: k, action: authz.KeysRotationRead, handle: getRotationPolicy},
		{method: http.MethodPut, pattern: "/keys/{name}/rotationpolicy", op: "KeyRotationPolicySet", collection: k, action: authz.KeysRotationWrite, handle: setRotationPolicy},
		{method: http.MethodPost, pattern: "/keys/{name}/{version?}/encrypt", op: "KeyEncrypt", collection: k, action: authz.KeysEncrypt, handle: cryptoHandler(vault.OpEncrypt)},
		{method: http.MethodPost, pattern: "/keys/{name}/{version?}/decrypt", op: "KeyDecrypt", collection: k, action: authz.KeysDecrypt, handle: cryptoHandler(vault.OpDecrypt)},
		{method: http.MethodPost, pattern: "/keys/{name}/{version?}/wrapkey", op: "KeyWrap", collection: k, action: authz.KeysWrap, handle: cryptoHandler(vault.OpWrapKey)},
		{method: http.MethodPost, pattern: "/keys/{name}/{version?}/unwrapkey", op: "KeyUnwrap", collection: k, action: authz.KeysUnwrap, handle: cryptoHandler(vault.OpUnwrapKey)},
		{method: http.MethodPost, pattern: "/keys/{name}/{version?}/sign", op: "KeySign", collection: k, action: authz.KeysSign, handle: cryptoHandler(vault.OpSign)},
		{method: http.MethodPost, pattern: "/keys/{name}/{version?}/verify", op: "KeyVerify", collection: k, action: authz.KeysVerify, handle: cryptoHandler(vault.OpVerify)},
		{method: http.MethodPut, pattern: "/keys/{name}", op: "KeyImport", collection: k, action: authz.KeysImport, handle: importKey},
		{method: http.MethodGet, pattern: "/keys/{name}/{version?}", op: "KeyGet", collection: k, action: authz.KeysRead, handle: getKey},
		{method: http.MethodPatch, pattern: "/keys/{name}/{version?}", op: "KeyUpdate", collection: k, action: authz.KeysUpdate, handle: updateKey},
		{method: http.MethodDelete, pattern: "/keys/{name}", op: "KeyDelete", collection: k, action: authz.KeysDelete, handle: objectHandler((*vault.Service).DeleteKey, keyFull)},
		{method: http.MethodGet, pattern: "/deletedkeys", op: "DeletedKeyList", collection: k, action: authz.KeysReadDeleted, handle: listHandler((*vault.Service).ListDeletedKeys, keyItem)},
		{method: http.MethodGet, pattern: "/deletedkeys/{name}", op: "DeletedKeyGet", collection: k, action: authz.KeysReadDeleted, handle: objectHandler((*vault.Service).GetDeletedKey, keyFull)},
		{method: http.MethodDelete, pattern: "/deletedkeys/{name}", op: "KeyPurge", collection: k, action: authz.KeysPurge, handle: purgeHandler((*vault.Service).PurgeKey)},
		{method: http.MethodPost, pattern: "/deletedkeys/{name}/recover", op: "KeyRecover", collection: k, action: authz.KeysRecover, handle: objectHandler((*vault.Service).RecoverKey, keyFull)},
	}
}

// certificateRoutes is the Certificates API (§1.4). contacts, issuers and
// restore are reserved names, so they come before {name}; so do the
// literal segments after {name} (policy, pending) before {version?}.
func certificateRoutes() []route {
	const c = "certificates"
	return []route{
		{method: http.MethodGet, pattern: "/certificates", op: "CertificateList", collection: c, action: authz.CertificatesRead, handle: listCertificates},
		{method: http.MethodPost, pattern: "/certificates/restore", op: "CertificateRestore", collection: c, action: authz.CertificatesRestore, handle: restoreCertificate},
		{method: http.MethodGet, pattern: "/certificates/contacts", op: "CertificateContactsGet", collection: c, action: authz.CertificateContactsRead, handle: getContacts},
		{method: http.MethodPut, pattern: "/certificates/contacts", op: "CertificateContactsSet", collection: c, action: authz.CertificateContactsWrite, handle: setContacts},
		{method: http.MethodDelete, pattern: "/certificates/contacts", op: "CertificateContactsDelete", collection: c, action: authz.CertificateContactsWrite, handle: deleteContacts},
		{method: http.MethodGet, pattern: "/certificates/issuers", op: "CertificateIssuerList", collection: c, action: authz.CertificateIssuersRead, handle: listIssuers},
		{method: http.MethodGet, pattern: "/certificates/issuers/{issuer}", op: "CertificateIssuerGet", collection: c, action: authz.CertificateIssuersRead, handle: getIssuer},
		{method: http.MethodPut, pattern: "/certificates/issuers/{issuer}", op: "CertificateIssuerSet", collection: c, action: authz.CertificateIssuersWrite, handle: putIssuer},
		{method: http.MethodPatch, pattern: "/certificates/issuers/{issuer}", op: "CertificateIssuerUpdate", collection: c, action: authz.CertificateIssuersWrite, handle: patchIssuer},
		{method: http.MethodDelete, pattern: "/certificates/issuers/{issuer}", op: "CertificateIssuerDelete", collection: c, action: authz.CertificateIssuersDelete, handle: deleteIssuer},
		{method: http.MethodGet, pattern: "/certificates/{name}/versions", op: "CertificateListVersions", collection: c, action: authz.CertificatesRead, handle: versionsHandler((*vault.Service).ListCertificateVersions, certVersionItem)},
		{method: http.MethodPost, pattern: "/certificates/{name}/create", op: "CertificateCreate", collection: c, action: authz.CertificatesCreate, handle: createCertificate},
		{method: http.MethodPost, pattern: "/certificates/{name}/import", op: "CertificateImport", collection: c, action: authz.CertificatesImport, handle: importCertificate},
		{method: http.MethodPost, pattern: "/certificates/{name}/backup", op: "CertificateBackup", collection: c, action: authz.CertificatesBackup, handle: backupCertificate},
		{method: http.MethodGet, pattern: "/certificates/{name}/policy", op: "CertificatePolicyGet", collection: c, action: authz.CertificatesRead, handle: getCertificatePolicy},
		{method: http.MethodPatch, pattern: "/certificates/{name}/policy", op: "CertificatePolicyUpdate", collection: c, action: authz.CertificatesUpdate, handle: updateCertificatePolicy},
		{method: http.MethodGet, pattern: "/certificates/{name}/pending", op: "CertificatePendingGet", collection: c, action: authz.CertificatesRead, handle: getCertificateOperation},
		{method: http.MethodPatch, pattern: "/certificates/{name}/pending", op: "CertificatePendingUpdate", collection: c, action: authz.CertificatesUpdate, handle: updateCertificateOperation},
		{method: http.MethodDelete, pattern: "/certificates/{name}/pending", op: "CertificatePendingDelete", collection: c, action: authz.CertificatesUpdate, handle: deleteCertificateOperation},
		{method: http.MethodPost, pattern: "/certificates/{name}/pending/merge", op: "CertificatePendingMerge", collection: c, action: authz.CertificatesCreate, handle: mergeCertificate},
		{method: http.MethodGet, pattern: "/certificates/{name}/{version?}", op: "CertificateGet", collection: c, action: authz.CertificatesRead, handle: getCertificate},
		{method: http.MethodPatch, pattern: "/certificates/{name}/{version?}", op: "CertificateUpdate", collection: c, action: authz.CertificatesUpdate, handle: updateCertificate},
		{method: http.MethodDelete, pattern: "/certificates/{name}", op: "CertificateDelete", collection: c, action: authz.CertificatesDelete, handle: objectHandler((*vault.Service).DeleteCertificate, certFull)},
		{method: http.MethodGet, pattern: "/deletedcertificates", op: "DeletedCertificateList", collection: c, action: authz.CertificatesRead, handle: listHandler((*vault.Service).ListDeletedCertificates, certItem)},
		{method: http.MethodGet, pattern: "/deletedcertificates/{name}", op: "DeletedCertificateGet", collection: c, action: authz.CertificatesRead, handle: objectHandler((*vault.Service).GetDeletedCertificate, certFull)},
		{method: http.MethodDelete, pattern: "/deletedcertificates/{name}", op: "CertificatePurge", collection: c, action: authz.CertificatesPurge, handle: purgeHandler((*vault.Service).PurgeCertificate)},
		{method: http.MethodPost, pattern: "/deletedcertificates/{name}/recover", op: "CertificateRecover", collection: c, action: authz.CertificatesRecover, handle: objectHandler((*vault.Service).RecoverCertificate, certFull)},
	}
}

// extensionRoutes are Keyward's additions on the vault host.
func extensionRoutes() []route {
	return []route{
		// Event subscriptions (webhooks).
		{method: http.MethodGet, pattern: "/eventsubscriptions", op: "EventSubscriptionList", collection: "eventsubscriptions", action: authz.EventSubscriptionsGet, handle: listSubscriptions},
		{method: http.MethodPut, pattern: "/eventsubscriptions/{name}", op: "EventSubscriptionPut", collection: "eventsubscriptions", action: authz.EventSubscriptionsRW, handle: putSubscription},
		{method: http.MethodDelete, pattern: "/eventsubscriptions/{name}", op: "EventSubscriptionDelete", collection: "eventsubscriptions", action: authz.EventSubscriptionsRW, handle: deleteSubscription},
	}
}
