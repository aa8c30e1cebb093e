package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
)

// The token endpoint's grants (IDENTITY.md §1, §7, §8):
//
//	client_credentials   client_secret (post or basic), certificate assertion, federated assertion
//	jwt-bearer + on_behalf_of   a user's token exchanged by a middle-tier app
//	device_code          users (password, and TOTP once enrolled), via the device page
//	authorization_code   users, via the authorize page, with PKCE (authcode.go)
//	refresh_token        a user grant's refresh token (authcode.go)
//
// The password grant (ROPC) is not offered: it cannot carry a second
// factor, so every user sign-in goes through the device page.
//
// Tokens are v2.0-shaped JWTs; clients treat them as opaque.

const (
	grantClientCredentials = "client_credentials"
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantDeviceCode        = "urn:ietf:params:oauth:grant-type:device_code"
	assertionTypeJWT       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

	// AzureCLIClientID is the public client ID of the Azure CLI; Keyward
	// accepts it (and its own CLI's) for user sign-in without registration.
	AzureCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	// KeywardCLIClientID is the public client ID `keyward login` uses.
	KeywardCLIClientID = "6b657977-6172-6400-636c-690000000001"
)

// tokenClaims are the claims of tokens beyond app-only ones.
type tokenClaims struct {
	Claims
	Name              string `json:"name,omitempty"`
	UPN               string `json:"upn,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	MIResourceID      string `json:"xms_mirid,omitempty"`

	// refreshOf is the refresh grant a refresh_token request ends (its
	// successor keeps its expiry): authcode.go.
	refreshOf *refreshGrant
}

func (a *Authority) signClaims(c jwt.Claims) (string, error) {
	a.mu.RLock()
	if len(a.keys) == 0 {
		a.mu.RUnlock()
		return "", errors.New("identity: no signing key loaded")
	}
	k := a.keys[len(a.keys)-1]
	a.mu.RUnlock()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = k.Kid
	return t.SignedString(k.priv)
}

// issue fills in times, issuer and IDs and signs c.
func (a *Authority) issue(c *tokenClaims) (string, time.Time, error) {
	now := a.clock.Now()
	exp := now.Add(a.Lifetime)
	c.Issuer = a.Issuer(c.TenantID)
	c.IssuedAt, c.NotBefore, c.Expires = now.Unix(), now.Unix(), exp.Unix()
	c.Version = "2.0"
	c.TokenID = NewID()
	if c.Subject == "" {
		c.Subject = c.ObjectID
	}
	tok, err := a.signClaims(c)
	return tok, exp, err
}

// appClaims are the claims of an app-only token for sp; acr is "1" for a
// secret, "2" for a certificate or federated credential.
func appClaims(sp *ServicePrincipal, resource, acr string) *tokenClaims {
	c := &tokenClaims{Claims: Claims{Audience: resource, TenantID: sp.TenantID, ObjectID: sp.ObjectID,
		AZP: sp.AppID, AZPACR: acr, AppID: sp.AppID, AppIDACR: acr, IDType: "app"}}
	if sp.IsManagedIdentity() {
		c.MIResourceID = sp.ResourceID
	}
	return c
}

// userClaims are the claims of a delegated token: the user, acting through
// the client application clientID.
func userClaims(u *User, clientID, resource, acr string) *tokenClaims {
	return &tokenClaims{Claims: Claims{Audience: resource, TenantID: u.TenantID, ObjectID: u.ObjectID,
		AZP: clientID, AZPACR: acr, AppID: clientID, AppIDACR: acr, IDType: "user", Scope: "user_impersonation"},
		Name: u.DisplayName, UPN: u.UserPrincipalName, PreferredUsername: u.UserPrincipalName}
}

// tokenError is an OAuth error with its AADSTS code. Its kind, not an
// HTTP status, says what went wrong; oauthStatus (http.go) is the one
// table that turns it into a status.
type tokenError struct {
	kind       errs.Kind
	code       string
	aadsts     int
	desc       string
	retryAfter time.Duration // sent as Retry-After when > 0 (429)
}

func (e *tokenError) Error() string { return e.desc }

func terr(kind errs.Kind, code string, aadsts int, desc string) *tokenError {
	return &tokenError{kind: kind, code: code, aadsts: aadsts, desc: desc}
}

// ErrKind reports e's kind (errs.Kinded).
func (e *tokenError) ErrKind() errs.Kind { return e.kind }

// throttled is the 429 of the token endpoint's limits (tokenlimits.go):
// Entra answers client_credentials floods with 429 and Retry-After.
func throttled(aadsts int, desc string, after time.Duration) *tokenError {
	return &tokenError{kind: errs.Throttled, code: "temporarily_unavailable", aadsts: aadsts,
		desc: desc + " Retry after the number of seconds in the Retry-After header.", retryAfter: after}
}

var errTransient = terr(errs.Unavailable, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")

// grant runs the grant a token request asks for in tenant (v1: the v1
// endpoint, which names the resource instead of a scope) and returns the
// claims of the token to issue.
func (a *Authority) grant(ctx context.Context, tenant string, v1 bool, r *tokenRequest, resources []string) (*tokenClaims, error) {
	form := r.form
	if _, err := a.dir.Tenant(ctx, tenant); err != nil {
		return nil, terr(errs.BadParameter, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", safe(tenant)))
	}
	var resource string
	if v1 {
		resource = form.Get("resource")
	} else {
		resource = resourceFromScope(form.Get("scope"))
	}
	switch grant := form.Get("grant_type"); {
	case grant == grantClientCredentials:
		return a.grantClientCredentials(ctx, r, tenant, resource, resources)
	case grant == grantJWTBearer && form.Get("requested_token_use") == "on_behalf_of":
		return a.grantOnBehalfOf(ctx, r, tenant, resource, resources)
	case grant == grantDeviceCode || grant == "device_code": // MSAL sends the short form
		return a.grantDeviceCode(ctx, r, tenant)
	case grant == grantAuthorizationCode: // authcode.go
		return a.grantAuthorizationCode(ctx, r, tenant, resource, resources)
	case grant == grantRefreshToken:
		return a.grantRefresh(ctx, r, tenant, resource, resources)
	default:
		return nil, terr(errs.BadParameter, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+safe(grant)+"'.")
	}
}

// tokenRequest is what a token request carries, as the grants read it:
// its form and its HTTP Basic credentials (http_token.go reads them off
// the wire).
type tokenRequest struct {
	form                 url.Values
	basicUser, basicPass string
	basic                bool
}

// resolveResource maps a requested resource to the audience tokens carry:
// one of resources (the vault and management audiences), or an
// application of the tenant addressed as {appId} or api://{appId} (the
// audience of a user token a middle tier exchanges on-behalf-of).
func (a *Authority) resolveResource(ctx context.Context, tenant, resource string, resources []string) (string, error) {
	if canonical, ok := matchResource(resource, resources); ok {
		return canonical, nil
	}
	id := strings.TrimPrefix(strings.TrimRight(resource, "/"), "api://")
	if _, err := uuid.Parse(id); err == nil {
		if _, err := a.dir.ServicePrincipal(ctx, tenant, id); err == nil {
			return strings.ToLower(strings.TrimRight(resource, "/")), nil
		}
	}
	return "", terr(errs.BadParameter, "invalid_scope", 500011, "The resource principal named "+safe(resource)+" was not found in the tenant.")
}

// clientAuth is how a confidential client proved itself.
type clientAuth struct {
	sp  *ServicePrincipal
	acr string
}

// authenticateClient authenticates the client of a confidential-client
// request: client secret (form or HTTP Basic), certificate assertion, or
// federated assertion.
func (a *Authority) authenticateClient(ctx context.Context, r *tokenRequest, tenant string) (*clientAuth, error) {
	form := r.form
	ev := audit.EventFrom(ctx)
	clientID := form.Get("client_id")
	secret := form.Get("client_secret")
	if r.basic && clientID == "" {
		clientID, _ = url.QueryUnescape(r.basicUser)
		secret, _ = url.QueryUnescape(r.basicPass)
	}
	ev.Caller.AppID = safe(clientID)
	if clientID == "" {
		return nil, terr(errs.BadParameter, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	// Lockout and the client's rate (tokenlimits.go): failures count per
	// client and source; only authenticated requests spend the client's
	// budget.
	guard, source := a.guard.Load(), ev.Caller.IP
	known, _ := a.dir.ServicePrincipal(ctx, tenant, clientID) // nil if unknown
	if after := max(guard.lockedFor(tenant, clientID, source), guard.storedLockedFor(known, source)); after > 0 {
		ev.Reason = "client locked for this source"
		return nil, throttled(50053, "Too many failed authentications of this client from this source.", after)
	}
	ca, err := a.checkClient(ctx, r, tenant, clientID, secret)
	var te *tokenError
	if errors.As(err, &te) && te.kind == errs.Unauthorized || errors.Is(err, errUnknownClient) {
		guard.failed(tenant, clientID, source)
		if known != nil && guard.cfg.LockoutFailures > 0 {
			// Best effort: if the count cannot be stored, the node's own
			// count still locks. Bookkeeping, not the request's change: it
			// does not record the request's audit event early (the 401 is
			// audited when the request ends).
			a.dir.UpdateServicePrincipal(storage.WithoutPreCommit(ctx), tenant, clientID, func(sp *ServicePrincipal) error {
				guard.storeFailure(sp, source)
				return nil
			})
		}
	}
	if errors.Is(err, errUnknownClient) {
		return nil, terr(errs.BadParameter, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", safe(clientID), tenant))
	}
	if err != nil {
		return nil, err
	}
	guard.succeeded(tenant, clientID, source)
	if _, ok := ca.sp.TokenFailures[sourceKey(source)]; ok {
		a.dir.UpdateServicePrincipal(storage.WithoutPreCommit(ctx), tenant, clientID, func(sp *ServicePrincipal) error {
			delete(sp.TokenFailures, sourceKey(source))
			return nil
		})
	}
	if after, ok := guard.allowClient(tenant, ca.sp.AppID); !ok {
		ev.Reason = "token requests of this client throttled"
		return nil, throttled(50196, "Too many token requests for this client.", after)
	}
	return ca, nil
}

// errUnknownClient: no such client in the tenant (a 400 unauthorized_client).
var errUnknownClient = errors.New("identity: unknown client")

// checkClient verifies the credential a confidential client presented.
func (a *Authority) checkClient(ctx context.Context, r *tokenRequest, tenant, clientID, secret string) (*clientAuth, error) {
	form := r.form
	ev := audit.EventFrom(ctx)
	notFound := errUnknownClient
	if assertion := form.Get("client_assertion"); assertion != "" {
		if form.Get("client_assertion_type") != assertionTypeJWT {
			return nil, terr(errs.BadParameter, "invalid_request", 50027, "client_assertion_type must be "+assertionTypeJWT+".")
		}
		sp, err := a.dir.ServicePrincipal(ctx, tenant, clientID)
		if errors.Is(err, ErrNotFound) {
			ev.Reason = "unknown client"
			return nil, notFound
		} else if err != nil {
			return nil, err
		}
		u, err := peekAssertion(assertion)
		if err == nil {
			if u.isCertificateAssertion(clientID) {
				ev.Reason = "certificate assertion"
				if sp.IsManagedIdentity() {
					err = assertErr(700027, "Managed identities have no certificates.")
				} else {
					err = a.verifyCertificateAssertion(sp, tenant, assertion, u)
				}
			} else {
				ev.Reason = "federated assertion"
				err = a.verifyFederatedAssertion(ctx, sp, tenant, assertion, u)
			}
		}
		var ae *assertionError
		if errors.As(err, &ae) {
			return nil, terr(errs.Unauthorized, "invalid_client", ae.aadsts, ae.desc)
		}
		if err != nil {
			return nil, err
		}
		ev.Reason = ""
		return &clientAuth{sp: sp, acr: "2"}, nil
	}
	if secret == "" {
		return nil, terr(errs.BadParameter, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	sp, err := a.dir.AuthenticateSecret(ctx, tenant, clientID, secret, a.clock.Now())
	switch {
	case errors.Is(err, ErrNotFound):
		ev.Reason = "unknown client"
		return nil, notFound
	case errors.Is(err, ErrInvalidCredential):
		ev.Reason = "invalid client secret"
		return nil, terr(errs.Unauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+safe(clientID)+"'.")
	case err != nil:
		return nil, err
	}
	return &clientAuth{sp: sp, acr: "1"}, nil
}

func (a *Authority) grantClientCredentials(ctx context.Context, r *tokenRequest, tenant, resource string, resources []string) (*tokenClaims, error) {
	aud, err := a.resolveResource(ctx, tenant, resource, resources)
	if err != nil {
		return nil, err
	}
	ca, err := a.authenticateClient(ctx, r, tenant)
	if err != nil {
		return nil, err
	}
	return appClaims(ca.sp, aud, ca.acr), nil
}

// grantOnBehalfOf exchanges a user's token, whose audience is the
// requesting middle-tier application, for a token to a downstream
// resource with the user's identity and the middle tier as azp
// (IDENTITY.md §8): the compound identity access policies can name.
func (a *Authority) grantOnBehalfOf(ctx context.Context, r *tokenRequest, tenant, resource string, resources []string) (*tokenClaims, error) {
	aud, err := a.resolveResource(ctx, tenant, resource, resources)
	if err != nil {
		return nil, err
	}
	ca, err := a.authenticateClient(ctx, r, tenant)
	if err != nil {
		return nil, err
	}
	ev := audit.EventFrom(ctx)
	appID := strings.ToLower(ca.sp.AppID)
	bad := terr(errs.BadParameter, "invalid_grant", 50013, "Assertion failed signature validation or is not valid for this application.")
	user, reason, err := a.Validate(r.form.Get("assertion"), []string{appID, "api://" + appID})
	if err != nil {
		ev.Reason = "obo assertion: " + reason
		return nil, bad
	}
	if !strings.EqualFold(user.TenantID, tenant) {
		ev.Reason = "obo assertion from another tenant"
		return nil, bad
	}
	if user.Scope == "" || user.IDType == "app" {
		ev.Reason = "obo assertion is app-only"
		return nil, terr(errs.BadParameter, "invalid_grant", 50058, "The assertion is not a user token: on-behalf-of only works for user principals.")
	}
	u, err := a.dir.User(ctx, tenant, user.ObjectID)
	if err != nil || u.Disabled {
		ev.Reason = "obo user does not exist"
		return nil, terr(errs.BadParameter, "invalid_grant", 50034, "The user account does not exist in the directory.")
	}
	return userClaims(u, ca.sp.AppID, aud, ca.acr), nil
}

// publicClient checks the client_id of a public-client sign-in.
func (a *Authority) publicClient(ctx context.Context, tenant, clientID string) error {
	if strings.EqualFold(clientID, AzureCLIClientID) || strings.EqualFold(clientID, KeywardCLIClientID) || strings.EqualFold(clientID, KeywardConsoleClientID) {
		return nil
	}
	if _, err := a.dir.ServicePrincipal(ctx, tenant, clientID); err == nil {
		return nil
	}
	return terr(errs.BadParameter, "unauthorized_client", 700016,
		fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", safe(clientID), tenant))
}

// checkPassword verifies a user's password. Unknown users cost the same
// argon2id work as known ones, so timing does not tell them apart.
func (a *Authority) checkPassword(ctx context.Context, tenant, username, password string) (*User, error) {
	bad := terr(errs.BadParameter, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
	u, err := a.dir.UserByName(ctx, tenant, username)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	hash := dummyHash()
	if u != nil && !u.Disabled {
		hash = u.PasswordHash
	}
	ok := VerifyPassword(hash, password)
	if u == nil || u.Disabled || !ok {
		audit.EventFrom(ctx).Reason = "invalid username or password"
		return nil, bad
	}
	return u, nil
}

// dummyHash is verified against when the user does not exist.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("keyward-dummy-password-for-timing")
	return h
})

// idToken is the OpenID Connect ID token and MSAL client_info of a user
// sign-in: who signed in, for the public client that asked.
func (a *Authority) idToken(c *tokenClaims) (string, string, error) {
	now := a.clock.Now()
	claims := jwt.MapClaims{
		"iss": a.Issuer(c.TenantID), "aud": c.AZP, "sub": c.ObjectID, "oid": c.ObjectID, "tid": c.TenantID,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(a.Lifetime).Unix(), "ver": "2.0",
		"name": c.Name, "preferred_username": c.PreferredUsername,
	}
	tok, err := a.signClaims(claims)
	if err != nil {
		return "", "", err
	}
	info, _ := json.Marshal(map[string]string{"uid": c.ObjectID, "utid": c.TenantID})
	return tok, base64.RawURLEncoding.EncodeToString(info), nil
}
