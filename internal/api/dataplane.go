package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/jsonbody"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/throttle"
	"github.com/keyward/keyward/internal/vault"
)

// request is one data-plane request after authentication.
type request struct {
	h          *Handler
	w          http.ResponseWriter
	r          *http.Request
	ev         *audit.Event
	vault      *vault.Vault
	pool       *mhsm.Pool // a managed HSM pool's request (pool.go); vault is its container
	principal  authz.Principal
	params     map[string]string
	query      url.Values // r.URL.Query(), parsed once
	apiVersion string
	base       string // https://{host[:port]}, no trailing slash
}

func (h *Handler) serveVault(w http.ResponseWriter, r *http.Request, name string, st *requestState) {
	ev := &st.event
	if h.seal.Sealed() {
		h.writeErr(w, r, barrier.ErrSealed)
		return
	}
	v, err := h.vaults.Vault(name)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	ev.ResourceID = audit.VaultResourceID(v.SubscriptionID, v.ResourceGroup, v.Name)
	hdr := w.Header()
	st.setHeader(hdr, hdrRegion, v.Location)
	hdr[hdrServiceVersion] = hvServiceVersion
	ip := ev.Caller.IP
	fam := "InterNetwork"
	if strings.Contains(ip, ":") {
		fam = "InterNetworkV6"
	}
	st.setHeader(hdr, hdrNetworkInfo, "conn_type=Ipv4;addr="+ip+";act_addr_fam="+fam+";")

	// The route is looked up first only to name the operation in the audit
	// event; nothing is answered from it before authentication.
	rt, params, allowed := h.routes.Match(r.Method, r.URL.EscapedPath())
	if rt != nil {
		ev.Operation = rt.Op
	}

	// 1. Authentication, before anything about the request is looked at.
	claims, reason, err := h.authenticate(r, v)
	if err != nil {
		ev.Reason = reason
		h.challenge(w, r, v, err)
		return
	}
	ev.Caller.TenantID, ev.Caller.ObjectID, ev.Caller.AppID = claims.TenantID, claims.ObjectID, firstNonEmpty(claims.AZP, claims.AppID)

	// 2. api-version (the data plane's rule: checkAPIVersion).
	q := r.URL.Query()
	apiVersion := q.Get("api-version")
	ev.APIVersion = clipString(apiVersion, 32)
	if err := checkAPIVersion(apiVersion); err != nil {
		h.writeErr(w, r, err)
		return
	}

	// 3. Route.
	if rt == nil {
		if allowed {
			h.writeErr(w, r, &apiError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", message: "The requested method is not allowed on this resource."})
			return
		}
		h.writeErr(w, r, &apiError{status: http.StatusNotFound, code: "NotFound", message: "The requested resource was not found."})
		return
	}
	rq := &request{
		h: h, w: w, r: r, ev: ev, vault: v, params: params, query: q, apiVersion: apiVersion,
		base: "https://" + r.Host,
		principal: authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID,
			AppID: firstNonEmpty(claims.AZP, claims.AppID)},
	}
	if n := params["name"]; n != "" {
		ev.ObjectID = rq.objectURL(rt.Object, n, params["version"])
	}

	// 4. Network rules, then authorization (access.go).
	if !h.checkAccess(rq, rt, claims) {
		return
	}

	// 5. Throttling (AZURE-API.md §8): per vault and per principal
	// (steps.go).
	if d := h.allow(v.ID, claims); !d.Allowed {
		h.throttled(w, r, d)
		return
	}

	// 6. Quorum approval: a protected operation waits for its approvers
	// (quorum.go).
	if h.divert(rq, rt) {
		return
	}

	// 7. The operation.
	if err := rt.Handle(rq); err != nil {
		h.writeErr(w, r, err)
	}
}

// throttled answers 429 as Azure Key Vault does: error code Throttled and
// Retry-After in whole seconds, which every Azure SDK's retry policy honours.
func (h *Handler) throttled(w http.ResponseWriter, r *http.Request, d throttle.Decision) {
	secs := int64(math.Ceil(d.RetryAfter.Seconds()))
	setHeader(w.Header(), hdrRetryAfter, strconv.FormatInt(max(secs, 1), 10))
	reason := "VaultRequestTypeLimitReached"
	if d.Scope == throttle.PrincipalScope {
		reason = "PrincipalRequestLimitReached"
	}
	audit.EventFrom(r.Context()).Reason = "throttled: " + string(d.Scope) + " limit"
	h.writeErr(w, r, &apiError{status: http.StatusTooManyRequests, code: "Throttled",
		message: "Request was not processed because too many requests were received. Reason: " + reason})
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// authenticate validates the bearer token for vault v.
func (h *Handler) authenticate(r *http.Request, v *vault.Vault) (*identity.Claims, string, error) {
	authz := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, "no bearer token", errNoToken
	}
	claims, reason, err := h.authority.Validate(strings.TrimSpace(tok), h.vaultAudiences)
	if err != nil {
		return nil, reason, err
	}
	if !strings.EqualFold(claims.TenantID, v.TenantID) {
		return nil, "token is for another tenant", identity.ErrInvalidToken
	}
	return claims, "", nil
}

// challenge answers 401 with exactly one WWW-Authenticate header in the
// form every SDK parses (AZURE-API.md §0.4, §2): the authorization URL ends
// in the vault's tenant, the resource includes the port.
func (h *Handler) challenge(w http.ResponseWriter, r *http.Request, v *vault.Vault, err error) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s%s", resource="%s"`,
		h.authority.BaseURL(), v.TenantID, h.cfg.VaultResource()))
	msg := "AKV10000: Request is missing a Bearer or PoP token."
	if !errors.Is(err, errNoToken) {
		msg = "AKV10032: The bearer token is invalid: " + audit.EventFrom(r.Context()).Reason + "."
	}
	h.writeErr(w, r, &apiError{status: http.StatusUnauthorized, code: "Unauthorized", message: msg})
}

// objectURL is the full identifier of an object: what the SDKs parse.
func (rq *request) objectURL(collection, name, version string) string {
	if version == "" {
		return rq.base + "/" + collection + "/" + name
	}
	return rq.base + "/" + collection + "/" + name + "/" + version // one allocation
}

// decode reads a JSON body into v. Bodies are capped; anything that is not
// a JSON object of the expected shape is a 400.
func (rq *request) decode(v any) error {
	raw, err := rq.readBody()
	if err != nil {
		return err
	}
	defer clear(raw)
	return decodeJSON(raw, v)
}

// readBody reads the whole body, capped at MaxBodyBytes (413 above it).
// The caller clears it when done: bodies may hold secrets.
func (rq *request) readBody() ([]byte, error) {
	body := http.MaxBytesReader(rq.w, rq.r.Body, rq.h.cfg.MaxBodyBytes)
	raw, err := io.ReadAll(body)
	if err != nil {
		clear(raw)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge",
				message: fmt.Sprintf("The request body is larger than %d bytes.", rq.h.cfg.MaxBodyBytes)}
		}
		return nil, badParam("The request body could not be read.")
	}
	return raw, nil
}

// checkText refuses a body encoding/json would change without a word:
// invalid UTF-8 and unpaired surrogate escapes become U+FFFD.
func checkText(raw []byte) error {
	if p := jsonbody.Check(raw); p != nil {
		if p.Surrogate {
			return badParam("The request body is not valid JSON text: an unpaired UTF-16 surrogate escape at byte %d.", p.Offset)
		}
		return badParam("The request body is not valid JSON text: invalid UTF-8 at byte %d.", p.Offset)
	}
	return nil
}

// decodeJSON is the one JSON decoder for request bodies.
func decodeJSON(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 { // no string copy: bodies may hold secrets
		return badParam("The request body is empty; a JSON object is required.")
	}
	// encoding/json would store invalid UTF-8 and unpaired surrogate
	// escapes as U+FFFD: a value changed without a word. Refuse instead.
	if err := checkText(raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return badParam("Property '%s' has an invalid value.", clipString(te.Field, 64))
		}
		return badParam("The request body is not valid JSON.")
	}
	return nil
}

func (rq *request) reply(status int, v any) error {
	writeShapedJSON(rq.w, status, v, shapeFor(rq.apiVersion))
	return nil
}

// paging reads maxresults (1-25, default 25) and $skiptoken.
func (rq *request) paging() (after string, limit int, err error) {
	q := rq.query
	limit = 25
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 25 {
			return "", 0, badParam("The value of maxresults must be an integer from 1 to 25.")
		}
		limit = n
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) > 200 {
			return "", 0, badParam("The $skiptoken is not valid.")
		}
		after = string(raw)
	}
	return after, limit, nil
}

// nextLink is the absolute URL of the next page, carrying api-version
// (AZURE-API.md §0.7), or "" on the last page.
func (rq *request) nextLink(next string) *string {
	if next == "" {
		return nil
	}
	q := url.Values{}
	q.Set("api-version", rq.apiVersion)
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(next)))
	if m := rq.query.Get("maxresults"); m != "" {
		q.Set("maxresults", m)
	}
	s := rq.base + rq.r.URL.Path + "?" + q.Encode()
	return &s
}

// page is a list response.
type page[T any] struct {
	Value    []T     `json:"value"`
	NextLink *string `json:"nextLink"`
}
