package identity

import (
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/errs"
)

// The token endpoint on the wire: the form a token request posts, and
// Entra's token response or error (grants.go decides).

func (a *Authority) serveToken(w http.ResponseWriter, r *http.Request, tenant string, v1 bool, resources []string) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	ev.Caller.TenantID = tenant
	fail := func(e *tokenError) {
		if ev.Reason == "" {
			ev.Reason = e.code
		}
		if e.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((e.retryAfter+time.Second-1)/time.Second), 10))
		}
		a.oauthError(w, r, oauthStatus(e.kind), e.code, e.aadsts, e.desc)
	}
	if after, ok := a.guard.Load().allowSource(ev.Caller.IP); !ok {
		ev.Reason = "token requests from this source throttled"
		fail(throttled(50196, "Too many token requests from this source.", after))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		fail(terr(errs.BadParameter, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		fail(terr(errs.BadParameter, "invalid_request", 900144, "The request body could not be parsed."))
		return
	}
	form := r.PostForm
	rq := &tokenRequest{form: form}
	rq.basicUser, rq.basicPass, rq.basic = r.BasicAuth()
	grant := form.Get("grant_type")
	c, err := a.grant(ctx, tenant, v1, rq, resources)
	var te *tokenError
	if errors.As(err, &te) {
		fail(te)
		return
	}
	if err != nil {
		fail(errTransient)
		return
	}
	ev.Caller.ObjectID, ev.Caller.AppID = c.ObjectID, c.AZP
	ev.ObjectID = c.ObjectID
	tok, exp, err := a.issue(c)
	if err != nil {
		fail(errTransient)
		return
	}
	secs := int(exp.Sub(a.clock.Now()).Seconds())
	if secs <= 0 || secs > int(a.Lifetime.Seconds()) {
		secs = int(a.Lifetime.Seconds())
	}
	resp := map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": tok}
	if c.Scope != "" {
		// MSAL compares the granted scopes with the requested ones; a
		// ".default" request is granted as asked.
		resp["scope"] = strings.TrimSuffix(c.Audience, "/") + "/" + c.Scope
		if sc := form.Get("scope"); sc != "" {
			resp["scope"] = sc
		}
	}
	if v1 {
		resp["expires_on"] = strconv.FormatInt(exp.Unix(), 10)
		resp["resource"] = c.Audience
	}
	userGrant := grant == grantDeviceCode || grant == "device_code" || grant == grantAuthorizationCode || grant == grantRefreshToken
	if userGrant && (c.refreshOf != nil || wantsOffline(form.Get("scope"))) {
		if rt := a.issueRefresh(c, c.refreshOf); rt != "" {
			resp["refresh_token"] = rt
		}
	}
	if userGrant {
		// Public clients (MSAL) build their account from these.
		idt, cinfo, err := a.idToken(c)
		if err != nil {
			fail(errTransient)
			return
		}
		resp["id_token"], resp["client_info"] = idt, cinfo
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}
