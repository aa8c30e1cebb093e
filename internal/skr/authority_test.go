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
