package identity

import (
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/audit"
)

// The device flow on the wire: the device authorization endpoint (the
// CLI asks for a code) and the page where the user signs in (device.go
// decides).

// serveDeviceAuthorization answers the CLI's request for a device code.
func (a *Authority) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request, tenant string, resources []string) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	ev.Service, ev.Operation = "identity", "DeviceAuthorization"
	ev.Caller.TenantID = tenant
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		a.oauthError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body could not be parsed.")
		return
	}
	d, err := a.startDevice(ctx, tenant, r.PostForm.Get("client_id"), r.PostForm.Get("scope"), resources)
	if err != nil {
		te := err.(*tokenError)
		status := oauthStatus(te.kind)
		if errors.Is(err, errDevicesFull) {
			status = http.StatusServiceUnavailable
		}
		a.oauthError(w, r, status, te.code, te.aadsts, te.desc)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code": d.deviceCode, "user_code": d.userCode, "verification_uri": d.uri, "expires_in": int(deviceCodeLifetime.Seconds()),
		"interval": devicePollInterval,
		"message":  "To sign in, use a web browser to open the page " + d.uri + " and enter the code " + d.userCode + " to authenticate.",
	})
}

var devicePage = template.Must(template.New("device").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keyward sign-in</title></head>
<body><h1>Sign in to Keyward</h1>
{{if .Message}}<p role="status">{{.Message}}</p>{{end}}
{{if not .Done}}<form method="post" action="device" autocomplete="off">
<label>Code <input name="user_code" value="{{.Code}}" required></label><br>
<label>User name <input name="username" required></label><br>
<label>Password <input name="password" type="password" required></label><br>
<label>Authenticator code <input name="totp" inputmode="numeric" pattern="[0-9]{6}"></label><br>
<button type="submit">Sign in</button></form>{{end}}
</body></html>`))

// serveDevicePage is the browser side of the device flow: the user enters
// the code shown by the CLI and signs in with password and TOTP.
func (a *Authority) serveDevicePage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ev := audit.EventFrom(ctx)
	ev.Service, ev.Operation = "identity", "DeviceSignIn"
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
	type page struct {
		Code, Message string
		Done          bool
	}
	if r.Method == http.MethodGet {
		devicePage.Execute(w, page{Code: r.URL.Query().Get("code")})
		return
	}
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		devicePage.Execute(w, page{Message: "The form could not be read."})
		return
	}
	f := r.PostForm
	uc := strings.ToUpper(strings.TrimSpace(f.Get("user_code")))
	if err := a.deviceSignIn(ctx, uc, f.Get("username"), f.Get("password"), f.Get("totp")); err != nil {
		var se *signInError
		if !errors.As(err, &se) {
			se = &signInError{kind: errTransient.kind, reason: err.Error(), msg: "A transient error has occurred. Please try again."}
		}
		ev.Reason = se.reason
		w.WriteHeader(oauthStatus(se.kind))
		devicePage.Execute(w, page{Code: uc, Message: se.msg})
		return
	}
	devicePage.Execute(w, page{Message: "You are signed in. You may close this window and return to the command line.", Done: true})
}
