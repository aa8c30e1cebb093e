// Package api is Keyward's HTTP front door and the only package that knows
// Azure Key Vault's wire format: routing by host, the 401 challenge, token
// validation, api-version checks, Azure-shaped JSON bodies and errors,
// paging, and one audit event per request.
//
// Every data-plane request goes through the same steps, in this order:
// sealed check, vault lookup, bearer token (401 challenge before any body is
// looked at, AZURE-API.md §0.3), api-version, route, authorization, handler.
package api

import (
	"context"
	"errors"
	"github.com/keyward/keyward/internal/certificates"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/keymgmtapi"
	"github.com/keyward/keyward/internal/quorum"
	"github.com/keyward/keyward/internal/route"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/throttle"
	"github.com/keyward/keyward/internal/vault"
)

// SealState is what the pipeline's seal gate and /readyz need: a small
// interface passed in, so that api never calls up into the server.
type SealState interface {
	Sealed() bool
	// Ready reports whether this node can serve (unsealed, storage reachable).
	Ready(ctx context.Context) error
}

// Operator is what the sys endpoints need from the running server.
type Operator interface {
	SealState
	Status(ctx context.Context) (barrier.Status, error)
	Init(ctx context.Context, shares, threshold int) (*InitResult, error)
	Unseal(ctx context.Context, share []byte) (barrier.Status, error)
	ResetUnseal()
	Seal(ctx context.Context) error
	// OperatorTenant is the tenant whose administrators may seal the
	// instance and rotate its signing key.
	OperatorTenant() string
}

// InitResult is shown once to the operator who initialized Keyward.
type InitResult struct {
	Shares        [][]byte
	Threshold     int
	TenantID      string
	ClientID      string
	ClientSecret  string
	Vault         string
	Subscription  string
	ResourceGroup string
}

// Config is the addressing of this Keyward instance.
type Config struct {
	// DNSSuffix is the suffix vault host names end in: {vault}.vault.{suffix}.
	DNSSuffix string
	// PublicPort is the port clients use ("" for 443); it appears in the
	// challenge resource and token audiences.
	PublicPort string
	// AuthorityURL is the token service URL clients configure.
	AuthorityURL string
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// deciding the client address (network rules, audit); see access.go.
	TrustedProxies []netip.Prefix
}

func (c Config) hostPort(host string) string {
	if c.PublicPort == "" || c.PublicPort == "443" {
		return host
	}
	return host + ":" + c.PublicPort
}

// VaultResource is the token audience of the vault data plane and the
// challenge's resource: https://vault.{suffix}[:port].
func (c Config) VaultResource() string { return "https://" + c.hostPort("vault."+c.DNSSuffix) }

// ManagementResource is the audience of management and operator calls.
func (c Config) ManagementResource() string {
	return "https://" + c.hostPort("management."+c.DNSSuffix) + "/"
}

// Resources lists every audience the token service issues tokens for.
func (c Config) Resources() []string {
	return []string{c.VaultResource(), c.ManagementResource(), c.ManagedHSMResource()}
}

// Management is the ARM surface (*mgmt.Handler) as the pipeline drives
// it: the pipeline authenticates (bearer token for Audiences, unless the
// request is Anonymous), lets the surface word a failure
// (Unauthenticated), and hands the caller's claims to Serve, which routes
// and authorizes with scopes taken from the path.
type Management interface {
	Anonymous(r *http.Request) bool
	Audiences() []string
	Unauthenticated(w http.ResponseWriter, r *http.Request, missing bool, reason string)
	// Serve takes the pipeline's throttling step (allow) itself, after
	// authorization and before the operation (DESIGN.md).
	Serve(w http.ResponseWriter, r *http.Request, claims *identity.Claims, allow func() (ok bool, retryAfter time.Duration))
	// CheckAPIVersion is the surface's api-version rule; Fail words its
	// failure and any other step's error, Throttled the 429.
	CheckAPIVersion(r *http.Request) error
	Fail(w http.ResponseWriter, r *http.Request, err error)
	Throttled(w http.ResponseWriter, r *http.Request, retryAfter time.Duration)
}

// Throttler decides whether a request may proceed (DESIGN.md: after
// authorization, before the operation). *throttle.Limiter is one.
type Throttler interface {
	Allow(vault, tenant, objectID string) throttle.Decision
}

// Handler serves everything Keyward answers over HTTPS.
type Handler struct {
	cfg       Config
	seal      SealState
	operator  Operator
	authority *identity.Authority
	vaults    *vault.Service
	certs     *certificates.Service
	authz     authz.Authorizer
	throttle  Throttler
	audit     *audit.Log
	metrics   http.Handler
	clock     clock.Clock
	log       *slog.Logger
	routes    route.Table[handler, authz.Action]
	// vaultAudiences are the token audiences the data plane accepts: the
	// vault resource with and without a trailing slash.
	vaultAudiences []string
	// mgmt serves the management plane on management.{suffix}.
	mgmt Management
	// tokens is the token service's surface (identity/routes.go).
	tokens *identity.Surface
	// keymgmt serves Vault's keymgmt API under /v1/keymgmt (keymgmt.go).
	keymgmt *keymgmtapi.Surface
	// pools serves {pool}.managedhsm.{suffix} (pool.go); nil: 404.
	pools      Pools
	poolRoutes route.Table[handler, authz.Action]
	groups     func(tenant, objectID string) []string
	// webhookGuard: Deps.WebhookGuard.
	webhookGuard func(ctx context.Context, host string) error
	// console is the web console (internal/console); nil: none.
	console Surface
	// quorum holds quorum approval policies and requests (quorum.go); nil: off.
	quorum *quorum.Service
}

// Surface is a surface served on the control host beside the token
// service (the web console): Route names the operation and returns its
// handler, or nil when the path is not the surface's.
type Surface interface {
	Route(r *http.Request) (op string, h http.Handler)
}

// Deps are the services a Handler calls.
type Deps struct {
	Operator  Operator
	Authority *identity.Authority
	Vaults    *vault.Service
	// Certificates serves the certificate operations.
	Certificates *certificates.Service
	Authz        authz.Authorizer
	// Throttle limits request rates after authorization; nil: no limits.
	Throttle Throttler
	// Management serves management.{suffix} (internal/mgmt); nil: 404.
	Management Management
	// KeyMgmt serves /v1/keymgmt/ (internal/keymgmtapi); nil: 404.
	KeyMgmt *keymgmtapi.Surface
	// Pools are the managed HSM pools (pool.go); nil: 404.
	Pools Pools
	// WebhookGuard checks an event subscription's endpoint host before it
	// is stored ([events] allowed_hosts); nil: no check.
	WebhookGuard func(ctx context.Context, host string) error
	// Groups lists a principal's groups, for pool RBAC; nil: none.
	Groups func(tenant, objectID string) []string
	// Console serves the web console under /ui/ on the control host; nil: none.
	Console Surface
	// Quorum enables quorum approval (quorum.go); nil: off.
	Quorum *quorum.Service
	Audit  *audit.Log
	// Metrics serves /metrics (Prometheus) on the control host; nil: 404.
	Metrics http.Handler
	Clock   clock.Clock
	Log     *slog.Logger
}

// New returns a Handler.
func New(cfg Config, d Deps) *Handler {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	aud := cfg.VaultResource()
	h := &Handler{cfg: cfg, seal: d.Operator, operator: d.Operator, authority: d.Authority, vaults: d.Vaults, certs: d.Certificates,
		authz: d.Authz, throttle: d.Throttle, audit: d.Audit, metrics: d.Metrics, clock: d.Clock, log: d.Log, routes: dataPlaneRoutes(),
		vaultAudiences: []string{aud, aud + "/"}, mgmt: d.Management, keymgmt: d.KeyMgmt, tokens: d.Authority.Surface(cfg.Resources()), console: d.Console,
		pools: d.Pools, poolRoutes: route.Compile(poolRoutes()), groups: d.Groups, quorum: d.Quorum, webhookGuard: d.WebhookGuard}
	if m, ok := d.Management.(interface {
		SetQuorum(func(http.ResponseWriter, *http.Request, string, string, authz.Principal) bool)
	}); ok && d.Quorum != nil {
		m.SetQuorum(h.divertARM) // ARM's routing runs the quorum step (quorum.go)
	}
	if d.KeyMgmt != nil && d.Quorum != nil {
		d.KeyMgmt.Quorum = h.divertKeyMgmt // quorum_tenant_approvals.go
	}
	return h
}

// ServeHTTP records one audit event for every request, whatever happens,
// and releases no response before its event is recorded (auditgate.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 {
		// A new goroutine per request (stack.go); before serve's own
		// frame is pushed.
		growStack()
	}
	h.serve(w, r)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := uuid.NewString()
	st := &requestState{event: audit.Event{
		Time:      h.clock.Now().UTC(),
		RequestID: reqID,
		Method:    r.Method,
		Path:      r.URL.Path,
		UserAgent: clipString(r.UserAgent(), 256),
	}}
	ev := &st.event
	ev.Caller.IP = h.clientIP(r)
	ev.Properties.RequestURI = "https://" + clipString(r.Host, 256) + clipString(r.URL.Path, 2048)
	if r.TLS != nil {
		ev.Properties.TLSVersion = audit.TLSVersionName(r.TLS.Version)
	}
	hdr := w.Header()
	st.setHeader(hdr, hdrRequestID, reqID)
	if cid := r.Header.Get("x-ms-client-request-id"); cid != "" && len(cid) <= 128 {
		st.setHeader(hdr, hdrClientRequestID, cid)
		ev.CorrelationID = cid
	}
	hdr[hdrStrictTransport] = hvStrictTransport
	hdr[hdrContentTypeOption] = hvNoSniff
	sw := responsePool.Get().(*bufferedResponse)
	sw.w = w
	defer func() {
		sw.reset()
		responsePool.Put(sw)
	}()
	// Every request is bounded in time: a slow database answers 503 (the
	// storage error), not a pile of goroutines waiting forever.
	ctx := audit.WithEvent(r.Context(), ev)
	if r.ProtoMajor == 2 {
		// Its audit write may wait for other requests' (audit.WithLinger).
		ctx = audit.WithLinger(ctx)
	}
	st.deadline.init(ctx, start.Add(requestTimeout)) // context.WithTimeout, its timer made only if waited on
	defer st.deadline.stop()
	ctx = &st.deadline
	gate := &st.gate
	gate.h, gate.ev, gate.start, gate.ctx = h, ev, start, context.WithoutCancel(ctx)
	r = r.WithContext(storage.WithPreCommit(ctx, gate))

	defer func() {
		if p := recover(); p != nil {
			// Never echo the panic: it may hold request data.
			h.log.Error("panic serving request", "request_id", reqID)
			if sw.status == 0 {
				writeJSON(sw, http.StatusInternalServerError, body("InternalServerError", "The server encountered an internal error.", ""))
			}
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		ev.Status = sw.status
		ev.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
		if ev.Result == "" {
			ev.Result = resultFor(ev)
		}
		if gate.close() {
			sw.release() // the event written at commit time says it all
			return
		}
		err := h.audit.Record(gate.ctx, ev)
		switch {
		case err == nil, gate.written, ev.Service == "sys" && (ev.Operation == "Health" || ev.Operation == "Ready"):
			// A second event for a committed write (its change is already
			// audited and cannot be undone) and health probes are released
			// even when the sink refuses them.
			sw.release()
		default:
			// Nothing leaves without its audit event: not a value, not even
			// an error that could tell the caller something.
			h.log.Error("audit failed: response withheld", "request_id", reqID)
			hdr := w.Header()
			for k := range hdr {
				switch k {
				case hdrRequestID, hdrClientRequestID, hdrStrictTransport, hdrContentTypeOption:
				default:
					delete(hdr, k)
				}
			}
			clear(sw.body.Bytes())
			sw.body.Reset()
			setHeader(hdr, hdrRetryAfter, "2")
			sw.status = 0
			writeJSON(sw, http.StatusServiceUnavailable, body("ServiceUnavailable", "The audit log is temporarily unavailable. Please retry.", "AuditUnavailable"))
			sw.release()
		}
	}()

	host := strings.ToLower(r.Host)
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	if name, ok := strings.CutSuffix(host, ".vault."+h.cfg.DNSSuffix); ok && name != "" && !strings.Contains(name, ".") {
		ev.Service = "vault"
		ev.Vault = name
		h.serveVault(sw, r, name, st)
		return
	}
	if name, ok := strings.CutSuffix(host, ".managedhsm."+h.cfg.DNSSuffix); ok && name != "" && !strings.Contains(name, ".") {
		ev.Service = "managedhsm"
		ev.Vault = name
		h.servePool(sw, r, name, ev)
		return
	}
	h.serveControl(sw, r, ev)
}

// requestTimeout bounds the work of one request.
const requestTimeout = 30 * time.Second

// Header names in canonical form (TestHeaderNamesCanonical), so that
// setHeader can skip http.Header.Set's canonicalization, which allocates
// for every lower-case name on every request.
const (
	hdrRequestID         = "X-Ms-Request-Id"
	hdrClientRequestID   = "X-Ms-Client-Request-Id"
	hdrRegion            = "X-Ms-Keyvault-Region"
	hdrServiceVersion    = "X-Ms-Keyvault-Service-Version"
	hdrNetworkInfo       = "X-Ms-Keyvault-Network-Info"
	hdrContentType       = "Content-Type"
	hdrContentLength     = "Content-Length"
	hdrRetryAfter        = "Retry-After"
	hdrWWWAuthenticate   = "Www-Authenticate"
	hdrStrictTransport   = "Strict-Transport-Security"
	hdrContentTypeOption = "X-Content-Type-Options"
)

// setHeader is h.Set(key, v) for a key already in canonical form.
func setHeader(h http.Header, key, v string) { h[key] = []string{v} }

// Values of headers that every response (or every JSON response) carries,
// shared instead of allocated per response. Each has len == cap, so that
// an Add appends to a copy, never to the shared array; nothing in Keyward
// or net/http writes a header value in place (net/http clones the map
// before it writes it out).
var (
	hvStrictTransport = staticHeader("max-age=31536000;includeSubDomains")
	hvNoSniff         = staticHeader("nosniff")
	hvServiceVersion  = staticHeader("keyward/1")
	hvJSON            = staticHeader("application/json; charset=utf-8")
)

func staticHeader(v string) []string { return []string{v}[:1:1] }

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func clipString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// serveControl answers the token service, operator (sys) and health
// endpoints on every host that is not a vault.
func (h *Handler) serveControl(w http.ResponseWriter, r *http.Request, ev *audit.Event) {
	p := r.URL.Path
	switch {
	case p == "/healthz":
		ev.Service, ev.Operation = "sys", "Health"
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
		return
	case p == "/readyz":
		ev.Service, ev.Operation = "sys", "Ready"
		switch err := h.seal.Ready(r.Context()); {
		case errors.Is(err, barrier.ErrSealed):
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "sealed"})
		case err != nil:
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "storage unavailable"})
		case !h.audit.Healthy():
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "audit sink unavailable", "audit_failures": h.audit.Failures(), "audit_sinks": h.audit.Sinks()})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
		}
		return
	case p == "/metrics" && h.metrics != nil:
		ev.Service, ev.Operation = "sys", "Metrics"
		h.metrics.ServeHTTP(w, r)
		return
	case strings.HasPrefix(p, "/sys/"):
		ev.Service = "sys"
		h.serveSys(w, r, ev)
		return
	}
	if h.keymgmt != nil && keymgmtapi.Handles(p) {
		ev.Service = "keymgmt"
		h.serveKeyMgmt(w, r)
		return
	}
	if h.seal.Sealed() {
		ev.Service = "identity"
		h.writeErr(w, r, barrier.ErrSealed)
		return
	}
	if h.mgmt != nil && h.isManagementHost(r.Host) {
		ev.Service = "management"
		h.serveManagement(w, r)
		return
	}
	if op, tokens := h.tokens.Route(r); tokens != nil {
		ev.Service, ev.Operation = "identity", op
		tokens.ServeHTTP(w, r)
		return
	}
	if h.console != nil {
		if op, c := h.console.Route(r); c != nil {
			ev.Service, ev.Operation = "console", op
			c.ServeHTTP(w, r)
			return
		}
	}
	ev.Service = "control"
	writeJSON(w, http.StatusNotFound, body("NotFound", "The requested resource was not found.", ""))
}

// serveManagement runs the pipeline's steps for ARM, each worded by the
// surface: authenticate (a bearer token for the management audience),
// api-version (ARM's rules); mgmt.Serve then routes, authorizes and
// throttles (the principal's bucket and its tenant's management bucket,
// drawn by the allow it is given) before the operation.
func (h *Handler) serveManagement(w http.ResponseWriter, r *http.Request) {
	if h.mgmt.Anonymous(r) {
		h.mgmt.Serve(w, r, nil, nil)
		return
	}
	claims, missing, reason := h.bearer(r, h.mgmt.Audiences()...)
	if claims == nil {
		h.mgmt.Unauthenticated(w, r, missing, reason)
		return
	}
	if err := h.mgmt.CheckAPIVersion(r); err != nil { // ARM's rules
		h.mgmt.Fail(w, r, err)
		return
	}
	if h.quorum != nil && isTenantPolicyPath(r) { // quorum_tenant.go
		if d := h.allow(managementBucket(claims.TenantID), claims); !d.Allowed {
			h.mgmt.Throttled(w, r, d.RetryAfter)
			return
		}
		h.serveTenantPolicy(w, r, claims)
		return
	}
	if h.quorum != nil && isTenantApprovalPath(r) { // quorum_tenant_approvals.go
		if d := h.allow(managementBucket(claims.TenantID), claims); !d.Allowed {
			h.mgmt.Throttled(w, r, d.RetryAfter)
			return
		}
		h.serveTenantApprovals(w, r, claims)
		return
	}
	h.mgmt.Serve(w, r, claims, func() (bool, time.Duration) {
		d := h.allow(managementBucket(claims.TenantID), claims)
		return d.Allowed, d.RetryAfter
	})
}

// bearer is the authentication step for the management audience (ARM and
// the operator endpoints): the request's bearer token, validated for one
// of audiences (a resource is accepted with and without its trailing
// slash). A failure returns nil claims, whether the token was missing, and
// the reason; the surface words the 401.
func (h *Handler) bearer(r *http.Request, audiences ...string) (claims *identity.Claims, missing bool, reason string) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if tok = strings.TrimSpace(tok); !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, true, "no bearer token"
	}
	if len(audiences) == 1 {
		audiences = append(audiences, strings.TrimSuffix(audiences[0], "/"))
	}
	claims, reason, err := h.authority.Validate(tok, audiences)
	if err != nil {
		return nil, false, reason
	}
	return claims, false, ""
}

// writeErr writes err in Azure's shape and notes its code in the audit event.
func (h *Handler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, b, known := toWire(err)
	if !known {
		h.log.Error("request failed", "request_id", audit.EventFrom(r.Context()).RequestID, "error", err)
	}
	if status == http.StatusServiceUnavailable {
		// azcore retries 503 and honours Retry-After (AZURE-API.md §1.5).
		setHeader(w.Header(), hdrRetryAfter, "2")
	}
	ev := audit.EventFrom(r.Context())
	ev.ErrorCode = b.Error.Code
	if b.Error.InnerError != nil {
		ev.ErrorCode += "/" + b.Error.InnerError.Code
	}
	writeJSON(w, status, b)
}

var errNoToken = errors.New("no bearer token")
