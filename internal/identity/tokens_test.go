package identity

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/storage/mem"
)

const testAuthority = "https://localhost:8443/"
const testAudience = "https://vault.localhost:8443"

type testEnv struct {
	a   *Authority
	sp  *ServicePrincipal
	clk *clock.Fake
}

// newTestAuthority is an Authority over an unsealed in-memory barrier with
// one tenant and one service principal.
func newTestAuthority(t testing.TB) *testEnv {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := barrier.New(mem.New())
	shares, err := b.Initialize(ctx, barrier.SealConfig{Type: "dev", Shares: 1, Threshold: 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	dir := NewDirectory(b)
	ten, err := dir.CreateTenant(ctx, Tenant{DisplayName: "t"})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := dir.CreateServicePrincipal(ctx, ten.ID, "app", clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthority(dir, b, clk, testAuthority)
	if err := a.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return &testEnv{a: a, sp: sp, clk: clk}
}

func (e *testEnv) claims() *Claims {
	now := e.clk.Now()
	return &Claims{
		Issuer: e.a.Issuer(e.sp.TenantID), Subject: e.sp.ObjectID, Audience: testAudience,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expires: now.Add(time.Hour).Unix(),
		TenantID: e.sp.TenantID, ObjectID: e.sp.ObjectID, AZP: e.sp.AppID, AppID: e.sp.AppID, Version: "2.0",
	}
}

func TestValidateIssuedToken(t *testing.T) {
	e := newTestAuthority(t)
	tok, _, err := e.a.IssueAppToken(e.sp, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time from the cache
		c, reason, err := e.a.Validate(tok, []string{testAudience})
		if err != nil {
			t.Fatalf("valid token refused: %s", reason)
		}
		if c.ObjectID != e.sp.ObjectID || c.TenantID != e.sp.TenantID || c.Issuer != testAuthority+e.sp.TenantID+"/v2.0" {
			t.Fatalf("claims %+v", c)
		}
	}
	if _, reason, err := e.a.Validate(tok, []string{"https://management.localhost:8443/"}); err == nil || reason != "wrong audience" {
		t.Fatalf("wrong audience from the cache: %v %q", err, reason)
	}
}

func TestValidateRefusesBadClaims(t *testing.T) {
	e := newTestAuthority(t)
	other, err := e.a.dir.CreateTenant(context.Background(), Tenant{DisplayName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(c *Claims)
		reason string
	}{
		{"foreign issuer", func(c *Claims) { c.Issuer = "https://login.microsoftonline.com/" + c.TenantID + "/v2.0" }, "wrong issuer"},
		{"v1 issuer", func(c *Claims) { c.Issuer = "https://sts.windows.net/" + c.TenantID + "/" }, "wrong issuer"},
		{"issuer of another tenant", func(c *Claims) { c.Issuer = e.a.Issuer(other.ID) }, "wrong issuer"},
		{"issuer without v2.0", func(c *Claims) { c.Issuer = testAuthority + c.TenantID }, "wrong issuer"},
		{"issuer on another port", func(c *Claims) { c.Issuer = "https://localhost:9443/" + c.TenantID + "/v2.0" }, "wrong issuer"},
		{"tid does not match iss", func(c *Claims) { c.TenantID = other.ID }, "wrong issuer"},
		{"empty issuer", func(c *Claims) { c.Issuer = "" }, "wrong issuer"},
		{"no tid", func(c *Claims) { c.TenantID = "" }, "missing claims"},
		{"no oid", func(c *Claims) { c.ObjectID = "" }, "missing claims"},
		{"no nbf", func(c *Claims) { c.NotBefore = 0 }, "missing claims"},
		{"no exp", func(c *Claims) { c.Expires = 0 }, "missing claims"},
		{"wrong audience", func(c *Claims) { c.Audience = "https://vault.azure.net" }, "wrong audience"},
		{"audience with path", func(c *Claims) { c.Audience = testAudience + "/x" }, "wrong audience"},
		{"expired", func(c *Claims) { c.Expires = e.clk.Now().Add(-Skew - time.Second).Unix() }, "token expired"},
		{"not yet valid", func(c *Claims) { c.NotBefore = e.clk.Now().Add(Skew + time.Minute).Unix() }, "token not yet valid"},
		{"issued in the future", func(c *Claims) { c.IssuedAt = e.clk.Now().Add(Skew + time.Minute).Unix() }, "token not yet valid"},
		// Issue 12.5: a token living longer than the issuer's lifetime.
		{"exp 10 years out", func(c *Claims) { c.Expires = e.clk.Now().AddDate(10, 0, 0).Unix() }, "token lifetime too long"},
		{"exp beyond the lifetime from now", func(c *Claims) {
			c.IssuedAt, c.NotBefore = 0, e.clk.Now().Unix()
			c.Expires = e.clk.Now().Add(DefaultTokenLifetime + Skew + time.Minute).Unix()
		}, "token lifetime too long"},
		{"exp - iat beyond the lifetime", func(c *Claims) {
			c.IssuedAt, c.NotBefore = e.clk.Now().Add(-2*time.Hour).Unix(), e.clk.Now().Add(-2*time.Hour).Unix()
			c.Expires = e.clk.Now().Add(30 * time.Minute).Unix()
		}, "token lifetime too long"},
		{"exp - nbf beyond the lifetime", func(c *Claims) {
			c.IssuedAt, c.NotBefore = 0, e.clk.Now().Add(-2*time.Hour).Unix()
			c.Expires = e.clk.Now().Add(30 * time.Minute).Unix()
		}, "token lifetime too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.claims()
			tc.mutate(c)
			tok, err := e.a.sign(c)
			if err != nil {
				t.Fatal(err)
			}
			got, reason, err := e.a.Validate(tok, []string{testAudience, testAudience + "/"})
			if err != ErrInvalidToken || got != nil {
				t.Fatalf("accepted: %+v", got)
			}
			if reason != tc.reason {
				t.Fatalf("reason %q, want %q", reason, tc.reason)
			}
			if strings.Contains(reason, tok) {
				t.Fatal("reason holds the token")
			}
		})
	}
	// The unmutated claims pass: the cases above fail for their own reason.
	tok, err := e.a.sign(e.claims())
	if err != nil {
		t.Fatal(err)
	}
	if _, reason, err := e.a.Validate(tok, []string{testAudience}); err != nil {
		t.Fatalf("baseline refused: %s", reason)
	}
}

func TestValidateSkew(t *testing.T) {
	e := newTestAuthority(t)
	tok, _, err := e.a.IssueAppToken(e.sp, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(DefaultTokenLifetime + Skew - time.Second)
	if _, reason, err := e.a.Validate(tok, []string{testAudience}); err != nil {
		t.Fatalf("inside the skew: %s", reason)
	}
	e.clk.Advance(2 * time.Second)
	if _, reason, err := e.a.Validate(tok, []string{testAudience}); err == nil || reason != "token expired" {
		t.Fatalf("past exp+skew (cached): %v %q", err, reason)
	}
}

// A token is exactly the string that was issued: re-encodings that decode
// to the same bytes (non-zero padding bits in the last base64url character,
// line breaks, which Go's base64 decoder skips) are different strings and
// must not validate.
func TestValidateRefusesReencodedToken(t *testing.T) {
	e := newTestAuthority(t)
	tok, _, err := e.a.IssueAppToken(e.sp, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	sig := parts[2]
	// 256 signature bytes are 342 characters: the last carries 4 padding bits.
	last := strings.IndexByte(b64url, sig[len(sig)-1])
	padded := sig[:len(sig)-1] + string(b64url[last|1])
	if padded == sig {
		padded = sig[:len(sig)-1] + string(b64url[last|2])
	}
	if a, b := mustDecode(t, padded), mustDecode(t, sig); string(a) != string(b) {
		t.Fatal("test bug: the re-encoded signature decodes differently")
	}
	for name, bad := range map[string]string{
		"non-zero padding bits": parts[0] + "." + parts[1] + "." + padded,
		"newline in signature":  parts[0] + "." + parts[1] + "." + sig[:10] + "\n" + sig[10:],
		"CR in signature":       parts[0] + "." + parts[1] + "." + sig[:10] + "\r" + sig[10:],
		"padding":               tok + "==",
		"trailing space":        tok + " ",
	} {
		if _, _, err := e.a.Validate(bad, []string{testAudience}); err == nil {
			t.Errorf("%s: re-encoded token validated", name)
		}
	}
}

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidateAfterRotationAndSeal(t *testing.T) {
	e := newTestAuthority(t)
	tok, _, err := e.a.IssueAppToken(e.sp, testAudience)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.RotateSigningKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.a.JWKS()) != 2 {
		t.Fatalf("%d keys after rotation", len(e.a.JWKS()))
	}
	if _, reason, err := e.a.Validate(tok, []string{testAudience}); err != nil {
		t.Fatalf("old token after rotation: %s", reason)
	}
	e.a.Unload()
	if _, _, err := e.a.Validate(tok, []string{testAudience}); err == nil {
		t.Fatal("token validated with no keys loaded")
	}
}
