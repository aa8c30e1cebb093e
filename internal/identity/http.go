package identity

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/errs"
)

func (a *Authority) serveDiscovery(w http.ResponseWriter, r *http.Request, tenant string, v2 bool) {
	if _, err := a.dir.Tenant(r.Context(), tenant); err != nil {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", safe(tenant)))
		return
	}
	base := a.base + tenant
	doc := map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                a.Issuer(tenant),
		"request_uri_parameter_supported":       false,
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   "keyward",
		"cloud_graph_host_name":                 "graph.keyward",
		"msgraph_host":                          "graph.keyward",
	}
	if !v2 {
		doc["token_endpoint"] = base + "/oauth2/token"
		doc["authorization_endpoint"] = base + "/oauth2/authorize"
		doc["jwks_uri"] = base + "/discovery/keys"
	}
	writeJSON(w, http.StatusOK, doc)
}

const maxTokenRequest = 64 << 10

// serveToken is in grants.go.

// resourceFromScope picks the "<resource>/.default" scope out of a
// space-separated scope list; openid, profile and offline_access are ignored.
func resourceFromScope(scope string) string {
	for _, s := range strings.Fields(scope) {
		if strings.HasSuffix(s, "/.default") {
			return strings.TrimSuffix(s, "/.default")
		}
	}
	return ""
}

func matchResource(resource string, resources []string) (string, bool) {
	r := strings.TrimRight(resource, "/")
	if r == "" {
		return "", false
	}
	for _, c := range resources {
		if strings.EqualFold(r, strings.TrimRight(c, "/")) {
			return c, true
		}
	}
	return "", false
}

// oauthStatus is the token service's one table from an error kind to an
// HTTP status, as Entra answers: most failures are 400 (invalid_request,
// invalid_grant, unauthorized_client ...), a bad client credential 401,
// limits 429, a transient failure 500.
func oauthStatus(k errs.Kind) int {
	switch k {
	case errs.Unauthorized:
		return http.StatusUnauthorized
	case errs.Forbidden:
		return http.StatusForbidden
	case errs.Throttled:
		return http.StatusTooManyRequests
	case errs.Unavailable, errs.Internal:
		return http.StatusInternalServerError
	case errs.Sealed:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// oauthError writes Entra's error body.
func (a *Authority) oauthError(w http.ResponseWriter, r *http.Request, status int, code string, aadsts int, desc string) {
	ev := audit.EventFrom(r.Context())
	ev.ErrorCode = code
	trace := uuid.NewString()
	corr := r.Header.Get("client-request-id")
	if _, err := uuid.Parse(corr); err != nil {
		corr = uuid.NewString()
	}
	now := a.clock.Now().UTC()
	writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			aadsts, desc, trace, corr, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{aadsts},
		"timestamp":      now.Format("2006-01-02 15:04:05Z"),
		"trace_id":       trace,
		"correlation_id": corr,
	})
}

// safe trims caller-supplied text echoed in an error to something short
// and printable.
func safe(s string) string {
	if len(s) > 128 {
		s = s[:128]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
