package audit

import (
	"math"
	"strconv"
	"strings"
)

// This file: Azure Key Vault's AuditEvent diagnostic-log fields.
//
// Azure names every data-plane operation in its logs (operationName); most
// of Keyward's operation names are already Azure's, the others are mapped
// here. Names of operations Azure does not log (Keyward's token service,
// its operator endpoints) are kept as Keyward names them.

// azureNames maps Keyward operation names to Azure's where they differ.
var azureNames = map[string]string{
	"VaultCreateOrUpdate":     "VaultPut",
	"VaultUpdate":             "VaultPatch",
	"DeletedVaultGet":         "VaultGetDeleted",
	"DeletedVaultList":        "VaultListDeleted",
	"DeletedVaultPurge":       "VaultPurge",
	"DeletedSecretGet":        "SecretGetDeleted",
	"DeletedSecretList":       "SecretListDeleted",
	"DeletedKeyGet":           "KeyGetDeleted",
	"DeletedKeyList":          "KeyListDeleted",
	"DeletedCertificateGet":   "CertificateGetDeleted",
	"DeletedCertificateList":  "CertificateListDeleted",
	"KeyWrapKey":              "KeyWrap",
	"KeyUnwrapKey":            "KeyUnwrap",
	"CertificatePendingMerge": "CertificatePendingMerge",
	"CertificateMerge":        "CertificatePendingMerge",
	"RoleAssignmentCreate":    "RoleAssignmentPut",
}

// AzureOperationName returns Azure's operationName for a Keyward
// operation name.
func AzureOperationName(op string) string {
	if n, ok := azureNames[op]; ok {
		return n
	}
	return op
}

// statusText is Azure's resultSignature: the HTTP reason phrase of the
// status (without net/http, which the domain does not import).
var statusText = map[int]string{
	200: "OK", 201: "Created", 202: "Accepted", 204: "NoContent",
	301: "MovedPermanently", 302: "Found", 304: "NotModified",
	400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
	405: "MethodNotAllowed", 409: "Conflict", 410: "Gone", 412: "PreconditionFailed",
	413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 429: "TooManyRequests",
	500: "InternalServerError", 501: "NotImplemented", 502: "BadGateway",
	503: "ServiceUnavailable", 504: "GatewayTimeout",
}

// Complete fills the Azure fields from Keyward's: operationName,
// operationVersion, category, result*, durationMs, callerIpAddress,
// identity and the properties the pipeline did not set (id, status code,
// clientInfo, authorization). It may be called more than once.
func (e *Event) Complete() {
	e.OperationName = AzureOperationName(e.Operation)
	e.OperationVersion = e.APIVersion
	e.Category = "AuditEvent"
	if e.Status != 0 && e.Status < 400 {
		e.ResultType = "Success"
	} else {
		e.ResultType = "Failure"
	}
	if t, ok := statusText[e.Status]; ok {
		e.ResultSignature = t
	} else {
		e.ResultSignature = strconv.Itoa(e.Status)
	}
	switch {
	case e.Reason != "":
		e.ResultDescription = e.Reason
	case e.ErrorCode != "":
		e.ResultDescription = e.ErrorCode
	default:
		e.ResultDescription = ""
	}
	if !math.IsNaN(e.LatencyMS) && e.LatencyMS >= 0 && e.LatencyMS < 1e15 {
		e.DurationMS = int64(math.Round(e.LatencyMS))
	}
	e.CallerIPAddress = e.Caller.IP
	e.Identity.Claim = Claims{ObjectID: e.Caller.ObjectID, AppID: e.Caller.AppID, UPN: e.Caller.UPN, TenantID: e.Caller.TenantID}
	p := &e.Properties
	if e.APIVersion != "" && p.RequestURI != "" && !strings.Contains(p.RequestURI, "?") {
		p.RequestURI += "?api-version=" + e.APIVersion
	}
	p.ID = e.ObjectID
	p.HTTPStatusCode = e.Status
	p.ClientInfo = e.UserAgent
	p.IsRbacAuthorized = e.Authz == "rbac"
	p.IsAccessPolicyMatch = e.Authz == "policy"
}

// TLSVersionName is Azure's tlsVersion for a crypto/tls version number.
func TLSVersionName(v uint16) string {
	switch v {
	case 0x0301:
		return "TLS1_0"
	case 0x0302:
		return "TLS1_1"
	case 0x0303:
		return "TLS1_2"
	case 0x0304:
		return "TLS1_3"
	}
	return ""
}

// VaultResourceID is Azure's resourceId of a vault, upper-case as Azure
// writes it in diagnostic logs.
func VaultResourceID(subscription, resourceGroup, name string) string {
	return strings.ToUpper("/subscriptions/" + subscription + "/resourceGroups/" + resourceGroup +
		"/providers/Microsoft.KeyVault/vaults/" + name)
}
