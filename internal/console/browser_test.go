package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/kwtest"
)

// chromium finds Debian's chromium. In CI (CI=true) a missing browser is
// a failure; elsewhere the test is skipped with a message.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install -y chromium); CI must run the browser test")
	}
	t.Skip("chromium is not installed: skipping the browser test (apt-get install -y chromium)")
	return ""
}

type user struct {
	name, password, oid string
	totp                []byte
}

// armCall sends a management-plane request with the dev principal's token.
func armCall(t *testing.T, e *kwtest.Env, method, path string, body any) map[string]any {
	t.Helper()
	tok, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}})
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(method, strings.TrimSuffix(e.Info.ManagementURL, "/")+path+sep+"api-version=2022-04-01", rd)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

func newUser(t *testing.T, e *kwtest.Env, name string) *user {
	u := &user{name: name + "@example.test", password: "console test password " + name}
	out := armCall(t, e, http.MethodPost, "/providers/Keyward.Directory/users", map[string]string{
		"userPrincipalName": u.name, "displayName": name, "password": u.password})
	u.oid, _ = out["objectId"].(string)
	out = armCall(t, e, http.MethodPost, "/providers/Keyward.Directory/users/"+u.oid+"/totp", nil)
	b32, _ := out["secret"].(string)
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(b32, "="))
	if err != nil {
		t.Fatalf("TOTP secret %q: %v", b32, err)
	}
	u.totp = secret
	return u
}

func assign(t *testing.T, e *kwtest.Env, scope, roleGUID, principal string) {
	armCall(t, e, http.MethodPut, scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuidLike(scope+roleGUID+principal), map[string]any{
		"properties": map[string]string{"roleDefinitionId": scope + "/providers/Microsoft.Authorization/roleDefinitions/" + roleGUID,
			"principalId": principal, "principalType": "User"}})
}

func uuidLike(s string) string {
	h := sha256.Sum256([]byte(s))
	x := fmt.Sprintf("%x", h[:16])
	return x[0:8] + "-" + x[8:12] + "-4" + x[13:16] + "-8" + x[17:20] + "-" + x[20:32]
}

// leafSPKI is the base64 SHA-256 of the server certificate's public key:
// Chromium trusts exactly that key (--ignore-certificate-errors-spki-list),
// no certificate error is ignored otherwise.
func leafSPKI(t *testing.T, e *kwtest.Env) string {
	conn, err := tls.Dial("tcp", e.Info.Listen, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestConsoleInBrowser drives the console in headless Chromium: a user
// signs in with password and TOTP (authorization code + PKCE), creates and
// reveals a secret, creates a key and edits its rotation policy, gives a
// second user a role and signs out; the second user signs in and can do
// exactly what the role allows, with a clear message for what it does not.
// Along the way it checks the CSP and cookie flags of the responses, that
// no token or secret reaches a URL, a readable cookie or localStorage,
// and saves screenshots.
func TestConsoleInBrowser(t *testing.T) {
	chrome := chromium(t)
	e := kwtest.Start(t, kwtest.Options{})
	ui := e.Info.UIURL
	if ui == "" {
		t.Fatal("dev.json has no ui_url")
	}
	alice, bob := newUser(t, e, "alice"), newUser(t, e, "bob")
	vaultScope := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/dev"
	assign(t, e, "/subscriptions/"+e.Info.SubscriptionID, "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", alice.oid) // Owner
	assign(t, e, vaultScope, "00482a5a-887f-4fb3-b363-3b7fe8e74483", alice.oid)                              // Key Vault Administrator

	shots := os.Getenv("KEYWARD_SCREENSHOTS") // a directory, e.g. docs/ (make screenshots)
	if shots == "" {
		shots = t.TempDir()
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", leafSPKI(t, e)),
		chromedp.WindowSize(1100, 760),
	}
	if os.Getenv("KEYWARD_TEST_LOG") != "" {
		opts = append(opts, chromedp.CombinedOutput(os.Stderr))
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 120*time.Second)
	defer cancelT()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }

	// Every document response: its URL, status and security headers.
	type doc struct {
		url     string
		status  int64
		headers network.Headers
	}
	var mu sync.Mutex
	var docs []doc
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventResponseReceived); ok && ev.Type == network.ResourceTypeDocument {
			mu.Lock()
			docs = append(docs, doc{ev.Response.URL, ev.Response.Status, ev.Response.Headers})
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	// Confirm dialogs (data-confirm) are accepted.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	lastStatus := func() int64 {
		mu.Lock()
		defer mu.Unlock()
		return docs[len(docs)-1].status
	}
	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		var err error
		for i, a := range actions {
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err = chromedp.Do(sctx, a)
			cancel()
			if err != nil {
				t.Logf("%s: action %d failed", step, i)
				break
			}
		}
		if err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			body, _ := chromedp.Run(ctx, chromedp.Text(css("body")))
			t.Fatalf("%s: %v (at %s)\n%s", step, err, loc, body)
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(css(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	value := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Value(css(sel)))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return s
	}
	eval := func(expr string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	// clearFlash removes the page's message, so that waiting for .flash
	// waits for the next page's.
	clearFlash := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[any](`document.querySelectorAll(".flash").forEach(function(e){e.remove()}); true`)(ctx, tg)
		return err
	})
	signIn := func(u *user) {
		t.Helper()
		run("sign in as "+u.name,
			chromedp.Navigate(ui),
			chromedp.WaitVisible(css("#signin")),
			chromedp.Click(css("#signin")),
			chromedp.WaitVisible(css("#username")),
			chromedp.SendKeys(css("#username"), u.name),
			chromedp.SendKeys(css("#password"), u.password),
			chromedp.SendKeys(css("#totp"), identity.TOTPCode(u.totp, identity.TOTPStep(time.Now()))),
			chromedp.Click(css("#signin")),
			chromedp.WaitVisible(css("#who")),
		)
		if who := text("#who"); who != u.name {
			t.Fatalf("signed in as %q, want %q", who, u.name)
		}
	}

	// Alice: sign in, a secret, a key and its rotation policy, a role for Bob.
	signIn(alice)
	run("create a secret",
		chromedp.Navigate(ui+"vaults/dev/secrets"),
		chromedp.WaitVisible(css("#new-secret summary")),
		chromedp.Click(css("#new-secret summary")),
		chromedp.SendKeys(css("#secret-name"), "db-password"),
		chromedp.SendKeys(css("#secret-value-input"), "s3cr3t-value-from-the-console"),
		chromedp.Click(css("#secret-create")),
		chromedp.WaitVisible(css("#reveal")),
	)
	if strings.Contains(text("main"), "s3cr3t-value") {
		t.Fatal("the secret page shows the value before it was asked for")
	}
	run("reveal", chromedp.Click(css("#reveal")), chromedp.WaitVisible(css("#secret-value")))
	if v := text("#secret-value"); v != "s3cr3t-value-from-the-console" {
		t.Fatalf("revealed %q", v)
	}
	shot("console-secret.png")

	run("create a key and edit its rotation policy",
		chromedp.Navigate(ui+"vaults/dev/keys"),
		chromedp.WaitVisible(css("#new-key summary")),
		chromedp.Click(css("#new-key summary")),
		chromedp.SendKeys(css("#key-name"), "signing-key"),
		chromedp.Click(css("#key-create")),
		chromedp.WaitVisible(css("#policy-form")),
		chromedp.SetValue(css("#rotate-after"), "P90D"),
		chromedp.SetValue(css("#notify-before"), "P30D"),
		chromedp.SetValue(css("#expiry"), "P1Y"),
		clearFlash,
		chromedp.Click(css("#policy-save")),
		chromedp.WaitVisible(css(".flash")),
	)
	if after, exp := value("#rotate-after"), value("#expiry"); after != "P90D" || exp != "P1Y" {
		t.Fatalf("rotation policy read back as rotate after %q, expiry %q", after, exp)
	}
	run("rotate now", clearFlash, chromedp.Click(css("#rotate")), chromedp.WaitVisible(css(".flash")))
	if n := eval(`document.querySelectorAll("#key-versions tbody tr").length`); n != float64(2) {
		t.Fatalf("after rotate now: %v versions", n)
	}
	shot("console-key.png")

	run("assign a role to bob",
		chromedp.Navigate(ui+"vaults/dev/access"),
		chromedp.WaitVisible(css("#assign-form")),
		chromedp.SendKeys(css("#principal"), bob.oid),
		chromedp.SetValue(css("#role"), "4633458b-17de-408a-b874-0445c86b69e6"), // Key Vault Secrets User
		clearFlash,
		chromedp.Click(css("#assign")),
		chromedp.WaitVisible(css(".flash")),
	)
	if a := text("#assignments"); !strings.Contains(a, bob.oid) || !strings.Contains(a, "Key Vault Secrets User") {
		t.Fatalf("assignments after assigning: %s", a)
	}

	// The audit page: Alice (Owner) reads the vault's events through the
	// audit report API, filters them, and sees the key-usage report.
	run("audit page",
		chromedp.Navigate(ui+"vaults/dev/audit"),
		chromedp.WaitVisible(css("#audit-events")),
	)
	if ev, usage := text("#audit-events"), text("#audit-usage"); !strings.Contains(ev, "SecretSet") || !strings.Contains(ev, "KeyRotate") ||
		!strings.Contains(usage, "/secrets/db-password") || !strings.Contains(usage, "SecretGet") {
		t.Fatalf("audit page:\n%s\n%s", ev, usage)
	}
	if strings.Contains(text("main"), "s3cr3t-value") {
		t.Fatal("the audit page shows the secret value")
	}
	run("filter the audit events",
		chromedp.SendKeys(css("#audit-operation"), "SecretSet"),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error { // so that the wait below waits for the next page
			_, err := chromedp.Evaluate[any](`document.getElementById("audit-events").remove(); true`)(ctx, tg)
			return err
		}),
		chromedp.Click(css("#audit-apply")),
		chromedp.WaitVisible(css("#audit-events")),
	)
	if ops := eval(`Array.from(document.querySelectorAll("#audit-events tbody tr td:nth-child(2)")).map(function(td){return td.textContent}).join(",")`); ops != "SecretSet" {
		t.Fatalf("events filtered by SecretSet: %v", ops)
	}
	shot("console-audit.png")

	// The session cookie: __Host-, HttpOnly, Secure, SameSite=Lax; nothing
	// readable by script, nothing in localStorage.
	got, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{ui}})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range got.Cookies {
		if c.Name == "__Host-kw_session" {
			session = c
		}
		if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteLax {
			t.Errorf("cookie %s: HttpOnly %v Secure %v SameSite %q", c.Name, c.HTTPOnly, c.Secure, c.SameSite)
		}
	}
	if session == nil || session.Path != "/" {
		t.Fatalf("no __Host-kw_session cookie: %+v", got.Cookies)
	}
	if c, n := eval(`document.cookie`), eval(`localStorage.length + sessionStorage.length`); c != "" || n != float64(0) {
		t.Fatalf("script sees cookies %q, %v storage items", c, n)
	}

	run("sign out", chromedp.Click(css("#signout")), chromedp.WaitVisible(css("#signed-out")))
	// The old session is gone on the server, not just in the browser.
	req, _ := http.NewRequest(http.MethodGet, ui, nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	noRedirect := *e.HTTP
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/signin" {
		t.Fatalf("the signed-out session still works: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Bob: Key Vault Secrets User on the vault. He reads and reveals the
	// secret; creating one, and the keys, are refused with a clear message.
	signIn(bob)
	run("bob's secrets", chromedp.Navigate(ui+"vaults/dev/secrets"), chromedp.WaitVisible(css("#secret-list")))
	if !strings.Contains(text("#secret-list"), "db-password") {
		t.Fatal("bob does not see the secret his role lets him read")
	}
	run("bob reveals",
		chromedp.Navigate(ui+"vaults/dev/secrets/db-password"),
		chromedp.WaitVisible(css("#reveal")),
		chromedp.Click(css("#reveal")),
		chromedp.WaitVisible(css("#secret-value")))
	run("bob creates a secret",
		chromedp.Navigate(ui+"vaults/dev/secrets"),
		chromedp.WaitVisible(css("#new-secret summary")),
		chromedp.Click(css("#new-secret summary")),
		chromedp.SendKeys(css("#secret-name"), "bobs-secret"),
		chromedp.SendKeys(css("#secret-value-input"), "nope"),
		chromedp.Click(css("#secret-create")),
		chromedp.WaitVisible(css("#error")),
	)
	if msg := text("#error"); !strings.Contains(msg, "You are not allowed to do this") || !strings.Contains(msg, "403") || lastStatus() != http.StatusForbidden {
		t.Fatalf("forbidden create: status %d, %q", lastStatus(), msg)
	}
	shot("console-forbidden.png")
	run("bob's keys", chromedp.Navigate(ui+"vaults/dev/keys"), chromedp.WaitVisible(css("#error")))
	if msg := text("#error"); !strings.Contains(msg, "You are not allowed to do this") {
		t.Fatalf("forbidden keys: %q", msg)
	}

	// Bob's role does not let him read the vault's audit log.
	run("bob's audit", chromedp.Navigate(ui+"vaults/dev/audit"), chromedp.WaitVisible(css("#error")))
	if strings.Contains(text("main"), "SecretSet") {
		t.Fatal("bob sees the audit log")
	}

	// Every console page carried the strict policy; no URL held a token,
	// a code or the secret.
	mu.Lock()
	defer mu.Unlock()
	for _, d := range docs {
		u, _ := url.Parse(d.url)
		for _, bad := range []string{"code=", "access_token", "refresh_token", "s3cr3t"} {
			if strings.Contains(d.url, bad) {
				t.Errorf("a URL carries %q: %s", bad, d.url)
			}
		}
		if !strings.HasPrefix(u.Path, "/ui/") {
			continue
		}
		csp, _ := d.headers["content-security-policy"].(string)
		if csp == "" {
			csp, _ = d.headers["Content-Security-Policy"].(string)
		}
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
			strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", d.url, csp)
		}
	}
}
