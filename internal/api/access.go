package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/identity"
)

// Access decisions on the data plane (DESIGN.md, the path of a request):
// after authentication, the vault's network rules, then authorization.
// Both decisions are the authorizer's; this file only turns them into
// Azure's 403 bodies (AZURE-API.md §1.5): ForbiddenByFirewall with the
// client address, ForbiddenByRbac naming the missing action, AccessDenied
// naming the missing access-policy permission. A denial is decided before
// the object is looked up, so it never tells whether the object exists.

type privateListenerKey struct{}

// WithPrivateListener marks a connection's context as coming through a
// listener marked private: Keyward's self-hosted private endpoint, which
// vaults with publicNetworkAccess Disabled still accept. The server sets
// it in http.Server.ConnContext of private listeners only.
func WithPrivateListener(ctx context.Context) context.Context {
	return context.WithValue(ctx, privateListenerKey{}, true)
}

func privateListener(ctx context.Context) bool {
	v, _ := ctx.Value(privateListenerKey{}).(bool)
	return v
}

// clientIP is the address network rules and the audit log see: the TCP
// peer, or, when the peer is a configured trusted proxy, the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy. Headers from
// any other peer are ignored: a client cannot choose its own address.
func (h *Handler) clientIP(r *http.Request) string {
	peer := remoteIP(r)
	if len(h.cfg.TrustedProxies) == 0 {
		return peer
	}
	trusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, p := range h.cfg.TrustedProxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !trusted(peer) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !trusted(hop) {
			if a, err := netip.ParseAddr(hop); err == nil {
				return a.Unmap().String()
			}
			return peer // garbage after a trusted proxy: fall back to the peer
		}
	}
	return peer
}

// isManagementHost reports whether host (with or without port) is
// management.{suffix}.
func (h *Handler) isManagementHost(host string) bool {
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	return strings.EqualFold(host, "management."+h.cfg.DNSSuffix)
}

// isList reports whether a route lists a collection (access policies
// grant that with "list", RBAC with the same read action as get).
func isList(rt *kwroute) bool {
	return rt.Method == http.MethodGet && (!strings.Contains(rt.Pattern, "{name}") || strings.HasSuffix(rt.Pattern, "/versions"))
}

// checkAccess applies network rules and authorization to rq and writes the
// 403 when either denies.
func (h *Handler) checkAccess(rq *request, rt *kwroute, claims *identity.Claims) bool {
	v, ev := rq.vault, rq.ev
	rq.principal.Delegated = claims.IDType == "user" || claims.Scope != ""
	scope := authz.Scope{TenantID: v.TenantID, SubscriptionID: v.SubscriptionID, ResourceGroup: v.ResourceGroup,
		Vault: v.Name, ObjectType: rt.Object, ObjectName: rq.params["name"], List: isList(rt)}
	// Worded only for a denial: an allowed request does not format it.
	caller := func() string {
		return fmt.Sprintf("appid=%s;oid=%s;iss=%s", rq.principal.AppID, rq.principal.ObjectID, claims.Issuer)
	}
	if na, ok := h.authz.(authz.NetworkAuthorizer); ok {
		ip, _ := netip.ParseAddr(ev.Caller.IP)
		d := na.AuthorizeNetwork(rq.principal, scope, authz.Client{IP: ip, Private: privateListener(rq.r.Context())})
		if !d.Allowed {
			ev.Reason = "firewall: " + d.Reason
			ev.Result = audit.Denied
			h.writeErr(rq.w, rq.r, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: authz.CodeFirewall,
				message: fmt.Sprintf("Client address is not authorized and caller is not a trusted service.\r\nClient address: %s\r\nCaller: %s\r\nVault: %s;location=%s",
					ev.Caller.IP, caller(), v.Name, v.Location)})
			return false
		}
	}
	if rt.Action == "" {
		// The approval routes (quorum.go): who may see or decide a
		// request is the request's own list of approvers, checked there.
		ev.Authz = "quorum"
		return true
	}
	d := h.authz.Authorize(rq.principal, rt.Action, scope)
	if d.Allowed {
		ev.Authz = "rbac"
		if strings.HasPrefix(d.Reason, "Access policy") {
			ev.Authz = "policy"
		}
		return true
	}
	ev.Reason = d.Reason
	if d.Missing != "" {
		ev.Reason += "; missing " + d.Missing
	}
	ev.Result = audit.Denied
	if d.Code == authz.CodePolicy {
		h.writeErr(rq.w, rq.r, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: authz.CodePolicy,
			message: fmt.Sprintf("The user, group or application '%s' does not have %s permission on key vault '%s;location=%s'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
				caller(), d.Missing, v.Name, v.Location)})
		return false
	}
	h.writeErr(rq.w, rq.r, &apiError{status: http.StatusForbidden, code: "Forbidden", inner: authz.CodeRbac,
		message: fmt.Sprintf("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: %s\r\nAction: '%s'\r\nResource: '%s'\r\n%s\r\nVault: %s;location=%s\r\n",
			caller(), rt.Action, strings.ToLower(scope.String()), d.Reason, v.Name, v.Location)})
	return false
}
