package vault

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/mem"
)

func newService(t *testing.T) (*Service, *clock.Fake) {
	s, clk, _ := newServiceMem(t)
	return s, clk
}

func newServiceMem(t *testing.T) (*Service, *clock.Fake, *mem.Backend) {
	t.Helper()
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	backend := mem.New()
	b := barrier.New(backend)
	shares, err := b.Initialize(ctx, barrier.SealConfig{Type: "dev", Shares: 1, Threshold: 1}, clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(ctx, shares[0]); err != nil {
		t.Fatal(err)
	}
	return New(b, clk, Deps{}), clk, backend
}

func TestPremiumVaultWithoutHSMSaysSo(t *testing.T) {
	s, _ := newService(t)
	ctx := context.Background()
	v, err := s.CreateVault(ctx, Vault{Name: "prem", TenantID: "11111111-1111-1111-1111-111111111111", SKU: "premium"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateKey(ctx, v, CreateKeyParams{Name: "k", Kty: "RSA-HSM"})
	if KindOf(err) != BadParameter || !strings.Contains(err.Error(), "none configured") {
		t.Fatalf("RSA-HSM on a premium vault without an HSM: %v", err)
	}
	std, err := s.CreateVault(ctx, Vault{Name: "std", TenantID: "11111111-1111-1111-1111-111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.CreateKey(ctx, std, CreateKeyParams{Name: "k", Kty: "EC-HSM"})
	if KindOf(err) != BadParameter || !strings.Contains(err.Error(), "premium") {
		t.Fatalf("EC-HSM on a standard vault: %v", err)
	}
	// Nothing was stored by the refused requests.
	if _, err := s.GetKey(ctx, v, "k", ""); KindOf(err) != NotFound {
		t.Fatalf("refused create stored a key: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	ref := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"P90D":    ref.AddDate(0, 0, 90),
		"P1Y":     ref.AddDate(1, 0, 0),
		"P18M":    ref.AddDate(0, 18, 0),
		"P2W":     ref.AddDate(0, 0, 14),
		"PT12H":   ref.Add(12 * time.Hour),
		"P1DT30M": ref.AddDate(0, 0, 1).Add(30 * time.Minute),
	} {
		d, err := ParseDuration(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := d.AddTo(ref); !got.Equal(want) {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
		if back := d.SubFrom(d.AddTo(ref)); in != "P18M" && !back.Equal(ref) {
			t.Errorf("%s: sub(add) = %v", in, back)
		}
	}
	for _, bad := range []string{"", "P", "PT", "90D", "P-1D", "P1.5D", "p90d", "P90DT", "P99999999999D"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRotationPolicyValidation(t *testing.T) {
	rot := func(after, before string) LifetimeAction {
		return LifetimeAction{Type: "Rotate", TimeAfterCreate: after, TimeBeforeExpiry: before}
	}
	ok := []RotationPolicy{
		{LifetimeActions: []LifetimeAction{rot("P30D", "")}},
		{LifetimeActions: []LifetimeAction{rot("P30D", ""), {Type: "Notify", TimeBeforeExpiry: "P30D"}}, ExpiryTime: "P90D"},
		{LifetimeActions: []LifetimeAction{rot("", "P30D")}, ExpiryTime: "P1Y"},
		{ExpiryTime: "P28D"},
	}
	for i, p := range ok {
		if err := p.validate(); err != nil {
			t.Errorf("ok[%d]: %v", i, err)
		}
	}
	bad := []RotationPolicy{
		{LifetimeActions: []LifetimeAction{rot("P84D", "")}, ExpiryTime: "P90D"},        // within 7 days of expiry
		{LifetimeActions: []LifetimeAction{rot("", "P30D")}},                            // before-expiry without expiry
		{LifetimeActions: []LifetimeAction{rot("P30D", "P30D")}, ExpiryTime: "P90D"},    // both triggers
		{LifetimeActions: []LifetimeAction{rot("", "")}},                                // none
		{LifetimeActions: []LifetimeAction{rot("P6D", "")}},                             // under 7 days
		{LifetimeActions: []LifetimeAction{{Type: "Notify", TimeAfterCreate: "P30D"}}},  // notify after create
		{LifetimeActions: []LifetimeAction{rot("P30D", ""), rot("P40D", "")}},           // two rotates
		{LifetimeActions: []LifetimeAction{{Type: "Explode", TimeAfterCreate: "P30D"}}}, // unknown action
		{ExpiryTime: "P27D"}, // expiry too short
	}
	for i, p := range bad {
		if err := p.validate(); KindOf(err) != BadParameter {
			t.Errorf("bad[%d] accepted: %v", i, err)
		}
	}
}

func TestBlobMovedToAnotherNameDoesNotOpen(t *testing.T) {
	s, _, backend := newServiceMem(t)
	ctx := context.Background()
	v, err := s.CreateVault(ctx, Vault{Name: "moves", TenantID: "11111111-1111-1111-1111-111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.SetSecret(ctx, v, SetSecretParams{Name: "a", Value: NewSecretValue([]byte("value-a"))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SetSecret(ctx, v, SetSecretParams{Name: "b", Value: NewSecretValue([]byte("value-b"))})
	if err != nil {
		t.Fatal(err)
	}
	// Copy a's sealed version record over b's, underneath the barrier.
	o, view := s.objs(v, Secrets), s.in(v)
	err = backend.Update(ctx, func(tx storage.Tx) error {
		blob, err := tx.Get(view.StorageKey(o.versionKey("a", a.Version)))
		if err != nil {
			return err
		}
		return tx.Put(view.StorageKey(o.versionKey("b", b.Version)), blob)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSecret(ctx, v, "b", b.Version); !errors.Is(err, barrier.ErrCorrupt) {
		t.Fatalf("a blob moved under another name opened: %v", err)
	}
	if got, err := s.GetSecret(ctx, v, "a", a.Version); err != nil || string(got.Value.Reveal()) != "value-a" {
		t.Fatalf("the original no longer opens: %v", err)
	}
}
