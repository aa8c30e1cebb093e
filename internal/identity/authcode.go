package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/errs"
)

// The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636), shaped
// as Entra shapes it: a browser is sent to
//
//	GET {authority}{tenant}/oauth2/v2.0/authorize?client_id&response_type=code
//	    &redirect_uri&scope&state&code_challenge&code_challenge_method=S256
//	    [&response_mode=query|form_post][&login_hint]
//
// where the user signs in with password and (once enrolled) TOTP, exactly as
// on the device page (signInUser). The code goes back to the redirect URI
// (in the query, or posted in a form with response_mode=form_post, which
// keeps it out of URLs and history) and is redeemed at the token endpoint:
//
//	grant_type=authorization_code, client_id, code, redirect_uri, code_verifier
//
// PKCE is required and only S256 is accepted. A code lives 10 minutes, in
// memory on the node that issued it, and is redeemed at most once (any
// attempt consumes it). With offline_access in the scope, the user grants
// (code, device code, refresh) also return a refresh token:
//
//	grant_type=refresh_token, client_id, refresh_token, scope
//
// which yields a token for any audience of the token service (how the
// console, signed in once, gets a management and a vault token). Refresh
// tokens rotate on use, live in memory on the issuing node and expire
// RefreshTokenLifetime after the sign-in, whatever the rotations.
//
// Redirect URIs: a client's are registered with RegisterRedirectURIs (the
// console registers its callback); the public CLI clients (Azure CLI,
// keyward) may also use a loopback http://localhost or 127.0.0.1 URI on any
// port (RFC 8252 §7.3), as MSAL's interactive browser sign-in does.

const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"

	authCodeLifetime = 10 * time.Minute
	// RefreshTokenLifetime bounds a browser sign-in: refresh tokens stop
	// working this long after the user signed in.
	RefreshTokenLifetime = 12 * time.Hour
	maxPendingWeb        = 10_000

	// KeywardConsoleClientID is the client ID of Keyward's web console.
	KeywardConsoleClientID = "6b657977-6172-6400-636f-6e736f6c6501"
)

type authCode struct {
	tenant, clientID, redirectURI, resource, scope, challenge, userOID string
	expires                                                            time.Time
}

type refreshGrant struct {
	tenant, clientID, userOID string
	expires                   time.Time
}

// webState is the browser sign-in state of an Authority (authorityExt.web).
type webState struct {
	mu        sync.Mutex
	redirects map[string][]string // client ID (lower case) -> redirect URIs
	codes     map[string]*authCode
	refresh   map[string]*refreshGrant
}

// RegisterRedirectURIs allows the client clientID to receive codes at uris.
func (a *Authority) RegisterRedirectURIs(clientID string, uris ...string) {
	w := &a.ext.web
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.redirects == nil {
		w.redirects = map[string][]string{}
	}
	k := strings.ToLower(clientID)
	w.redirects[k] = append(w.redirects[k], uris...)
}

func secretHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return string(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// redirectAllowed reports whether redirect may receive clientID's codes.
func (a *Authority) redirectAllowed(clientID, redirect string) bool {
	w := &a.ext.web
	w.mu.Lock()
	for _, u := range w.redirects[strings.ToLower(clientID)] {
		if u == redirect {
			w.mu.Unlock()
			return true
		}
	}
	w.mu.Unlock()
	if !strings.EqualFold(clientID, AzureCLIClientID) && !strings.EqualFold(clientID, KeywardCLIClientID) {
		return false
	}
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" {
		return false
	}
	h := u.Hostname()
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// authorizeRequest is the validated query (or form) of an authorize call.
type authorizeRequest struct {
	Tenant, ClientID, RedirectURI, Scope, State, Challenge, Mode, LoginHint string
	resource                                                                string
}

var pkceChars = func() [256]bool {
	var ok [256]bool
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~" {
		ok[c] = true
	}
	return ok
}()

func pkceValid(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !pkceChars[s[i]] {
			return false
		}
	}
	return true
}

// parseAuthorize validates an authorize request. fatal errors are shown to
// the user (never redirected: the redirect URI is not trusted yet); the
// others go back to the redirect URI as error and error_description.
func (a *Authority) parseAuthorize(ctx context.Context, tenant string, q url.Values, resources []string) (ar *authorizeRequest, fatal string, code, desc string) {
	ar = &authorizeRequest{Tenant: tenant, ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		Scope: q.Get("scope"), State: q.Get("state"), Challenge: q.Get("code_challenge"),
		Mode: q.Get("response_mode"), LoginHint: q.Get("login_hint")}
	if _, err := a.dir.Tenant(ctx, tenant); err != nil {
		return nil, "AADSTS90002: Tenant '" + safe(tenant) + "' not found.", "", ""
	}
	if err := a.publicClient(ctx, tenant, ar.ClientID); err != nil {
		return nil, "AADSTS700016: Application with identifier '" + safe(ar.ClientID) + "' was not found in the directory.", "", ""
	}
	if ar.RedirectURI == "" || !a.redirectAllowed(ar.ClientID, ar.RedirectURI) {
		return nil, "AADSTS50011: The redirect URI specified in the request does not match the redirect URIs configured for the application '" + safe(ar.ClientID) + "'.", "", ""
	}
	if len(ar.State) > 1024 || len(ar.LoginHint) > 256 {
		return ar, "", "invalid_request", "AADSTS90015: A request parameter is too long."
	}
	switch ar.Mode {
	case "":
		ar.Mode = "query"
	case "query", "form_post":
	default:
		return ar, "", "invalid_request", "AADSTS900352: The response_mode '" + safe(ar.Mode) + "' is not supported."
	}
	if q.Get("response_type") != "code" {
		return ar, "", "unsupported_response_type", "AADSTS700054: response_type '" + safe(q.Get("response_type")) + "' is not enabled for the application; use 'code'."
	}
	if q.Get("code_challenge_method") != "S256" || !pkceValid(ar.Challenge) {
		return ar, "", "invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required: send code_challenge with code_challenge_method=S256."
	}
	res, err := a.resolveResource(ctx, tenant, resourceFromScope(ar.Scope), resources)
	if err != nil {
		return ar, "", "invalid_scope", "AADSTS500011: The resource principal named " + safe(resourceFromScope(ar.Scope)) + " was not found in the tenant."
	}
	ar.resource = res
	return ar, "", "", ""
}

var errCodesFull = terr(errs.Unavailable, "temporarily_unavailable", 90033, "Too many pending sign-ins. Try again later.")

// issueCode stores a code for the signed-in user u and the request ar.
func (a *Authority) issueCode(ar *authorizeRequest, u *User) (string, error) {
	raw := randomToken()
	now := a.clock.Now()
	ws := &a.ext.web
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.codes == nil {
		ws.codes = map[string]*authCode{}
	}
	for k, c := range ws.codes {
		if !now.Before(c.expires) {
			delete(ws.codes, k)
		}
	}
	if len(ws.codes) >= maxPendingWeb {
		return "", errCodesFull
	}
	ws.codes[secretHash(raw)] = &authCode{tenant: ar.Tenant, clientID: ar.ClientID, redirectURI: ar.RedirectURI,
		resource: ar.resource, scope: ar.Scope, challenge: ar.Challenge, userOID: u.ObjectID, expires: now.Add(authCodeLifetime)}
	return raw, nil
}

// grantAuthorizationCode redeems a code.
func (a *Authority) grantAuthorizationCode(ctx context.Context, r *tokenRequest, tenant, resource string, resources []string) (*tokenClaims, error) {
	f := r.form
	invalid := terr(errs.BadParameter, "invalid_grant", 70008, "The provided authorization code or refresh token has expired or is not valid.")
	now := a.clock.Now()
	ws := &a.ext.web
	key := secretHash(f.Get("code"))
	ws.mu.Lock()
	c := ws.codes[key]
	if c != nil && strings.EqualFold(c.clientID, f.Get("client_id")) {
		delete(ws.codes, key) // one attempt per code, right or wrong
	}
	ws.mu.Unlock()
	if c == nil || !now.Before(c.expires) || !strings.EqualFold(c.tenant, tenant) || !strings.EqualFold(c.clientID, f.Get("client_id")) {
		return nil, invalid
	}
	if f.Get("redirect_uri") != c.redirectURI {
		return nil, terr(errs.BadParameter, "invalid_grant", 70008, "The redirect_uri does not match the one the authorization code was issued to.")
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if !pkceValid(f.Get("code_verifier")) || subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
		return nil, terr(errs.BadParameter, "invalid_grant", 501481, "The code_verifier does not match the code_challenge supplied in the authorization request.")
	}
	res := c.resource
	if resource != "" {
		var err error
		if res, err = a.resolveResource(ctx, tenant, resource, resources); err != nil {
			return nil, err
		}
	}
	u, err := a.dir.User(ctx, tenant, c.userOID)
	if err != nil || u.Disabled {
		return nil, terr(errs.BadParameter, "invalid_grant", 50034, "The user account does not exist in the directory.")
	}
	return userClaims(u, c.clientID, res, "0"), nil
}

// grantRefresh redeems (and so ends) a refresh token.
func (a *Authority) grantRefresh(ctx context.Context, r *tokenRequest, tenant, resource string, resources []string) (*tokenClaims, error) {
	f := r.form
	invalid := terr(errs.BadParameter, "invalid_grant", 70008, "The provided authorization code or refresh token has expired or is not valid.")
	now := a.clock.Now()
	ws := &a.ext.web
	key := secretHash(f.Get("refresh_token"))
	ws.mu.Lock()
	g := ws.refresh[key]
	if g != nil && strings.EqualFold(g.clientID, f.Get("client_id")) {
		delete(ws.refresh, key) // rotated: the response carries the next one
	}
	ws.mu.Unlock()
	if g == nil || !now.Before(g.expires) || !strings.EqualFold(g.tenant, tenant) || !strings.EqualFold(g.clientID, f.Get("client_id")) {
		return nil, invalid
	}
	res, err := a.resolveResource(ctx, tenant, resource, resources)
	if err != nil {
		return nil, err
	}
	u, err := a.dir.User(ctx, tenant, g.userOID)
	if err != nil || u.Disabled {
		return nil, terr(errs.BadParameter, "invalid_grant", 50034, "The user account does not exist in the directory.")
	}
	c := userClaims(u, g.clientID, res, "0")
	c.refreshOf = g
	return c, nil
}

// issueRefresh stores a refresh token for the user of c. prev is the grant
// being rotated (its expiry carries over), nil for a new sign-in.
func (a *Authority) issueRefresh(c *tokenClaims, prev *refreshGrant) string {
	now := a.clock.Now()
	g := &refreshGrant{tenant: c.TenantID, clientID: c.AZP, userOID: c.ObjectID, expires: now.Add(RefreshTokenLifetime)}
	if prev != nil {
		g.expires = prev.expires
	}
	raw := randomToken()
	ws := &a.ext.web
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.refresh == nil {
		ws.refresh = map[string]*refreshGrant{}
	}
	if len(ws.refresh) >= maxPendingWeb {
		for k, x := range ws.refresh {
			if now.After(x.expires) {
				delete(ws.refresh, k)
			}
		}
		if len(ws.refresh) >= maxPendingWeb {
			return ""
		}
	}
	ws.refresh[secretHash(raw)] = g
	return raw
}

// wantsOffline reports whether scope asks for a refresh token.
func wantsOffline(scope string) bool {
	for _, s := range strings.Fields(scope) {
		if s == "offline_access" {
			return true
		}
	}
	return false
}
