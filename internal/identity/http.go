package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
)

// Handler serves the token service under the authority URL:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/.well-known/openid-configuration      (v1 shape)
//	GET  /{tenant}/discovery/v2.0/keys, /{tenant}/discovery/keys
//	POST /{tenant}/oauth2/v2.0/token                       (client_credentials)
//	POST /{tenant}/oauth2/token                            (v1: resource=)
//
// Resources lists the audiences tokens may be issued for (each without a
// trailing slash). It returns false when the path is not its own.
func (a *Authority) ServeHTTP(w http.ResponseWriter, r *http.Request, resources []string) bool {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 2 {
		return false
	}
	tenant := strings.ToLower(segs[0])
	rest := strings.ToLower(strings.Join(segs[1:], "/"))
	ev := audit.EventFrom(r.Context())
	ev.Service = "identity"
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

func (a *Authority) serveToken(w http.ResponseWriter, r *http.Request, tenant string, v1 bool, resources []string) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	ev.Caller.TenantID = tenant
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'grant_type'.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be parsed.")
		return
	}
	form := r.PostForm
	if _, err := a.dir.Tenant(ctx, tenant); err != nil {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", safe(tenant)))
		return
	}
	grant := form.Get("grant_type")
	if grant != "client_credentials" {
		a.oauthError(w, r, http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '"+safe(grant)+"'.")
		return
	}
	var resource string
	if v1 {
		resource = form.Get("resource")
	} else {
		resource = resourceFromScope(form.Get("scope"))
	}
	canonical, ok := matchResource(resource, resources)
	if !ok {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_scope", 500011,
			"The resource principal named "+safe(resource)+" was not found in the tenant.")
		return
	}
	clientID := form.Get("client_id")
	secret := form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok && clientID == "" {
		clientID, secret = u, p
	}
	ev.Caller.AppID = safe(clientID)
	if clientID == "" {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144,
			"The request body must contain the following parameter: 'client_id'.")
		return
	}
	if form.Get("client_assertion") != "" {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_client", 7000218,
			"Client assertions are not enabled for this application.")
		return
	}
	if secret == "" {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	sp, err := a.dir.AuthenticateSecret(ctx, tenant, clientID, secret, a.clock.Now())
	switch {
	case errors.Is(err, ErrNotFound):
		a.oauthError(w, r, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", safe(clientID), tenant))
		return
	case errors.Is(err, ErrInvalidCredential):
		a.oauthError(w, r, http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+safe(clientID)+"'.")
		return
	case err != nil:
		a.oauthError(w, r, http.StatusInternalServerError, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
		return
	}
	ev.Caller.ObjectID = sp.ObjectID
	ev.ObjectID = sp.ObjectID
	tok, exp, err := a.IssueAppToken(sp, canonical)
	if err != nil {
		a.oauthError(w, r, http.StatusInternalServerError, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
		return
	}
	secs := int(time.Until(exp).Seconds())
	if secs <= 0 || secs > int(a.Lifetime.Seconds()) {
		secs = int(a.Lifetime.Seconds())
	}
	resp := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   tok,
	}
	if v1 {
		resp["expires_on"] = strconv.FormatInt(exp.Unix(), 10)
		resp["resource"] = canonical
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

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
