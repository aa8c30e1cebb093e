package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/throttle"
)

// TestAttackTokenLockout (issue 12.3): 400 wrong client secrets from one
// source lock the client out of that source (429, Retry-After, Entra's
// error shape) even with the right secret; the right secret from another
// source still works; once the lockout has passed (the injected clock
// moves, nothing sleeps) the attacking source gets tokens again.
func TestAttackTokenLockout(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	attacker := clientFrom(t, e, "127.0.0.2")
	lim := identity.DefaultTokenLimits

	counts := map[int]int{}
	var last tokenReply
	for range 400 {
		last = postToken(t, e, attacker, e.Info.ClientID, "not-the-secret")
		counts[last.status]++
		if last.status == http.StatusUnauthorized && last.Error != "invalid_client" {
			t.Fatalf("wrong secret: %+v", last)
		}
	}
	if counts[http.StatusUnauthorized] != lim.LockoutFailures || counts[http.StatusTooManyRequests] != 400-lim.LockoutFailures {
		t.Fatalf("400 wrong secrets answered %v, want %d × 401 then 429", counts, lim.LockoutFailures)
	}
	wantThrottled(t, last, 50053, lim.LockoutDuration)

	// The right secret from the attacking source is refused too ...
	if r := postToken(t, e, attacker, e.Info.ClientID, e.Info.ClientSecret); r.status != http.StatusTooManyRequests {
		t.Fatalf("right secret from the locked source: %d %+v", r.status, r)
	}
	// ... but not from the client's own source, through azidentity.
	if _, err := e.Credential().GetToken(context.Background(), tokenOpts(e)); err != nil {
		t.Fatalf("legitimate source locked out: %v", err)
	}
	// Another client is not locked for the attacking source.
	other := newSP(t, e, "other-app")
	if r := postToken(t, e, attacker, other.AppID, other.Secret); r.status != http.StatusOK {
		t.Fatalf("another client from the attacking source: %+v", r)
	}

	clk.Advance(lim.LockoutDuration - time.Second)
	if r := postToken(t, e, attacker, e.Info.ClientID, e.Info.ClientSecret); r.status != http.StatusTooManyRequests {
		t.Fatalf("a second before the lockout ends: %+v", r)
	}
	clk.Advance(time.Second)
	if r := postToken(t, e, attacker, e.Info.ClientID, e.Info.ClientSecret); r.status != http.StatusOK || r.AccessToken == "" {
		t.Fatalf("after the lockout: %+v", r)
	}
	// Unknown clients count the same (no oracle for which exist).
	for i := range lim.LockoutFailures + 1 {
		r := postToken(t, e, attacker, "00000000-0000-0000-0000-00000000dead", "x")
		if want := http.StatusBadRequest; i == lim.LockoutFailures {
			wantThrottled(t, r, 50053, lim.LockoutDuration)
		} else if r.status != want || r.Error != "unauthorized_client" {
			t.Fatalf("unknown client, attempt %d: %+v", i, r)
		}
	}
}

// TestAttackTokenRateLimits: the per-source bucket refuses a flood from one
// address without affecting others, and the per-client bucket counts only
// authenticated requests, so failures from an attacker do not spend a
// legitimate client's budget.
func TestAttackTokenRateLimits(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	e := kwtest.Start(t, kwtest.Options{Clock: clk, TokenLimits: &identity.TokenLimits{
		Source: throttle.Limit{Rate: 1, Burst: 20},
		Client: throttle.Limit{Rate: 0.5, Burst: 3},
	}})
	attacker := clientFrom(t, e, "127.0.0.3")
	for range 20 {
		if r := postToken(t, e, attacker, e.Info.ClientID, "wrong"); r.status != http.StatusUnauthorized {
			t.Fatalf("within the source burst: %+v", r)
		}
	}
	r := postToken(t, e, attacker, e.Info.ClientID, "wrong")
	wantThrottled(t, r, 50196, time.Second)

	// The attacker's failures took nothing from the client's budget: three
	// tokens from its own source, then the client's bucket is empty.
	legit := clientFrom(t, e, "127.0.0.1")
	for i := range 3 {
		if r := postToken(t, e, legit, e.Info.ClientID, e.Info.ClientSecret); r.status != http.StatusOK {
			t.Fatalf("token %d of the client's burst: %+v", i, r)
		}
	}
	r = postToken(t, e, legit, e.Info.ClientID, e.Info.ClientSecret)
	wantThrottled(t, r, 50196, 2*time.Second)
	clk.Advance(2 * time.Second)
	if r := postToken(t, e, legit, e.Info.ClientID, e.Info.ClientSecret); r.status != http.StatusOK {
		t.Fatalf("after Retry-After: %+v", r)
	}
	if r := postToken(t, e, attacker, e.Info.ClientID, "wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("source bucket refilled: %+v", r)
	}

	// The managed-identity endpoint shares the per-source bucket.
	msi := clientFrom(t, e, "127.0.0.4")
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", e.Info.AuthorityHost+"msi/token?api-version=2019-08-01&resource="+url.QueryEscape("https://vault.localhost:"+port(e)), nil)
		req.Header.Set("X-IDENTITY-HEADER", "not-a-binding-secret")
		resp, err := msi.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for i := range 20 {
		if st, _ := get(); st != http.StatusUnauthorized {
			t.Fatalf("managed-identity request %d within the burst: %d", i, st)
		}
	}
	if st, after := get(); st != http.StatusTooManyRequests || after != "1" {
		t.Fatalf("managed-identity flood: %d Retry-After %q, want 429 after 1", st, after)
	}
}

type tokenReply struct {
	status      int
	retryAfter  string
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
	AccessToken string `json:"access_token"`
}

func wantThrottled(t *testing.T, r tokenReply, aadsts int, after time.Duration) {
	t.Helper()
	secs, _ := strconv.Atoi(r.retryAfter)
	if r.status != http.StatusTooManyRequests || r.Error != "temporarily_unavailable" || len(r.Codes) != 1 || r.Codes[0] != aadsts ||
		!strings.HasPrefix(r.Description, "AADSTS"+strconv.Itoa(aadsts)+":") || secs < 1 || time.Duration(secs)*time.Second > after {
		t.Fatalf("want 429 temporarily_unavailable AADSTS%d with Retry-After ≤ %v, got %+v", aadsts, after, r)
	}
}

// clientFrom is an HTTP client whose connections come from the loopback
// address src (any 127/8 address is local on Linux): another source.
func clientFrom(t *testing.T, e *kwtest.Env, src string) *http.Client {
	t.Helper()
	base := e.HTTP.Transport.(*http.Transport)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	tr := &http.Transport{
		TLSClientConfig: base.TLSClientConfig.Clone(),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, e.Server.Addr())
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// postToken asks for a client-credentials token with a raw request.
func postToken(t *testing.T, e *kwtest.Env, c *http.Client, clientID, secret string) tokenReply {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {"https://vault.localhost:" + port(e) + "/.default"}}
	u := strings.TrimRight(e.Info.AuthorityHost, "/") + "/" + e.Info.TenantID + "/oauth2/v2.0/token"
	resp, err := c.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := tokenReply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("token endpoint answered %d %q", resp.StatusCode, raw)
	}
	return r
}
