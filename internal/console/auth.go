package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/keyward/keyward/internal/route"
)

// Sign-in and sign-out: the authorization code grant with PKCE (the
// browser goes to the token service's authorize page, which posts the code
// back: response_mode=form_post keeps it out of URLs), or the device flow
// (the user enters a code on {authority}device, as for the CLI). Both end
// in a server-side session holding the user's refresh token.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "signin", Title: "Sign in", Scope: Hidden, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/signin", Op: "ConsoleSignInPage", Action: "public", Handle: signInPage},
		{Method: get, Pattern: "/ui/auth/start", Op: "ConsoleSignInStart", Action: "public", Handle: signInStart},
		{Method: post, Pattern: "/ui/auth/callback", Op: "ConsoleSignInCallback", Action: "public", Handle: signInCallback},
		{Method: post, Pattern: "/ui/auth/device", Op: "ConsoleDeviceStart", Action: "public", Handle: deviceStart},
		{Method: post, Pattern: "/ui/auth/device/poll", Op: "ConsoleDevicePoll", Action: "public", Handle: devicePoll},
		{Method: post, Pattern: "/ui/signout", Op: "ConsoleSignOut", Handle: signOut},
	}})
}

func signInPage(q *req) error {
	if q.s != nil {
		http.Redirect(q.w, q.r, "/ui/", http.StatusSeeOther)
		return nil
	}
	return q.render("signin", http.StatusOK, "Sign in", nil)
}

func (q *req) newLogin(l *login) {
	id := randomString(32)
	l.created = q.c.cfg.Clock.Now()
	q.c.mu.Lock()
	for k, x := range q.c.logins {
		if l.created.Sub(x.created) > loginLifetime {
			delete(q.c.logins, k)
		}
	}
	if len(q.c.logins) >= maxSessions {
		clear(q.c.logins)
	}
	q.c.logins[hashKey(id)] = l
	q.c.mu.Unlock()
	q.c.setCookie(q.w, loginCookie, id, int(loginLifetime.Seconds()))
}

// takeLogin returns the sign-in in progress named by the login cookie;
// done removes it.
func (q *req) takeLogin(done bool) *login {
	ck, err := q.r.Cookie(loginCookie)
	if err != nil {
		return nil
	}
	q.c.mu.Lock()
	defer q.c.mu.Unlock()
	l := q.c.logins[hashKey(ck.Value)]
	if l == nil || q.c.cfg.Clock.Now().Sub(l.created) > loginLifetime {
		delete(q.c.logins, hashKey(ck.Value))
		return nil
	}
	if done {
		delete(q.c.logins, hashKey(ck.Value))
	}
	return l
}

func signInStart(q *req) error {
	l := &login{state: randomString(24), verifier: randomString(48)}
	q.newLogin(l)
	sum := sha256.Sum256([]byte(l.verifier))
	v := url.Values{"client_id": {q.c.cfg.ClientID}, "response_type": {"code"}, "response_mode": {"form_post"},
		"redirect_uri": {q.c.CallbackURL()}, "scope": {q.c.cfg.ManagementResource + ".default offline_access openid profile"},
		"state": {l.state}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	http.Redirect(q.w, q.r, q.c.cfg.Authority+q.c.cfg.Tenant()+"/oauth2/v2.0/authorize?"+v.Encode(), http.StatusSeeOther)
	return nil
}

func signInFailed(msg string) error {
	return &apiError{Status: http.StatusUnauthorized, Code: "SignInFailed", Message: msg}
}

func signInCallback(q *req) error {
	f := q.r.PostForm
	l := q.takeLogin(true)
	q.c.setCookie(q.w, loginCookie, "", -1)
	if l == nil || l.state == "" || subtle.ConstantTimeCompare([]byte(f.Get("state")), []byte(l.state)) != 1 {
		q.ev.Reason = "state mismatch"
		return signInFailed("This sign-in was not started here, or took too long. Start again.")
	}
	if e := f.Get("error"); e != "" {
		return signInFailed("The token service refused the sign-in: " + f.Get("error_description"))
	}
	t, status, err := q.tokenCall("/oauth2/v2.0/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {q.c.cfg.ClientID},
		"code": {f.Get("code")}, "redirect_uri": {q.c.CallbackURL()}, "code_verifier": {l.verifier},
		"scope": {q.c.cfg.ManagementResource + ".default offline_access"}})
	if err != nil {
		return err
	}
	if status != http.StatusOK || t.AccessToken == "" {
		return signInFailed("The sign-in could not be completed: " + t.Description)
	}
	if err := q.c.newSession(q.w, t, q.c.cfg.ManagementResource); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/ui/", http.StatusSeeOther)
	return nil
}

func deviceStart(q *req) error {
	t, status, err := q.deviceCall()
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return signInFailed("The device sign-in could not be started.")
	}
	l := &login{deviceCode: t.DeviceCode, userCode: t.UserCode, uri: t.VerificationURI}
	q.newLogin(l)
	return q.render("device", http.StatusOK, "Sign in with a code", l.view(""))
}

type deviceView struct{ UserCode, URI, Message string }

func (l *login) view(msg string) deviceView { return deviceView{l.userCode, l.uri, msg} }

func devicePoll(q *req) error {
	l := q.takeLogin(false)
	if l == nil || l.deviceCode == "" {
		return signInFailed("This sign-in has expired. Start again.")
	}
	t, status, err := q.tokenCall("/oauth2/v2.0/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
		"client_id": {q.c.cfg.ClientID}, "device_code": {l.deviceCode}, "scope": {q.c.cfg.ManagementResource + ".default offline_access"}})
	if err != nil {
		return err
	}
	if status != http.StatusOK || t.AccessToken == "" {
		if t.Error == "authorization_pending" {
			return q.render("device", http.StatusOK, "Sign in with a code", l.view("Waiting for you to finish signing in…"))
		}
		q.takeLogin(true)
		return signInFailed("The device sign-in ended: " + t.Error)
	}
	q.takeLogin(true)
	q.c.setCookie(q.w, loginCookie, "", -1)
	if err := q.c.newSession(q.w, t, q.c.cfg.ManagementResource); err != nil {
		return err
	}
	http.Redirect(q.w, q.r, "/ui/", http.StatusSeeOther)
	return nil
}

type deviceResponse struct {
	tokenResponse
	DeviceCode      string `json:"device_code"`
	UserCode        string `json:"user_code"`
	VerificationURI string `json:"verification_uri"`
}

func (q *req) deviceCall() (*deviceResponse, int, error) {
	res, err := q.send(http.MethodPost, q.c.cfg.Authority+q.c.cfg.Tenant()+"/oauth2/v2.0/devicecode", "",
		"application/x-www-form-urlencoded", []byte(url.Values{"client_id": {q.c.cfg.ClientID},
			"scope": {q.c.cfg.ManagementResource + ".default offline_access"}}.Encode()))
	if err != nil {
		return nil, 0, err
	}
	var d deviceResponse
	json.Unmarshal(res.body.Bytes(), &d)
	return &d, res.status, nil
}

func signOut(q *req) error {
	q.c.endSession(q.w, q.r)
	q.s = nil
	return q.render("signin", http.StatusOK, "Signed out", "You are signed out.")
}
