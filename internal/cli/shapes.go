package cli

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// The shapes az prints: the SDK's wire JSON with az's names (camelCase,
// "expires"/"notBefore", ISO 8601 times with +00:00, every field present,
// null when absent) and the object's name taken from its ID (az's
// extract_subresource_name). The converters take the SDK's own models.

// wire is an SDK model's wire JSON as a map.
func wire(v any) map[string]any {
	m, _ := toAny(v).(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// isoTime is Python's datetime.isoformat() of a UTC time: az prints
// attribute times so.
func isoTime(v any) any {
	n, ok := v.(json.Number)
	if !ok {
		return v
	}
	sec, err := n.Int64()
	if err != nil {
		return v
	}
	return time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05+00:00")
}

func ensure(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			m[k] = nil
		}
	}
	return m
}

func rename(m map[string]any, from, to string) {
	if v, ok := m[from]; ok {
		delete(m, from)
		m[to] = v
	}
}

// azAttributes converts object attributes: created, updated, exp, nbf
// (Unix seconds) to ISO times named created, updated, expires, notBefore.
func azAttributes(a any, extra ...string) any {
	m, ok := a.(map[string]any)
	if !ok {
		return nil
	}
	rename(m, "exp", "expires")
	rename(m, "nbf", "notBefore")
	for _, k := range []string{"created", "updated", "expires", "notBefore"} {
		if v, ok := m[k]; ok {
			m[k] = isoTime(v)
		}
	}
	return ensure(m, append([]string{"created", "enabled", "expires", "notBefore", "recoverableDays", "recoveryLevel", "updated"}, extra...)...)
}

// nameFromID is segment 4 of an object ID (https://host/kind/NAME/...).
func nameFromID(id any) any {
	s, _ := id.(string)
	parts := strings.Split(s, "/")
	if len(parts) > 4 {
		return parts[4]
	}
	return nil
}

func deletedFields(m map[string]any) {
	for _, k := range []string{"deletedDate", "scheduledPurgeDate"} {
		if v, ok := m[k]; ok {
			m[k] = isoTime(v)
		}
	}
	ensure(m, "deletedDate", "recoveryId", "scheduledPurgeDate")
}

// azSecret: az keyvault secret show|set|delete|recover|restore.
func azSecret(v any, deleted bool) map[string]any {
	m := wire(v)
	m["attributes"] = azAttributes(m["attributes"])
	ensure(m, "attributes", "contentType", "id", "kid", "managed", "tags")
	if _, ok := m["value"]; !ok && !deleted {
		m["value"] = nil
	}
	m["name"] = nameFromID(m["id"])
	if deleted {
		deletedFields(m)
	}
	return m
}

// azSecretItem: one row of az keyvault secret list|list-versions.
func azSecretItem(v any) map[string]any {
	m := wire(v)
	m["attributes"] = azAttributes(m["attributes"])
	ensure(m, "attributes", "contentType", "id", "managed", "tags")
	m["name"] = nameFromID(m["id"])
	return m
}

var jwkBytes = []string{"n", "e", "d", "dp", "dq", "p", "q", "qi", "k", "x", "y", "t"}

// azJWK is az's JsonWebKey: keyOps, and key bytes in standard base64
// (transform_key_output b64encodes them).
func azJWK(k any) any {
	m, ok := k.(map[string]any)
	if !ok {
		return nil
	}
	rename(m, "key_ops", "keyOps")
	for _, f := range jwkBytes {
		if s, ok := m[f].(string); ok {
			if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "=")); err == nil {
				m[f] = base64.StdEncoding.EncodeToString(raw)
			}
		}
	}
	return ensure(m, "crv", "d", "dp", "dq", "e", "k", "keyOps", "kid", "kty", "n", "p", "q", "qi", "t", "x", "y")
}

// azKey: az keyvault key create|show|import|rotate (and delete/recover
// with the deleted fields).
func azKey(v any, deleted bool) map[string]any {
	m := wire(v)
	m["attributes"] = azAttributes(m["attributes"], "exportable", "hsmPlatform")
	m["key"] = azJWK(m["key"])
	rename(m, "release_policy", "releasePolicy")
	ensure(m, "attributes", "key", "managed", "releasePolicy", "tags")
	if deleted {
		deletedFields(m)
		if k, ok := m["key"].(map[string]any); ok {
			m["name"] = nameFromID(k["kid"])
		}
	}
	return m
}

// azKeyItem: one row of az keyvault key list|list-versions.
func azKeyItem(v any) map[string]any {
	m := wire(v)
	m["attributes"] = azAttributes(m["attributes"], "exportable", "hsmPlatform")
	ensure(m, "attributes", "kid", "managed", "tags")
	m["name"] = nameFromID(m["kid"])
	return m
}

// azRotationPolicy: az keyvault key rotation-policy show|update
// (KeyRotationPolicy of azure-keyvault-keys).
func azRotationPolicy(v any) map[string]any {
	m := wire(v)
	out := map[string]any{"id": m["id"], "createdOn": nil, "updatedOn": nil, "expiresIn": nil, "lifetimeActions": []any{}}
	if a, ok := m["attributes"].(map[string]any); ok {
		if c, ok := a["created"]; ok {
			out["createdOn"] = isoTime(c)
		}
		if u, ok := a["updated"]; ok {
			out["updatedOn"] = isoTime(u)
		}
		out["expiresIn"] = a["expiryTime"]
	}
	if las, ok := m["lifetimeActions"].([]any); ok {
		var acts []any
		for _, la := range las {
			l, _ := la.(map[string]any)
			trig, _ := l["trigger"].(map[string]any)
			act, _ := l["action"].(map[string]any)
			a := map[string]any{"action": nil, "timeAfterCreate": nil, "timeBeforeExpiry": nil}
			if act != nil {
				a["action"] = act["type"]
			}
			if trig != nil {
				a["timeAfterCreate"], a["timeBeforeExpiry"] = trig["timeAfterCreate"], trig["timeBeforeExpiry"]
			}
			acts = append(acts, a)
		}
		if acts != nil {
			out["lifetimeActions"] = acts
		}
	}
	return out
}

// azPolicy: a certificate policy as az prints it (the track-1 model's
// names).
func azPolicy(p any) any {
	m, ok := p.(map[string]any)
	if !ok {
		return nil
	}
	if a, ok := m["attributes"]; ok {
		m["attributes"] = azAttributes(a)
	}
	if kp, ok := m["key_props"].(map[string]any); ok {
		rename(kp, "kty", "keyType")
		rename(kp, "key_size", "keySize")
		rename(kp, "reuse_key", "reuseKey")
		rename(kp, "crv", "curve")
		ensure(kp, "curve", "exportable", "keySize", "keyType", "reuseKey")
	}
	rename(m, "key_props", "keyProperties")
	rename(m, "secret_props", "secretProperties")
	if xp, ok := m["x509_props"].(map[string]any); ok {
		rename(xp, "key_usage", "keyUsage")
		rename(xp, "validity_months", "validityInMonths")
		if sans, ok := xp["sans"].(map[string]any); ok {
			rename(sans, "dns_names", "dnsNames")
			rename(sans, "ipAddresses", "ipAddresses")
			ensure(sans, "dnsNames", "emails", "upns")
		}
		rename(xp, "sans", "subjectAlternativeNames")
		ensure(xp, "ekus", "keyUsage", "subject", "subjectAlternativeNames", "validityInMonths")
	}
	rename(m, "x509_props", "x509CertificateProperties")
	if las, ok := m["lifetime_actions"].([]any); ok {
		for _, la := range las {
			l, _ := la.(map[string]any)
			if t, ok := l["trigger"].(map[string]any); ok {
				rename(t, "lifetime_percentage", "lifetimePercentage")
				rename(t, "days_before_expiry", "daysBeforeExpiry")
				ensure(t, "daysBeforeExpiry", "lifetimePercentage")
			}
			if a, ok := l["action"].(map[string]any); ok {
				rename(a, "action_type", "actionType")
			}
		}
	}
	rename(m, "lifetime_actions", "lifetimeActions")
	m["issuerParameters"] = azIssuer(m["issuer"])
	delete(m, "issuer")
	return ensure(m, "attributes", "id", "issuerParameters", "keyProperties", "lifetimeActions", "secretProperties", "x509CertificateProperties")
}

func azIssuer(v any) any {
	i, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	rename(i, "cty", "certificateType")
	rename(i, "cert_transparency", "certificateTransparency")
	return ensure(i, "certificateTransparency", "certificateType", "name")
}

// azCertificate: az keyvault certificate show|import|pending merge.
func azCertificate(v any, deleted bool) map[string]any {
	m := wire(v)
	m["attributes"] = azAttributes(m["attributes"])
	m["policy"] = azPolicy(m["policy"])
	rename(m, "x5t", "x509Thumbprint")
	ensure(m, "attributes", "cer", "contentType", "id", "kid", "policy", "sid", "tags", "x509Thumbprint")
	delete(m, "preserveCertOrder")
	m["name"] = nameFromID(m["id"])
	if deleted {
		deletedFields(m)
	}
	return m
}

// azCertificateItem: one row of az keyvault certificate list.
func azCertificateItem(v any) map[string]any {
	m := wire(v)
	m["attributes"] = azAttributes(m["attributes"])
	rename(m, "x5t", "x509Thumbprint")
	ensure(m, "attributes", "id", "tags", "x509Thumbprint")
	m["name"] = nameFromID(m["id"])
	return m
}

// azOperation: az keyvault certificate create / pending show.
func azOperation(v any) map[string]any {
	m := wire(v)
	m["issuerParameters"] = azIssuer(m["issuer"])
	delete(m, "issuer")
	rename(m, "cancellation_requested", "cancellationRequested")
	rename(m, "status_details", "statusDetails")
	rename(m, "request_id", "requestId")
	delete(m, "preserveCertOrder")
	ensure(m, "cancellationRequested", "csr", "error", "id", "issuerParameters", "requestId", "status", "statusDetails", "target")
	m["name"] = nameFromID(m["id"])
	return m
}
