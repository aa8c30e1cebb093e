package identity

import (
	"html/template"
	"net/http"
	"net/url"

	"github.com/keyward/keyward/internal/audit"
)

// The authorize endpoint on the wire (authcode.go decides): the sign-in
// page, and the delivery of the code to the redirect URI.

var authorizePage = template.Must(template.New("authorize").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Keyward sign-in</title></head>
<body><main><h1>Sign in to Keyward</h1>
{{if .Fatal}}<p role="alert">{{.Fatal}}</p>{{else}}
{{if .Message}}<p role="alert">{{.Message}}</p>{{end}}
<form method="post" autocomplete="off">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<p><label>User name <input name="username" id="username" value="{{.Username}}" required autofocus></label></p>
<p><label>Password <input name="password" id="password" type="password" required></label></p>
<p><label>Authenticator code <input name="totp" id="totp" inputmode="numeric" pattern="[0-9]{6}" autocomplete="one-time-code"></label></p>
<p><button type="submit" id="signin">Sign in</button></p></form>{{end}}
</main></body></html>`))

var formPostPage = template.Must(template.New("formpost").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Signing in…</title>
<script src="{{.Script}}"></script></head>
<body><form method="post" action="{{.Action}}" id="formpost">
{{range $k, $v := .Fields}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<noscript><p>Scripts are off: press the button to finish signing in.</p></noscript>
<button type="submit">Continue</button></form></body></html>`))

// formPostScript submits the form_post page's form.
const formPostScript = `document.addEventListener("DOMContentLoaded",function(){document.getElementById("formpost").submit();});`

func (a *Authority) serveFormPostScript(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=3600")
	w.Write([]byte(formPostScript))
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// serveAuthorize is the authorize endpoint: GET shows the sign-in form,
// POST signs the user in and sends the code to the redirect URI.
func (a *Authority) serveAuthorize(w http.ResponseWriter, r *http.Request, tenant string, resources []string) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	ev.Service, ev.Operation = "identity", "Authorize"
	ev.Caller.TenantID = tenant
	var q url.Values
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		q = r.PostForm
	} else {
		q = r.URL.Query()
	}
	ar, fatal, code, desc := a.parseAuthorize(ctx, tenant, q, resources)
	csp := "default-src 'none'; script-src 'self'; form-action 'self'"
	if ar != nil {
		csp += " " + originOf(ar.RedirectURI)
	}
	h := w.Header()
	h.Set("Content-Security-Policy", csp+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	type page struct {
		Fatal, Message, Username string
		Hidden                   map[string]string
	}
	if fatal != "" {
		ev.Reason = "invalid authorize request"
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		authorizePage.Execute(w, page{Fatal: fatal})
		return
	}
	if code != "" {
		ev.Reason = code
		a.deliver(w, ar, map[string]string{"error": code, "error_description": desc})
		return
	}
	p := page{Username: ar.LoginHint, Hidden: map[string]string{
		"client_id": ar.ClientID, "redirect_uri": ar.RedirectURI, "scope": ar.Scope, "state": ar.State,
		"code_challenge": ar.Challenge, "code_challenge_method": "S256", "response_type": "code",
		"response_mode": ar.Mode}}
	h.Set("Content-Type", "text/html; charset=utf-8")
	if r.Method != http.MethodPost {
		authorizePage.Execute(w, p)
		return
	}
	p.Username = q.Get("username")
	u, err := a.signInUser(ctx, tenant, q.Get("username"), q.Get("password"), q.Get("totp"))
	if err != nil {
		se, ok := err.(*signInError)
		if !ok {
			se = &signInError{kind: errTransient.kind, reason: err.Error(), msg: "A transient error has occurred. Please try again."}
		}
		ev.Reason = se.reason
		p.Message = se.msg
		w.WriteHeader(oauthStatus(se.kind))
		authorizePage.Execute(w, p)
		return
	}
	raw, err := a.issueCode(ar, u)
	if err != nil {
		ev.Reason = "too many pending codes"
		a.deliver(w, ar, map[string]string{"error": "temporarily_unavailable", "error_description": "AADSTS90033: Too many pending sign-ins. Try again later."})
		return
	}
	a.deliver(w, ar, map[string]string{"code": raw})
}

// deliver sends a result (code, or error) to the redirect URI with state.
func (a *Authority) deliver(w http.ResponseWriter, ar *authorizeRequest, fields map[string]string) {
	if ar.State != "" {
		fields["state"] = ar.State
	}
	if ar.Mode == "form_post" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		formPostPage.Execute(w, map[string]any{"Action": ar.RedirectURI, "Fields": fields,
			"Script": a.base + "oauth2/v2.0/formpost.js"})
		return
	}
	u, _ := url.Parse(ar.RedirectURI)
	q := u.Query()
	for k, v := range fields {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusFound)
}
