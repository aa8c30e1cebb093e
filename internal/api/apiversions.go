package api

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// apiVersions are every api-version Azure Key Vault's data plane has
// published (Azure/azure-rest-api-specs, specification/keyvault/data-plane
// stable/ and preview/, and the TypeSpec Security.KeyVault.* versions), in
// release order, plus 2026-04-01, which azsecrets v1.5.1 sends. The index is
// the order: a version answers in the shape of its own spec (shapeFor).
var apiVersions = []string{
	"2015-06-01",
	"2016-10-01",
	"7.0-preview", "7.0",
	"7.1-preview", "7.1",
	"7.2-preview", "7.2",
	"7.3-preview", "7.3",
	"7.4-preview.1", "7.4",
	"7.5-preview.1", "7.5",
	"7.6-preview.1", "7.6-preview.2", "7.6",
	"2025-06-01-preview", "2025-06-01",
	"2025-07-01-preview", "2025-07-01",
	"2026-01-01-preview",
	"2026-04-01",
}

const latestVersion = "2026-04-01"

var apiVersionOrder = func() map[string]int {
	m := make(map[string]int, len(apiVersions))
	for i, v := range apiVersions {
		m[v] = i
	}
	return m
}()

// versionBefore reports whether api-version v is older than ref (both known).
func versionBefore(v, ref string) bool { return apiVersionOrder[v] < apiVersionOrder[ref] }

// The fields that differ between api-versions, with the first version whose
// spec has them. Responses to an older version leave them out, and
// recoveryLevel keeps to the values that version's enum knows.
//
//   - attributes.recoveryLevel: 2016-10-01 (soft delete); the
//     CustomizedRecoverable* values: 7.1
//   - attributes.recoverableDays: 7.1
//   - attributes.exportable, release_policy: 7.3-preview
//   - attributes.hsmPlatform: 7.5-preview.1
//   - preserveCertOrder: 7.6-preview.1
type versionShape struct {
	noRecoveryLevel, noCustomizedLevels, noRecoverableDays bool
	noRelease, noHSMPlatform, noPreserveOrder              bool
}

// shapeFor is the shape of api-version v, looked up once per request.
func shapeFor(v string) versionShape { return shapes[v] }

var shapes = func() map[string]versionShape {
	m := make(map[string]versionShape, len(apiVersions))
	for _, v := range apiVersions {
		m[v] = computeShape(v)
	}
	return m
}()

func computeShape(v string) versionShape {
	return versionShape{
		noRecoveryLevel:    versionBefore(v, "2016-10-01"),
		noCustomizedLevels: versionBefore(v, "7.1-preview"),
		noRecoverableDays:  versionBefore(v, "7.1-preview"),
		noRelease:          versionBefore(v, "7.3-preview"),
		noHSMPlatform:      versionBefore(v, "7.5-preview.1"),
		noPreserveOrder:    versionBefore(v, "7.6-preview.1"),
	}
}

func (s versionShape) current() bool { return s == versionShape{} }

// shapeJSON rewrites a JSON response body for an older api-version. Bodies
// for current versions are not touched (no cost on the common path).
func (s versionShape) shapeJSON(body []byte) []byte {
	if s.current() {
		return body
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return body
	}
	s.walk(v, false)
	out, err := json.Marshal(v)
	if err != nil {
		return body
	}
	return out
}

// customizedLevels maps the recovery levels 7.1 added to the ones older
// specs list.
var customizedLevels = map[string]string{
	"CustomizedRecoverable+Purgeable":             "Recoverable+Purgeable",
	"CustomizedRecoverable":                       "Recoverable",
	"CustomizedRecoverable+ProtectedSubscription": "Recoverable+ProtectedSubscription",
}

func (s versionShape) walk(v any, inAttributes bool) {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			s.walk(e, false)
		}
	case map[string]any:
		if inAttributes {
			if s.noRecoveryLevel {
				delete(v, "recoveryLevel")
			} else if lvl, ok := v["recoveryLevel"].(string); ok && s.noCustomizedLevels && customizedLevels[lvl] != "" {
				v["recoveryLevel"] = customizedLevels[lvl]
			}
			if s.noRecoverableDays {
				delete(v, "recoverableDays")
			}
			if s.noRelease {
				delete(v, "exportable")
			}
			if s.noHSMPlatform {
				delete(v, "hsmPlatform")
			}
		}
		if s.noRelease {
			delete(v, "release_policy")
		}
		if s.noPreserveOrder {
			delete(v, "preserveCertOrder")
		}
		for k, e := range v {
			s.walk(e, k == "attributes")
		}
	}
}

// writeShapedJSON is writeJSON for a data-plane reply in the shape of the
// request's api-version.
func writeShapedJSON(w http.ResponseWriter, status int, v any, shape versionShape) {
	if shape.current() || v == nil {
		writeJSON(w, status, v)
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, status, v) // answers the marshalling error
		return
	}
	writeJSON(w, status, json.RawMessage(shape.shapeJSON(raw)))
}
