package skr

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateLocalAuthority(dir, "https://attest.localhost")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateLocalAuthority(dir, "https://attest.localhost")
	if err != nil || again.kid != a.kid {
		t.Fatal("the authority key is not kept", err)
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier([]Authority{a.Authority()})
	tok, err := a.Mint(map[string]any{"x-ms-isolation-tee": map[string]any{"x-ms-attestation-type": "sevsnpvm"}}, &rk.PublicKey, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if got.RuntimeKid != "TpmEphemeralEncryptionKey" || !got.RuntimeKey.Equal(&rk.PublicKey) || got.Issuer != a.Issuer {
		t.Fatalf("%+v", got)
	}
	if x, _ := Lookup(got.Claims, "x-ms-isolation-tee.x-ms-attestation-type"); x != "sevsnpvm" {
		t.Fatal(x)
	}
	if _, err := v.Verify(tok, now.Add(2*time.Hour)); !errors.Is(err, ErrToken) {
		t.Fatal("expired token accepted")
	}
	if _, err := v.Verify(tok, now.Add(-time.Hour)); !errors.Is(err, ErrToken) {
		t.Fatal("token before nbf accepted")
	}
	forged, _ := NewLocalAuthority(a.Issuer, other).Mint(nil, &rk.PublicKey, now, time.Hour)
	if _, err := v.Verify(forged, now); !errors.Is(err, ErrToken) {
		t.Fatal("token signed by another key accepted")
	}
	foreign, _ := NewLocalAuthority("https://other", other).Mint(nil, &rk.PublicKey, now, time.Hour)
	if _, err := v.Verify(foreign, now); !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), "not a configured") {
		t.Fatal("token of an unknown issuer accepted", err)
	}
	noKey, _ := a.Mint(nil, nil, now, time.Hour)
	if _, err := v.Verify(noKey, now); !errors.Is(err, ErrToken) {
		t.Fatal("token without runtime key accepted")
	}
	parts := strings.Split(tok, ".")
	tampered := parts[0] + "." + parts[1] + "x." + parts[2]
	if _, err := v.Verify(tampered, now); !errors.Is(err, ErrToken) {
		t.Fatal("tampered token accepted")
	}
}

// FuzzVerify: Verify never panics on outside bytes and refuses with
// ErrToken anything it does not accept. A fuzzer cannot forge the
// authority's signature, so every input other than the seed is refused.
func FuzzVerify(f *testing.F) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	a := NewLocalAuthority("https://attest.localhost", key)
	now := time.Unix(1_800_000_000, 0)
	good, _ := a.Mint(map[string]any{"c": 1}, &key.PublicKey, now, time.Hour)
	v := NewVerifier([]Authority{a.Authority()})
	f.Add(good)
	f.Add("e30.e30.e30")
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := v.Verify(tok, now)
		if err != nil {
			if !errors.Is(err, ErrToken) {
				t.Fatalf("error %v does not wrap ErrToken", err)
			}
			return
		}
		if got.RuntimeKey == nil || got.Issuer != a.Issuer {
			t.Fatal("accepted token without runtime key or issuer")
		}
	})
}

// TestCheckNonce: a nonce in the request or the token must be in both and
// equal; where the token binds one (nonce claim, else
// x-ms-runtime.client-payload.nonce) decides which claim counts.
func TestCheckNonce(t *testing.T) {
	tok := func(c map[string]any) *Token { return &Token{Claims: c} }
	for _, tc := range []struct {
		name    string
		claims  map[string]any
		request string
		ok      bool
	}{
		{"neither", map[string]any{}, "", true},
		{"equal", map[string]any{"nonce": "zq-abc"}, "zq-abc", true},
		{"runtime payload", map[string]any{"x-ms-runtime": map[string]any{"client-payload": map[string]any{"nonce": "zq-r1"}}}, "zq-r1", true},
		{"claim wins over payload", map[string]any{"nonce": "zq-a", "x-ms-runtime": map[string]any{"client-payload": map[string]any{"nonce": "zq-b"}}}, "zq-b", false},
		{"different", map[string]any{"nonce": "zq-abc"}, "zq-abd", false},
		{"prefix", map[string]any{"nonce": "zq-abc"}, "zq-ab", false},
		{"request only", map[string]any{}, "zq-abc", false},
		{"token only", map[string]any{"nonce": "zq-abc"}, "", false},
		{"not a string", map[string]any{"nonce": 12.0}, "12", false},
		{"empty claim", map[string]any{"nonce": ""}, "", false},
	} {
		reason, ok := CheckNonce(tok(tc.claims), tc.request)
		if ok != tc.ok || (ok == (reason != "")) {
			t.Errorf("%s: ok %v reason %q, want ok %v", tc.name, ok, reason, tc.ok)
		}
		if !ok && (strings.Contains(reason, "zq-abc") || strings.Contains(reason, tc.request) && tc.request != "") {
			t.Errorf("%s: the reason %q names a nonce", tc.name, reason)
		}
	}
}
