package api

import (
	"github.com/keyward/keyward/internal/certificates"
	"net/http"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/route"
	"github.com/keyward/keyward/internal/vault"
)

// dataPlaneRoutes is the whole Azure Key Vault data-plane surface Keyward
// serves (AZURE-API.md §1). Order matters: a literal segment must come
// before a parameter that could match it.
func dataPlaneRoutes() route.Table[handler, authz.Action] {
	var all []kwroute
	for _, group := range [][]kwroute{secretRoutes(), keyRoutes(), certificateRoutes(), extensionRoutes()} {
		all = append(all, group...)
	}
	return route.Compile(all)
}

// secretRoutes is the Secrets API (§1.3).
func secretRoutes() []kwroute {
	const s = "secrets"
	return []kwroute{
		{Method: http.MethodGet, Pattern: "/secrets", Op: "SecretList", Object: s, Action: authz.SecretsReadMetadata, Handle: listHandler((*vault.Service).ListSecrets, secretItem)},
		{Method: http.MethodPost, Pattern: "/secrets/restore", Op: "SecretRestore", Object: s, Action: authz.SecretsRestore, Handle: restoreSecret},
		{Method: http.MethodGet, Pattern: "/secrets/{name}/versions", Op: "SecretListVersions", Object: s, Action: authz.SecretsReadMetadata, Handle: versionsHandler((*vault.Service).ListSecretVersions, secretFull)},
		{Method: http.MethodPost, Pattern: "/secrets/{name}/backup", Op: "SecretBackup", Object: s, Action: authz.SecretsBackup, Handle: backupSecret},
		{Method: http.MethodPut, Pattern: "/secrets/{name}", Op: "SecretSet", Object: s, Action: authz.SecretsSetSecret, Handle: setSecret},
		{Method: http.MethodGet, Pattern: "/secrets/{name}/{version?}", Op: "SecretGet", Object: s, Action: authz.SecretsGetSecret, Handle: getSecret},
		{Method: http.MethodPatch, Pattern: "/secrets/{name}/{version?}", Op: "SecretUpdate", Object: s, Action: authz.SecretsUpdate, Handle: updateSecret},
		{Method: http.MethodDelete, Pattern: "/secrets/{name}", Op: "SecretDelete", Object: s, Action: authz.SecretsDelete, Handle: objectHandler((*vault.Service).DeleteSecret, secretFull)},
		{Method: http.MethodGet, Pattern: "/deletedsecrets", Op: "DeletedSecretList", Object: s, Action: authz.SecretsReadDeleted, Handle: listHandler((*vault.Service).ListDeletedSecrets, secretItem)},
		{Method: http.MethodGet, Pattern: "/deletedsecrets/{name}", Op: "DeletedSecretGet", Object: s, Action: authz.SecretsReadDeleted, Handle: objectHandler((*vault.Service).GetDeletedSecret, secretFull)},
		{Method: http.MethodDelete, Pattern: "/deletedsecrets/{name}", Op: "SecretPurge", Object: s, Action: authz.SecretsPurge, Handle: purgeHandler((*vault.Service).PurgeSecret)},
		{Method: http.MethodPost, Pattern: "/deletedsecrets/{name}/recover", Op: "SecretRecover", Object: s, Action: authz.SecretsRecover, Handle: objectHandler((*vault.Service).RecoverSecret, secretFull)},
	}
}

// keyRoutes is the Keys API (§1.2).
func keyRoutes() []kwroute {
	const k = "keys"
	return []kwroute{
		{Method: http.MethodGet, Pattern: "/keys", Op: "KeyList", Object: k, Action: authz.KeysRead, Handle: listHandler((*vault.Service).ListKeys, keyItem)},
		{Method: http.MethodPost, Pattern: "/keys/restore", Op: "KeyRestore", Object: k, Action: authz.KeysRestore, Handle: restoreKey},
		{Method: http.MethodGet, Pattern: "/keys/{name}/versions", Op: "KeyListVersions", Object: k, Action: authz.KeysRead, Handle: versionsHandler((*vault.Service).ListKeyVersions, keyVersionItem)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/create", Op: "KeyCreate", Object: k, Action: authz.KeysCreate, Handle: createKey},
		{Method: http.MethodPost, Pattern: "/keys/{name}/backup", Op: "KeyBackup", Object: k, Action: authz.KeysBackup, Handle: backupKey},
		{Method: http.MethodPost, Pattern: "/keys/{name}/rotate", Op: "KeyRotate", Object: k, Action: authz.KeysRotate, Handle: rotateKey},
		{Method: http.MethodGet, Pattern: "/keys/{name}/rotationpolicy", Op: "KeyRotationPolicyGet", Object: k, Action: authz.KeysRotationRead, Handle: getRotationPolicy},
		{Method: http.MethodPut, Pattern: "/keys/{name}/rotationpolicy", Op: "KeyRotationPolicySet", Object: k, Action: authz.KeysRotationWrite, Handle: setRotationPolicy},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/encrypt", Op: "KeyEncrypt", Object: k, Action: authz.KeysEncrypt, Handle: cryptoHandler(vault.OpEncrypt)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/decrypt", Op: "KeyDecrypt", Object: k, Action: authz.KeysDecrypt, Handle: cryptoHandler(vault.OpDecrypt)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/wrapkey", Op: "KeyWrap", Object: k, Action: authz.KeysWrap, Handle: cryptoHandler(vault.OpWrapKey)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/unwrapkey", Op: "KeyUnwrap", Object: k, Action: authz.KeysUnwrap, Handle: cryptoHandler(vault.OpUnwrapKey)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/sign", Op: "KeySign", Object: k, Action: authz.KeysSign, Handle: cryptoHandler(vault.OpSign)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/verify", Op: "KeyVerify", Object: k, Action: authz.KeysVerify, Handle: cryptoHandler(vault.OpVerify)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/encapsulate", Op: "KeyEncapsulate", Object: k, Action: authz.KeysWrap, Handle: kemHandler(vault.OpEncapsulate)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/decapsulate", Op: "KeyDecapsulate", Object: k, Action: authz.KeysUnwrap, Handle: kemHandler(vault.OpDecapsulate)},
		{Method: http.MethodPost, Pattern: "/keys/{name}/{version?}/release", Op: "KeyRelease", Object: k, Action: authz.KeysRelease, Handle: releaseKey},
		{Method: http.MethodGet, Pattern: "/keys/{name}/{version}/attestation", Op: "KeyAttestation", Object: k, Action: authz.KeysRead, Handle: keyAttestation},
		{Method: http.MethodPut, Pattern: "/keys/{name}", Op: "KeyImport", Object: k, Action: authz.KeysImport, Handle: importKey},
		{Method: http.MethodGet, Pattern: "/keys/{name}/{version?}", Op: "KeyGet", Object: k, Action: authz.KeysRead, Handle: getKey},
		{Method: http.MethodPatch, Pattern: "/keys/{name}/{version?}", Op: "KeyUpdate", Object: k, Action: authz.KeysUpdate, Handle: updateKey},
		{Method: http.MethodDelete, Pattern: "/keys/{name}", Op: "KeyDelete", Object: k, Action: authz.KeysDelete, Handle: objectHandler((*vault.Service).DeleteKey, keyFull)},
		{Method: http.MethodGet, Pattern: "/deletedkeys", Op: "DeletedKeyList", Object: k, Action: authz.KeysReadDeleted, Handle: listHandler((*vault.Service).ListDeletedKeys, keyItem)},
		{Method: http.MethodGet, Pattern: "/deletedkeys/{name}", Op: "DeletedKeyGet", Object: k, Action: authz.KeysReadDeleted, Handle: objectHandler((*vault.Service).GetDeletedKey, keyFull)},
		{Method: http.MethodDelete, Pattern: "/deletedkeys/{name}", Op: "KeyPurge", Object: k, Action: authz.KeysPurge, Handle: purgeHandler((*vault.Service).PurgeKey)},
		{Method: http.MethodPost, Pattern: "/deletedkeys/{name}/recover", Op: "KeyRecover", Object: k, Action: authz.KeysRecover, Handle: objectHandler((*vault.Service).RecoverKey, keyFull)},
	}
}

// certificateRoutes is the Certificates API (§1.4). contacts, issuers and
// restore are reserved names, so they come before {name}; so do the
// literal segments after {name} (policy, pending) before {version?}.
func certificateRoutes() []kwroute {
	const c = "certificates"
	return []kwroute{
		{Method: http.MethodGet, Pattern: "/certificates", Op: "CertificateList", Object: c, Action: authz.CertificatesRead, Handle: listCertificates},
		{Method: http.MethodPost, Pattern: "/certificates/restore", Op: "CertificateRestore", Object: c, Action: authz.CertificatesRestore, Handle: restoreCertificate},
		{Method: http.MethodGet, Pattern: "/certificates/contacts", Op: "CertificateContactsGet", Object: c, Action: authz.CertificateContactsRead, Handle: getContacts},
		{Method: http.MethodPut, Pattern: "/certificates/contacts", Op: "CertificateContactsSet", Object: c, Action: authz.CertificateContactsWrite, Handle: setContacts},
		{Method: http.MethodDelete, Pattern: "/certificates/contacts", Op: "CertificateContactsDelete", Object: c, Action: authz.CertificateContactsWrite, Handle: deleteContacts},
		{Method: http.MethodGet, Pattern: "/certificates/issuers", Op: "CertificateIssuerList", Object: c, Action: authz.CertificateIssuersRead, Handle: listIssuers},
		{Method: http.MethodGet, Pattern: "/certificates/issuers/{issuer}", Op: "CertificateIssuerGet", Object: c, Action: authz.CertificateIssuersRead, Handle: getIssuer},
		{Method: http.MethodPut, Pattern: "/certificates/issuers/{issuer}", Op: "CertificateIssuerSet", Object: c, Action: authz.CertificateIssuersWrite, Handle: putIssuer},
		{Method: http.MethodPatch, Pattern: "/certificates/issuers/{issuer}", Op: "CertificateIssuerUpdate", Object: c, Action: authz.CertificateIssuersWrite, Handle: patchIssuer},
		{Method: http.MethodDelete, Pattern: "/certificates/issuers/{issuer}", Op: "CertificateIssuerDelete", Object: c, Action: authz.CertificateIssuersDelete, Handle: deleteIssuer},
		{Method: http.MethodGet, Pattern: "/certificates/{name}/versions", Op: "CertificateListVersions", Object: c, Action: authz.CertificatesRead, Handle: versionsHandler((*certificates.Service).ListCertificateVersions, certVersionItem)},
		{Method: http.MethodPost, Pattern: "/certificates/{name}/create", Op: "CertificateCreate", Object: c, Action: authz.CertificatesCreate, Handle: createCertificate},
		{Method: http.MethodPost, Pattern: "/certificates/{name}/import", Op: "CertificateImport", Object: c, Action: authz.CertificatesImport, Handle: importCertificate},
		{Method: http.MethodPost, Pattern: "/certificates/{name}/backup", Op: "CertificateBackup", Object: c, Action: authz.CertificatesBackup, Handle: backupCertificate},
		{Method: http.MethodGet, Pattern: "/certificates/{name}/policy", Op: "CertificatePolicyGet", Object: c, Action: authz.CertificatesRead, Handle: getCertificatePolicy},
		{Method: http.MethodPatch, Pattern: "/certificates/{name}/policy", Op: "CertificatePolicyUpdate", Object: c, Action: authz.CertificatesUpdate, Handle: updateCertificatePolicy},
		{Method: http.MethodGet, Pattern: "/certificates/{name}/pending", Op: "CertificatePendingGet", Object: c, Action: authz.CertificatesRead, Handle: getCertificateOperation},
		{Method: http.MethodPatch, Pattern: "/certificates/{name}/pending", Op: "CertificatePendingUpdate", Object: c, Action: authz.CertificatesUpdate, Handle: updateCertificateOperation},
		{Method: http.MethodDelete, Pattern: "/certificates/{name}/pending", Op: "CertificatePendingDelete", Object: c, Action: authz.CertificatesUpdate, Handle: deleteCertificateOperation},
		{Method: http.MethodPost, Pattern: "/certificates/{name}/pending/merge", Op: "CertificatePendingMerge", Object: c, Action: authz.CertificatesCreate, Handle: mergeCertificate},
		{Method: http.MethodGet, Pattern: "/certificates/{name}/{version?}", Op: "CertificateGet", Object: c, Action: authz.CertificatesRead, Handle: getCertificate},
		{Method: http.MethodPatch, Pattern: "/certificates/{name}/{version?}", Op: "CertificateUpdate", Object: c, Action: authz.CertificatesUpdate, Handle: updateCertificate},
		{Method: http.MethodDelete, Pattern: "/certificates/{name}", Op: "CertificateDelete", Object: c, Action: authz.CertificatesDelete, Handle: objectHandler((*certificates.Service).DeleteCertificate, certFull)},
		{Method: http.MethodGet, Pattern: "/deletedcertificates", Op: "DeletedCertificateList", Object: c, Action: authz.CertificatesRead, Handle: listHandler((*certificates.Service).ListDeletedCertificates, certItem)},
		{Method: http.MethodGet, Pattern: "/deletedcertificates/{name}", Op: "DeletedCertificateGet", Object: c, Action: authz.CertificatesRead, Handle: objectHandler((*certificates.Service).GetDeletedCertificate, certFull)},
		{Method: http.MethodDelete, Pattern: "/deletedcertificates/{name}", Op: "CertificatePurge", Object: c, Action: authz.CertificatesPurge, Handle: purgeHandler((*certificates.Service).PurgeCertificate)},
		{Method: http.MethodPost, Pattern: "/deletedcertificates/{name}/recover", Op: "CertificateRecover", Object: c, Action: authz.CertificatesRecover, Handle: objectHandler((*certificates.Service).RecoverCertificate, certFull)},
	}
}

// extensionRoutes are Keyward's additions on the vault host.
func extensionRoutes() []kwroute {
	out := []kwroute{
		// Event subscriptions (webhooks).
		{Method: http.MethodGet, Pattern: "/eventsubscriptions", Op: "EventSubscriptionList", Object: "eventsubscriptions", Action: authz.EventSubscriptionsGet, Handle: listSubscriptions},
		{Method: http.MethodPut, Pattern: "/eventsubscriptions/{name}", Op: "EventSubscriptionPut", Object: "eventsubscriptions", Action: authz.EventSubscriptionsRW, Handle: putSubscription},
		{Method: http.MethodDelete, Pattern: "/eventsubscriptions/{name}", Op: "EventSubscriptionDelete", Object: "eventsubscriptions", Action: authz.EventSubscriptionsRW, Handle: deleteSubscription},
	}
	return append(out, quorumRoutes(authz.VaultsRead, authz.VaultsWrite)...)
}

// quorumRoutes are the approval API and the quorum policy of a vault or a
// pool (quorum.go, docs/QUORUM.md). The approval routes have no action:
// the request's own approvers decide who may see and decide it. The
// policy is read and written with the surface's actions.
func quorumRoutes(read, write authz.Action) []kwroute {
	return []kwroute{
		{Method: http.MethodGet, Pattern: "/approvals", Op: "ApprovalList", Object: "approvals", Handle: listApprovals},
		{Method: http.MethodGet, Pattern: "/approvals/{id}", Op: "ApprovalGet", Object: "approvals", Handle: getApproval},
		{Method: http.MethodGet, Pattern: "/approvals/{id}/result", Op: "ApprovalResultGet", Object: "approvals", Handle: getApprovalResult},
		{Method: http.MethodPost, Pattern: "/approvals/{id}/approve", Op: "ApprovalApprove", Object: "approvals", Handle: decideApproval(true)},
		{Method: http.MethodPost, Pattern: "/approvals/{id}/reject", Op: "ApprovalReject", Object: "approvals", Handle: decideApproval(false)},
		{Method: http.MethodGet, Pattern: "/quorumpolicy", Op: "QuorumPolicyGet", Object: "quorumpolicy", Action: read, Handle: getQuorumPolicy},
		{Method: http.MethodPut, Pattern: "/quorumpolicy", Op: "QuorumPolicySet", Object: "quorumpolicy", Action: write, Handle: putQuorumPolicy},
		{Method: http.MethodDelete, Pattern: "/quorumpolicy", Op: "QuorumPolicyDelete", Object: "quorumpolicy", Action: write, Handle: deleteQuorumPolicy},
	}
}
