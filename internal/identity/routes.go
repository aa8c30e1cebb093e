package identity

import (
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// handler serves one token-service operation; p holds the pattern's
// parameters.
type handler = func(a *Authority, w http.ResponseWriter, r *http.Request, p map[string]string, resources []string)

// tokenRoutes is the whole token service under the authority URL
// (IDENTITY.md), matched by internal/route: OIDC discovery and keys, the
// token endpoint (v1 and v2), the device flow and the managed-identity
// endpoint. A method it does not serve is not its route (the front door
// answers 404).
func tokenRoutes() route.Table[handler, string] {
	const get, post = http.MethodGet, http.MethodPost
	discovery := func(v2 bool) handler {
		return func(a *Authority, w http.ResponseWriter, r *http.Request, p map[string]string, _ []string) {
			a.serveDiscovery(w, r, strings.ToLower(p["tenant"]), v2)
		}
	}
	jwks := func(a *Authority, w http.ResponseWriter, _ *http.Request, _ map[string]string, _ []string) {
		writeJSON(w, http.StatusOK, map[string]any{"keys": a.JWKS()})
	}
	token := func(v1 bool) handler {
		return func(a *Authority, w http.ResponseWriter, r *http.Request, p map[string]string, resources []string) {
			a.serveToken(w, r, strings.ToLower(p["tenant"]), v1, resources)
		}
	}
	authorize := func(a *Authority, w http.ResponseWriter, r *http.Request, p map[string]string, resources []string) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		a.serveAuthorize(w, r, strings.ToLower(p["tenant"]), resources)
	}
	msi := func(a *Authority, w http.ResponseWriter, r *http.Request, _ map[string]string, resources []string) {
		a.serveMSI(w, r, resources)
	}
	return route.Compile([]route.Route[handler, string]{
		{Pattern: "/msi/token", Op: "ManagedIdentityToken", Handle: msi},
		{Pattern: "/metadata/identity/oauth2/token", Op: "ManagedIdentityToken", Handle: msi},
		{Pattern: "/device", Op: "DeviceSignIn", Handle: func(a *Authority, w http.ResponseWriter, r *http.Request, _ map[string]string, _ []string) {
			a.serveDevicePage(w, r)
		}},
		{Method: post, Pattern: "/{tenant}/oauth2/v2.0/devicecode", Op: "DeviceAuthorization", Handle: func(a *Authority, w http.ResponseWriter, r *http.Request, p map[string]string, resources []string) {
			a.serveDeviceAuthorization(w, r, strings.ToLower(p["tenant"]), resources)
		}},
		// The ADFS-shaped authority {base}adfs/{tenant}/adfs: MSAL (Python,
		// .NET, Go) skips instance discovery for an authority whose first
		// path segment is "adfs", and az CLI < 2.54 has no other way to skip
		// it (IDENTITY.md §5, docs/CLIENTS.md). The document points at the
		// tenant's own endpoints, so tokens are the tenant's as usual.
		{Method: get, Pattern: "/adfs/{tenant}/adfs/.well-known/openid-configuration", Op: "OpenIDConfiguration", Handle: discovery(true)},
		{Method: get, Pattern: "/adfs/.well-known/openid-configuration", Op: "OpenIDConfiguration", Handle: func(a *Authority, w http.ResponseWriter, r *http.Request, _ map[string]string, _ []string) {
			a.oauthError(w, r, http.StatusBadRequest, "invalid_tenant", 90002,
				"An ADFS-shaped authority names its tenant here: "+a.base+"adfs/{tenant}/adfs (`keyward az-cloud` prints the az cloud register line).")
		}},
		{Method: get, Pattern: "/{tenant}/v2.0/.well-known/openid-configuration", Op: "OpenIDConfiguration", Handle: discovery(true)},
		{Method: get, Pattern: "/{tenant}/.well-known/openid-configuration", Op: "OpenIDConfiguration", Handle: discovery(false)},
		{Method: get, Pattern: "/{tenant}/discovery/v2.0/keys", Op: "JWKS", Handle: jwks},
		{Method: get, Pattern: "/{tenant}/discovery/keys", Op: "JWKS", Handle: jwks},
		{Method: get, Pattern: "/oauth2/v2.0/formpost.js", Op: "AuthorizeScript", Handle: func(a *Authority, w http.ResponseWriter, _ *http.Request, _ map[string]string, _ []string) {
			a.serveFormPostScript(w)
		}},
		{Pattern: "/{tenant}/oauth2/v2.0/authorize", Op: "Authorize", Handle: authorize},
		{Method: post, Pattern: "/{tenant}/oauth2/v2.0/token", Op: "TokenIssue", Handle: token(false)},
		{Method: post, Pattern: "/{tenant}/oauth2/token", Op: "TokenIssue", Handle: token(true)},
	})
}

// Surface is the token service as the front door serves it: its routes
// table, bound to the audiences tokens may be issued for (each without a
// trailing slash).
type Surface struct {
	a         *Authority
	resources []string
	routes    route.Table[handler, string]
}

// Surface returns the token service's surface for resources.
func (a *Authority) Surface(resources []string) *Surface {
	return &Surface{a: a, resources: resources, routes: tokenRoutes()}
}

// Route finds r's operation. It returns a nil handler when the path is not
// the token service's; the front door answers that.
func (s *Surface) Route(r *http.Request) (op string, h http.Handler) {
	rt, p, _ := s.routes.Match(r.Method, r.URL.EscapedPath())
	if rt == nil {
		return "", nil
	}
	return rt.Op, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt.Handle(s.a, w, r, p, s.resources)
	})
}

// ServeHTTP serves r, or answers 404 when it is not the token service's.
func (s *Surface) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, h := s.Route(r)
	if h == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found"})
		return
	}
	h.ServeHTTP(w, r)
}
