// Package console is Keyward's web console: server-rendered pages
// (html/template, assets embedded) served by the one pipeline at
// {ui_url}ui/ beside the token service.
//
// The console holds no privilege of its own and decides no access. A user
// signs in with Keyward's token service (authorization code + PKCE, or the
// device flow); the session, kept on the server, holds the user's refresh
// token, and every page is made from requests the console sends, with the
// user's own access token, through the same pipeline the SDKs reach: the
// data plane for vault objects, ARM for vaults and access. What the user
// may see and do is exactly what the API lets them (the layering test
// keeps authz, vault and api out of this package's imports).
//
// Browser-side: the session cookie is __Host-, HttpOnly, Secure,
// SameSite=Lax and names a random server-side session (no token reaches
// the browser, no value goes in a URL or localStorage); every POST carries
// the session's CSRF token and is refused cross-site; every page has a
// strict Content-Security-Policy (scripts and styles only from the
// console's own embedded files) and is not cached.
package console

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/route"
)

// Config addresses the console and the surfaces it calls.
type Config struct {
	// BaseURL is the console's canonical URL (ui_url), with a trailing
	// slash, e.g. https://localhost:8443/. The console lives under ui/.
	BaseURL string
	// Authority is the token service URL, with a trailing slash.
	Authority string
	// ClientID is the public client ID the console signs in as (the token
	// service knows it, and its redirect URI, CallbackURL).
	ClientID string
	// Tenant returns the tenant users sign in to.
	Tenant func() string
	// VaultResource and ManagementResource are the token audiences.
	VaultResource, ManagementResource string
	// VaultURL returns a vault's data-plane URL (https://{name}.vault.{suffix}[:port]/).
	VaultURL func(name string) string
	// PoolURL returns a managed HSM pool's data-plane URL and PoolResource
	// is its token audience (nil/empty: the pool page lists no keys).
	PoolURL      func(name string) string
	PoolResource string
	// KeymgmtURL is the Key Management engine's base URL (Vault's
	// VAULT_ADDR; empty: none).
	KeymgmtURL string
	// SessionIdle and SessionMax bound a session; zero: 30 minutes, 12 hours.
	SessionIdle, SessionMax time.Duration
	Clock                   clock.Clock
}

// Console serves the web console.
type Console struct {
	cfg     Config
	backend http.Handler
	routes  route.Table[handler, string]
	host    string // canonical host[:port]

	mu       sync.Mutex
	sessions map[string]*session // by hash of the cookie value
	logins   map[string]*login
}

const (
	sessionCookie = "__Host-kw_session"
	loginCookie   = "__Host-kw_login"
	maxSessions   = 10_000
	loginLifetime = 15 * time.Minute

	dataAPIVersion  = "7.6"
	armAPIVersion   = "2023-07-01"
	authzAPIVersion = "2022-04-01"
)

// CallbackURL is the redirect URI the console registers with the token
// service.
func (c *Console) CallbackURL() string { return c.cfg.BaseURL + "ui/auth/callback" }

// New returns a console; SetBackend must be called before it serves.
func New(cfg Config) *Console {
	if !strings.HasSuffix(cfg.BaseURL, "/") {
		cfg.BaseURL += "/"
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = 30 * time.Minute
	}
	if cfg.SessionMax == 0 {
		cfg.SessionMax = 12 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	u, _ := url.Parse(cfg.BaseURL)
	return &Console{cfg: cfg, routes: compileRoutes(), host: strings.ToLower(u.Host),
		sessions: map[string]*session{}, logins: map[string]*login{}}
}

// SetBackend sets the pipeline the console sends its requests through.
func (c *Console) SetBackend(h http.Handler) { c.backend = h }

// session is a signed-in user, held on the server.
type session struct {
	mu                    sync.Mutex
	csrf                  string
	tenant, oid, name     string
	refresh               string
	tokens                map[string]cachedToken // by audience
	created, seen         time.Time
	flash                 string
	clientIP, forwardedIP string
}

type cachedToken struct {
	token   string
	expires time.Time
}

// login is a sign-in in progress (before the session exists).
type login struct {
	state, verifier string
	deviceCode      string
	userCode, uri   string
	created         time.Time
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return string(sum[:])
}

// req is one console request.
type req struct {
	c    *Console
	w    http.ResponseWriter
	r    *http.Request
	p    map[string]string
	s    *session // nil when not signed in
	ev   *audit.Event
	page *Page
}

type handler func(q *req) error

// Route finds the console's operation for r; nil when the path is not the
// console's (the front door answers that).
func (c *Console) Route(r *http.Request) (string, http.Handler) {
	p := r.URL.EscapedPath()
	if p == "/" && r.Method == http.MethodGet {
		return "ConsoleHome", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/ui/", http.StatusFound)
		})
	}
	if !strings.HasPrefix(p, "/ui/") {
		return "", nil
	}
	rt, params, allowed := c.routes.Match(r.Method, p)
	if rt == nil {
		return "ConsoleNotFound", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := &req{c: c, w: w, r: r, ev: audit.EventFrom(r.Context())}
			q.secureHeaders()
			q.s = c.currentSession(r)
			if allowed {
				q.renderError(&apiError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "This page does not accept that method."})
				return
			}
			q.renderError(&apiError{Status: http.StatusNotFound, Code: "NotFound", Message: "There is no such page."})
		})
	}
	return rt.Op, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := &req{c: c, w: w, r: r, p: params, ev: audit.EventFrom(r.Context())}
		q.ev.Service = "console"
		q.secureHeaders()
		c.serve(q, rt)
	})
}

func (c *Console) serve(q *req, rt *route.Route[handler, string]) {
	r := q.r
	if !strings.EqualFold(r.Host, q.c.host) {
		// One origin: cookies, CSRF and the registered redirect URI
		// belong to the canonical host.
		if r.Method == http.MethodGet {
			http.Redirect(q.w, r, strings.TrimSuffix(c.cfg.BaseURL, "/")+r.URL.RequestURI(), http.StatusFound)
			return
		}
		q.renderError(&apiError{Status: http.StatusBadRequest, Code: "WrongHost", Message: "Open the console at " + c.cfg.BaseURL + "ui/."})
		return
	}
	public := rt.Action == "public"
	q.s = c.currentSession(r)
	if q.s != nil {
		q.ev.Caller.ObjectID, q.ev.Caller.TenantID = q.s.oid, q.s.tenant
	}
	if q.s == nil && !public {
		if r.Method == http.MethodGet {
			http.Redirect(q.w, r, "/ui/signin", http.StatusSeeOther)
			return
		}
		q.renderError(&apiError{Status: http.StatusUnauthorized, Code: "SessionExpired", Message: "Your session has ended. Sign in again."})
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(q.w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			q.renderError(&apiError{Status: http.StatusBadRequest, Code: "BadForm", Message: "The form could not be read."})
			return
		}
		// Sign-in routes are protected by their state (the callback may
		// come from the token service's origin); the rest must come from
		// a console page.
		if !public && !c.sameOrigin(r) {
			q.ev.Reason = "cross-site form"
			q.renderError(&apiError{Status: http.StatusForbidden, Code: "CrossSiteRequest", Message: "The form was not sent from this console."})
			return
		}
		if !public && subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(q.s.csrf)) != 1 {
			q.ev.Reason = "CSRF token mismatch"
			q.renderError(&apiError{Status: http.StatusForbidden, Code: "CSRFTokenInvalid", Message: "The form has expired. Reload the page and try again."})
			return
		}
	}
	for _, pg := range registry() {
		for _, prt := range pg.Routes {
			if prt.Op == rt.Op {
				q.page = pg
			}
		}
	}
	if err := rt.Handle(q); err != nil {
		q.renderError(err)
	}
}

// sameOrigin refuses forms sent from another site: Sec-Fetch-Site when the
// browser sends it, else Origin when present.
func (c *Console) sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, strings.TrimSuffix(c.cfg.BaseURL, "/")) {
		return false
	}
	return true
}

// ContentSecurityPolicy is every console page's policy: nothing inline,
// nothing from elsewhere, forms only to the console and the token service.
func (c *Console) ContentSecurityPolicy() string {
	auth := strings.TrimSuffix(c.cfg.Authority, "/")
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self' " + auth + "; frame-ancestors 'none'; base-uri 'none'"
}

func (q *req) secureHeaders() {
	h := q.w.Header()
	h.Set("Content-Security-Policy", q.c.ContentSecurityPolicy())
	h.Set("X-Frame-Options", "DENY")
	// same-origin: the browser sends Origin on the console's own forms
	// (with no-referrer it would send "null") and no Referer elsewhere.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (c *Console) currentSession(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil
	}
	now := c.cfg.Clock.Now()
	key := hashKey(ck.Value)
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sessions[key]
	if s == nil {
		return nil
	}
	if now.Sub(s.seen) > c.cfg.SessionIdle || now.Sub(s.created) > c.cfg.SessionMax {
		delete(c.sessions, key)
		return nil
	}
	s.seen = now
	return s
}

func (c *Console) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: maxAge})
}

// newSession stores a session for the signed-in user and sets its cookie.
func (c *Console) newSession(w http.ResponseWriter, tok *tokenResponse, aud string) error {
	claims, err := tok.idClaims()
	if err != nil {
		return err
	}
	now := c.cfg.Clock.Now()
	s := &session{csrf: randomString(32), tenant: claims.TenantID, oid: claims.ObjectID, name: claims.PreferredUsername,
		refresh: tok.RefreshToken, created: now, seen: now,
		tokens: map[string]cachedToken{aud: {tok.AccessToken, now.Add(time.Duration(tok.ExpiresIn) * time.Second)}}}
	if s.name == "" {
		s.name = claims.Name
	}
	id := randomString(32)
	c.mu.Lock()
	if len(c.sessions) >= maxSessions {
		for k, x := range c.sessions {
			if now.Sub(x.seen) > c.cfg.SessionIdle || now.Sub(x.created) > c.cfg.SessionMax {
				delete(c.sessions, k)
			}
		}
	}
	if len(c.sessions) >= maxSessions {
		c.mu.Unlock()
		return &apiError{Status: http.StatusServiceUnavailable, Code: "TooManySessions", Message: "Too many people are signed in. Try again later."}
	}
	c.sessions[hashKey(id)] = s
	c.mu.Unlock()
	c.setCookie(w, sessionCookie, id, 0)
	return nil
}

func (c *Console) endSession(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.mu.Lock()
		delete(c.sessions, hashKey(ck.Value))
		c.mu.Unlock()
	}
	c.setCookie(w, sessionCookie, "", -1)
}

// apiError is a failed call as the console shows it.
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// capture is the response of an in-process call.
type capture struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *capture) Header() http.Header { return w.h }
func (w *capture) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *capture) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.body.Len()+len(b) > 8<<20 {
		return 0, io.ErrShortWrite
	}
	return w.body.Write(b)
}

// send sends one request through the pipeline, as from the user's browser
// (its address, for network rules and audit), and returns the response.
func (q *req) send(method, rawURL, bearer, contentType string, body []byte) (*capture, error) {
	if q.c.backend == nil {
		return nil, &apiError{Status: http.StatusServiceUnavailable, Code: "NotReady", Message: "The console is not connected."}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Code: "BadRequest", Message: "The request could not be made."}
	}
	r.RemoteAddr = q.r.RemoteAddr
	if xff := q.r.Header.Get("X-Forwarded-For"); xff != "" {
		r.Header.Set("X-Forwarded-For", xff)
	}
	r.Header.Set("User-Agent", "keyward-console")
	r.Header.Set("x-ms-client-request-id", q.ev.RequestID)
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := &capture{h: http.Header{}}
	q.c.backend.ServeHTTP(w, r)
	return w, nil
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

type idClaims struct {
	TenantID          string `json:"tid"`
	ObjectID          string `json:"oid"`
	Name              string `json:"name"`
	PreferredUsername string `json:"preferred_username"`
}

// idClaims reads the ID token the token service just issued in-process
// (not from the browser): its signature needs no second check here.
func (t *tokenResponse) idClaims() (*idClaims, error) {
	parts := strings.Split(t.IDToken, ".")
	bad := &apiError{Status: http.StatusBadGateway, Code: "SignInFailed", Message: "The sign-in did not return the user."}
	if len(parts) != 3 {
		return nil, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c idClaims
	if err != nil || json.Unmarshal(raw, &c) != nil || c.ObjectID == "" {
		return nil, bad
	}
	return &c, nil
}

// tokenCall posts a form to the token endpoint.
func (q *req) tokenCall(path string, form url.Values) (*tokenResponse, int, error) {
	res, err := q.send(http.MethodPost, q.c.cfg.Authority+q.c.cfg.Tenant()+path, "", "application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return nil, 0, err
	}
	var t tokenResponse
	json.Unmarshal(res.body.Bytes(), &t)
	return &t, res.status, nil
}

// token returns the user's access token for aud, refreshed when it is
// about to expire.
func (q *req) token(aud string) (string, error) {
	s := q.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := q.c.cfg.Clock.Now()
	if t, ok := s.tokens[aud]; ok && now.Add(2*time.Minute).Before(t.expires) {
		return t.token, nil
	}
	t, status, err := q.tokenCall("/oauth2/v2.0/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {q.c.cfg.ClientID},
		"refresh_token": {s.refresh}, "scope": {strings.TrimSuffix(aud, "/") + "/.default offline_access"}})
	if err != nil {
		return "", err
	}
	if status != http.StatusOK || t.AccessToken == "" {
		return "", &apiError{Status: http.StatusUnauthorized, Code: "SessionExpired", Message: "Your sign-in has expired. Sign in again."}
	}
	if t.RefreshToken != "" {
		s.refresh = t.RefreshToken
	}
	s.tokens[aud] = cachedToken{t.AccessToken, now.Add(time.Duration(t.ExpiresIn) * time.Second)}
	return t.AccessToken, nil
}

// call sends a JSON request with the user's token for aud to base+path and
// decodes a successful answer into out (when not nil). A failure is an
// *apiError carrying the surface's own status, code and message.
func (q *req) call(aud, method, rawURL string, in, out any) error {
	tok, err := q.token(aud)
	if err != nil {
		return err
	}
	var body []byte
	ct := ""
	if in != nil {
		body, _ = json.Marshal(in)
		ct = "application/json"
	}
	res, err := q.send(method, rawURL, tok, ct, body)
	if err != nil {
		return err
	}
	if res.status >= 300 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		json.Unmarshal(res.body.Bytes(), &e)
		if e.Error.Code == "" {
			e.Error.Code = http.StatusText(res.status)
		}
		return &apiError{Status: res.status, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil && res.body.Len() > 0 {
		if err := json.Unmarshal(res.body.Bytes(), out); err != nil {
			return &apiError{Status: http.StatusBadGateway, Code: "BadResponse", Message: "The answer could not be read."}
		}
	}
	return nil
}

// arm calls the management plane; path starts with "/".
func (q *req) arm(method, path, apiVersion string, in, out any) error {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return q.call(q.c.cfg.ManagementResource, method, strings.TrimSuffix(q.c.cfg.ManagementResource, "/")+path+sep+"api-version="+apiVersion, in, out)
}

// data calls vault's data plane; path starts with a collection ("secrets/…").
func (q *req) data(vault, method, path string, in, out any) error {
	if !vaultNameRE.MatchString(vault) {
		return &apiError{Status: http.StatusNotFound, Code: "VaultNotFound", Message: "There is no vault by that name."}
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return q.call(q.c.cfg.VaultResource, method, q.c.cfg.VaultURL(vault)+path+sep+"api-version="+dataAPIVersion, in, out)
}
