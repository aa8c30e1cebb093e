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

// Handler serves the token service under the authority URL:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/.well-known/openid-configuration      (v1 shape)
//	GET  /adfs/{tenant}/adfs/.well-known/openid-configuration (for az CLI < 2.54)
//	GET  /{tenant}/discovery/v2.0/keys, /{tenant}/discovery/keys
//	POST /{tenant}/oauth2/v2.0/token                       (client_credentials)
//	POST /{tenant}/oauth2/token                            (v1: resource=)
//
// Resources lists the audiences tokens may be issued for (each without a
// trailing slash). It returns false when the path is not its own.
func (a *Authority) ServeHTTP(w http.ResponseWriter, r *http.Request, resources []string) bool {
	if a.serveExtensions(w, r, resources) {
		return true
	}
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 2 {
		return false
	}
	tenant := strings.ToLower(segs[0])
	rest := strings.ToLower(strings.Join(segs[1:], "/"))
	ev := audit.EventFrom(r.Context())
	ev.Service = "identity"
	if tenant == "adfs" && len(segs) == 5 && strings.HasSuffix(rest, "/adfs/.well-known/openid-configuration") && r.Method == http.MethodGet {
		// The ADFS-shaped authority {base}adfs/{tenant}/adfs: MSAL (Python,
		// .NET, Go) skips instance discovery for an authority whose first
		// path segment is "adfs", and az CLI < 2.54 has no other way to skip
		// it (IDENTITY.md §5, docs/CLIENTS.md). The document points at the
		// tenant's own endpoints, so tokens are the tenant's as usual.
		ev.Operation = "OpenIDConfiguration"
		a.serveDiscovery(w, r, strings.ToLower(segs[1]), true)
		return true
	}
	if tenant == "adfs" && rest == ".well-known/openid-configuration" && r.Method == http.MethodGet {
		ev.Operation = "OpenIDConfiguration"
		a.oauthError(w, r, http.StatusBadRequest, "invalid_tenant", 90002,
			"An ADFS-shaped authority names its tenant here: "+a.base+"adfs/{tenant}/adfs (`keyward az-cloud` prints the az cloud register line).")
		return true
	}
	switch {
	case r.Method == http.MethodGet && rest == "v2.0/.well-known/openid-configuration":
		ev.Operation = "OpenIDConfiguration"
		a.serveDiscovery(w, r, tenant, true)
	case r.Method == http.MethodGet && rest == ".well-known/openid-configuration":
		ev.Operation = "OpenIDConfiguration"
		a.serveDiscovery(w, r, tenant, false)
	case r.Method == http.MethodGet && (rest == "discovery/v2.0/keys" || rest == "discovery/keys"):
		ev.Operation = "JWKS"
		writeJSON(w, http.StatusOK, map[string]any{"keys": a.JWKS()})
	case r.Method == http.MethodPost && (rest == "oauth2/v2.0/token" || rest == "oauth2/token"):
		ev.Operation = "TokenIssue"
		a.serveToken(w, r, tenant, rest == "oauth2/token", resources)
	default:
		return false
	}
	return true
}

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
