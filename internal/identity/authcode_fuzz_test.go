package identity

import (
	"context"
	"net/url"
	"strings"
	"testing"
)

// FuzzAuthorizeRequest: any query string given to the authorize endpoint
// is either shown as an error page (never redirected), sent back to a
// redirect URI that is registered for the client (or a loopback URI of a
// CLI client) as an error, or accepted — and it is accepted only with
// response_type=code, a well-formed S256 challenge, a known public client
// and an audience of the token service.
//
//	go test -run '^$' -fuzz FuzzAuthorizeRequest ./internal/identity
func FuzzAuthorizeRequest(f *testing.F) {
	e := newIDEnv(f)
	const redirect = "https://console.test:8443/ui/auth/callback"
	e.a.RegisterRedirectURIs(KeywardConsoleClientID, redirect)
	resources := []string{"https://vault.test", "https://management.test/"}
	good := url.Values{"client_id": {KeywardConsoleClientID}, "response_type": {"code"}, "redirect_uri": {redirect},
		"scope": {"https://management.test//.default offline_access"}, "state": {"s"},
		"code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}, "response_mode": {"form_post"}}
	f.Add(good.Encode())
	cli := url.Values{}
	for k, v := range good {
		cli[k] = v
	}
	cli.Set("client_id", KeywardCLIClientID)
	cli.Set("redirect_uri", "http://localhost:5555/cb")
	f.Add(cli.Encode())
	f.Add(strings.Replace(good.Encode(), "S256", "plain", 1))
	f.Add(strings.Replace(good.Encode(), "console.test", "evil.test", 1))
	f.Add(strings.Replace(good.Encode(), "response_type=code", "response_type=token", 1))
	f.Add("client_id=%zz&redirect_uri=https://x")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // what r.URL.Query() does with bad escapes
		ar, fatal, code, desc := e.a.parseAuthorize(context.Background(), e.tenant, q, resources)
		if fatal != "" {
			if ar != nil || code != "" {
				t.Fatalf("fatal %q with a redirect (%v, %q)", fatal, ar, code)
			}
			return
		}
		if ar == nil {
			t.Fatal("no request and no fatal error")
		}
		id := strings.ToLower(ar.ClientID)
		cliClient := id == strings.ToLower(AzureCLIClientID) || id == strings.ToLower(KeywardCLIClientID)
		if _, err := e.dir.ServicePrincipal(context.Background(), e.tenant, ar.ClientID); err != nil && !cliClient && id != KeywardConsoleClientID {
			t.Fatalf("unknown client %q not refused", ar.ClientID)
		}
		if ar.RedirectURI != redirect || id != KeywardConsoleClientID {
			u, err := url.Parse(ar.RedirectURI)
			if !cliClient || err != nil || u.Scheme != "http" || (u.Hostname() != "localhost" && u.Hostname() != "127.0.0.1" && u.Hostname() != "::1") {
				t.Fatalf("redirect %q of client %q followed", ar.RedirectURI, ar.ClientID)
			}
		}
		if code != "" {
			if desc == "" {
				t.Fatalf("error %q without a description", code)
			}
			return
		}
		if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || !pkceValid(ar.Challenge) {
			t.Fatalf("accepted without code + S256 PKCE: %q", raw)
		}
		if ar.Mode != "query" && ar.Mode != "form_post" {
			t.Fatalf("accepted response_mode %q", ar.Mode)
		}
		if ar.resource != "https://vault.test" && ar.resource != "https://management.test/" {
			t.Fatalf("accepted resource %q", ar.resource)
		}
		for _, c := range ar.Challenge {
			if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~", c) {
				t.Fatalf("challenge %q accepted", ar.Challenge)
			}
		}
	})
}
