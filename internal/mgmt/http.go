package mgmt

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/jsonbody"
	"github.com/keyward/keyward/internal/route"
)

// Handler serves the management plane on management.{suffix}.
type Handler struct {
	svc         *Service
	authority   *identity.Authority
	resource    string // the management audience, with trailing slash
	vaultURL    func(name string) string
	log         *slog.Logger
	maxBody     int64
	routes      route.Table[handler, authz.Action]
	authzRoutes route.Table[authzHandler, authz.Action]
	audiences   []string
	quorum      QuorumStep // quorum.go; nil: none
}

// NewHandler returns the management-plane handler. resource is the
// audience management tokens carry (api.Config.ManagementResource);
// vaultURL names a vault's data-plane URL.
func NewHandler(svc *Service, authority *identity.Authority, resource string, vaultURL func(string) string, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{svc: svc, authority: authority, resource: resource, vaultURL: vaultURL, log: log, maxBody: 1 << 20,
		routes: armRoutes(), authzRoutes: authorizationRoutes(), audiences: []string{resource, strings.TrimSuffix(resource, "/")}}
}

// call is one authenticated management request.
type call struct {
	h      *Handler
	w      http.ResponseWriter
	r      *http.Request
	ev     *audit.Event
	claims *identity.Claims
	p      authz.Principal
	sub    *Subscription                // the subscription the path names, once authorizeRoute found it
	allow  func() (bool, time.Duration) // the pipeline's throttling step (may it proceed, else retry after), or nil
	segs   []string                     // path segments as sent
	low    []string                     // lower-cased
	q      url.Values
	// keep asks decode to keep the body it read in kept (the quorum step
	// stores a role assignment request to run it once approved).
	keep bool
	kept []byte
}

var apiVersionRE = regexp.MustCompile(`^(20(1[5-9]|2[0-9]))-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(-preview(\.\d+)?)?$`)

// The front door's pipeline (internal/api) authenticates ARM requests: it
// asks Anonymous whether a request needs a token, validates the bearer
// token for Audiences, answers a failure with Unauthenticated and hands
// the caller's claims to Serve. ServeHTTP is the same path for callers
// without the pipeline.

// Anonymous reports whether r is served without a bearer token: the az
// CLI's cloud metadata endpoint (IDENTITY.md §5).
func (h *Handler) Anonymous(r *http.Request) bool {
	p := strings.ToLower(strings.Trim(r.URL.EscapedPath(), "/"))
	return p == "metadata" || p == "metadata/endpoints"
}

// Audiences are the token audiences ARM accepts: the management resource
// with and without its trailing slash.
func (h *Handler) Audiences() []string { return h.audiences }

// Unauthenticated answers ARM's 401 with the challenge: missing when r
// carries no bearer token, otherwise the token is invalid for reason.
func (h *Handler) Unauthenticated(w http.ResponseWriter, r *http.Request, missing bool, reason string) {
	c := &call{h: h, w: w, r: r, ev: audit.EventFrom(r.Context())}
	c.ev.Reason = reason
	c.challenge()
	if missing {
		c.fail(&armError{status: http.StatusUnauthorized, code: "AuthenticationFailed", message: "Authentication failed. The 'Authorization' header is missing."})
		return
	}
	c.fail(&armError{status: http.StatusUnauthorized, code: "InvalidAuthenticationToken", message: "The access token is invalid: " + reason + "."})
}

// CheckAPIVersion is ARM's api-version rule, the pipeline's api-version
// step for this surface: required, and a date (with an optional preview
// suffix), whether or not this surface knows it. A failure is worded by
// Fail.
func (h *Handler) CheckAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return errBad("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	} else if !apiVersionRE.MatchString(v) {
		return errBad("InvalidApiVersionParameter", "The api-version '%s' is invalid.", clip(v))
	}
	audit.EventFrom(r.Context()).APIVersion = clip(v)
	return nil
}

// Fail answers err in ARM's shape (for the pipeline's steps).
func (h *Handler) Fail(w http.ResponseWriter, r *http.Request, err error) {
	(&call{h: h, w: w, r: r, ev: audit.EventFrom(r.Context())}).fail(err)
}

// Throttled is ARM's 429 for the pipeline's throttling step: Retry-After
// in whole seconds, as Resource Manager sends it.
func (h *Handler) Throttled(w http.ResponseWriter, r *http.Request, retryAfter time.Duration) {
	w.Header().Set("Retry-After", strconv.FormatInt(max(int64(math.Ceil(retryAfter.Seconds())), 1), 10))
	h.Fail(w, r, &armError{status: http.StatusTooManyRequests, code: "TooManyRequests",
		message: "The request was throttled: too many requests were received. Retry after the period in the Retry-After header."})
}

// ServeHTTP authenticates r itself and serves it (Serve), unthrottled.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Anonymous(r) {
		h.Serve(w, r, nil, nil)
		return
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		h.Unauthenticated(w, r, true, "no bearer token")
		return
	}
	claims, reason, err := h.authority.Validate(strings.TrimSpace(tok), h.audiences)
	if err != nil {
		h.Unauthenticated(w, r, false, reason)
		return
	}
	if err := h.CheckAPIVersion(r); err != nil {
		h.Fail(w, r, err)
		return
	}
	h.Serve(w, r, claims, nil)
}

// Serve routes, authorizes (authorizeGrants), throttles (allow, when not
// nil: whether the request may proceed, else when to retry; a refusal is
// answered with Throttled) and serves a request whose caller is authenticated and whose
// api-version passed CheckAPIVersion (claims is nil only for Anonymous
// requests), writing ARM's errors. One audit event is recorded by the
// caller (api.Handler).
func (h *Handler) Serve(w http.ResponseWriter, r *http.Request, claims *identity.Claims, allow func() (ok bool, retryAfter time.Duration)) {
	ev := audit.EventFrom(r.Context())
	ev.Service = "management"
	c := &call{h: h, w: w, r: r, ev: ev, q: r.URL.Query(), allow: allow}
	raw := strings.Trim(r.URL.EscapedPath(), "/")
	if raw != "" {
		for _, s := range strings.Split(raw, "/") {
			u, err := url.PathUnescape(s)
			if err != nil {
				c.fail(errBad("InvalidRequestUri", "The request URI is not valid."))
				return
			}
			c.segs = append(c.segs, u)
			c.low = append(c.low, strings.ToLower(u))
		}
	}
	if h.Anonymous(r) {
		ev.Operation = "CloudMetadata"
		c.reply(http.StatusOK, map[string]any{"galleryEndpoint": "", "graphEndpoint": "", "portalEndpoint": "",
			"authentication": map[string]any{"loginEndpoint": h.authority.BaseURL(), "audiences": []string{h.resource}}})
		return
	}
	if claims == nil {
		h.Unauthenticated(w, r, true, "no bearer token")
		return
	}
	c.setCaller(claims)
	if err := c.route(); err != nil && err != errAnswered {
		c.fail(err)
	}
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// setCaller records the authenticated caller.
func (c *call) setCaller(claims *identity.Claims) {
	c.claims = claims
	c.p = authz.Principal{TenantID: claims.TenantID, ObjectID: claims.ObjectID, AppID: firstNonEmpty(claims.AZP, claims.AppID),
		Delegated: claims.IDType == "user" || claims.Scope != ""}
	c.ev.Caller.TenantID, c.ev.Caller.ObjectID, c.ev.Caller.AppID = c.p.TenantID, c.p.ObjectID, c.p.AppID
}

func (c *call) challenge() {
	c.w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+c.h.authority.BaseURL()+`", error="invalid_token"`)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// authorize asks the engine; a denial is audited and becomes ARM's
// AuthorizationFailed, which says nothing about whether the target exists.
func (c *call) authorize(a authz.Action, s authz.Scope) error {
	d := c.h.svc.engine.Authorize(c.p, a, s)
	if d.Allowed {
		return nil
	}
	c.ev.Reason = d.Reason + "; missing " + string(a)
	c.ev.Result = audit.Denied
	return &armError{status: http.StatusForbidden, code: "AuthorizationFailed",
		message: fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
			c.p.ObjectID, c.p.ObjectID, a, s.String())}
}

func (c *call) reply(status int, v any) {
	var raw []byte
	if v != nil {
		var err error
		if raw, err = json.Marshal(v); err != nil {
			c.fail(err)
			return
		}
		c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	c.w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	c.w.WriteHeader(status)
	c.w.Write(raw)
}

func (c *call) fail(err error) {
	status, body, known := toARM(err)
	if !known {
		c.h.log.Error("management request failed", "request_id", c.ev.RequestID, "error", err)
	}
	c.ev.ErrorCode = body.Error.Code
	c.w.Header().Set("x-ms-error-code", body.Error.Code)
	if status == http.StatusServiceUnavailable {
		c.w.Header().Set("Retry-After", "2")
	}
	c.reply(status, body)
}

// decode reads a JSON body (size-capped) into v.
func (c *call) decode(v any) error {
	raw, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, c.h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &armError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge", message: "The request body is too large."}
		}
		return errBad("InvalidRequestContent", "The request content could not be read.")
	}
	defer clear(raw)
	if c.keep {
		c.kept = bytes.Clone(raw)
	}
	return decodeBody(raw, v)
}

// decodeBody is the one JSON decoder for management request bodies.
func decodeBody(raw []byte, v any) error {
	if len(strings.TrimSpace(string(raw))) == 0 {
		return errBad("InvalidRequestContent", "The request content was invalid and could not be deserialized: the body is empty.")
	}
	// encoding/json would store invalid UTF-8 and unpaired surrogate
	// escapes as U+FFFD (a tag changed without a word): refuse instead.
	if p := jsonbody.Check(raw); p != nil {
		what := "invalid UTF-8"
		if p.Surrogate {
			what = "an unpaired UTF-16 surrogate escape"
		}
		return errBad("InvalidRequestContent", "The request content was invalid and could not be deserialized: %s at byte %d.", what, p.Offset)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errBad("InvalidRequestContent", "The request content was invalid and could not be deserialized: property '%s' has the wrong type.", clip(te.Field))
		}
		return errBad("InvalidRequestContent", "The request content was invalid and could not be deserialized.")
	}
	return nil
}

func (c *call) is(method string, pattern ...string) bool {
	if c.r.Method != method || len(c.low) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && c.low[i] != p {
			return false
		}
	}
	return true
}

func (c *call) notFound() error {
	return errNotFound("InvalidResourceType", "The resource type could not be found in the namespace for api version '%s'.", clip(c.q.Get("api-version")))
}

// route dispatches on the ARM path: Microsoft.Authorization at any scope,
// then the routes table (routes.go).
func (c *call) route() error {
	l := c.low
	for i := 0; i+1 < len(l); i++ {
		if l[i] == "providers" && l[i+1] == "microsoft.authorization" {
			return c.routeAuthorization("/"+strings.Join(c.segs[:i], "/"), c.segs[i+2:])
		}
	}
	rt, params, _ := c.h.routes.Match(c.r.Method, c.r.URL.EscapedPath())
	if rt == nil {
		return c.notFound()
	}
	c.ev.Operation = opName(rt.Op, params) // handlers that serve several operations name theirs
	if rt.Action != "" {
		if err := c.authorizeRoute(rt.Action, params); err != nil {
			return err
		}
	} else if err := c.authorizeGrants(nil); err != nil {
		return err
	}
	if c.h.quorum != nil && c.h.quorum(c.w, c.r, c.ev.Operation, params["vault"], c.p) {
		return nil // quorum.go: the operation waits for its approvers
	}
	return rt.Handle(c, params)
}

// errAnswered is a step's error whose answer is already written.
var errAnswered = errors.New("mgmt: answered")

// grant is one thing the authorization step checks: action on scope, or,
// when err is set, the error a handler met preparing the next grant
// (answered in its turn, so the order of 403s and 400s is the handler's).
type grant struct {
	action authz.Action
	scope  authz.Scope
	err    error
}

// authorizeGrants is ARM's one authorization step, and the throttling
// step after it: every route's grants are checked here, in order, before
// its handler serves (routes with no action authorize item by item what
// they list, or are the directory's, which authorizes on the tenant
// root). Then the caller's request is drawn from the throttle.
func (c *call) authorizeGrants(need []grant) error {
	for _, g := range need {
		if g.err != nil {
			return g.err
		}
		if err := c.authorize(g.action, g.scope); err != nil {
			return err
		}
	}
	if c.allow != nil {
		if ok, retry := c.allow(); !ok {
			c.h.Throttled(c.w, c.r, retry)
			return errAnswered
		}
	}
	return nil
}

// authorizeRoute is the authorization step of every ARM route with an
// action: the subscription its path names must be the caller's tenant's
// (else 404 or 401, as ARM answers), and the caller must hold the action
// on the scope the path names: {sub}, {rg} and {vault}.
func (c *call) authorizeRoute(a authz.Action, p map[string]string) error {
	if v := cmp.Or(p["vault"], p["name"]); v != "" {
		c.ev.Vault = clip(v)
	}
	sub, err := c.subscription(p["sub"])
	if err != nil {
		return err
	}
	c.sub = sub
	return c.authorizeGrants([]grant{{action: a, scope: authz.Scope{TenantID: sub.TenantID, SubscriptionID: sub.ID, ResourceGroup: p["rg"], Vault: p["vault"]}}})
}
