package keymgmt

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage/mem"
)

// fakeTarget is a KMS in memory: what a provider would find in its target.
type fakeTarget struct {
	versions map[int]bool // central version → enabled
	down     bool         // the target is unreachable
	syncs    int
}

type fakeProvider struct{ t *fakeTarget }

func (p fakeProvider) Supports(typ string, purpose []string, protection string) error {
	if protection != ProtectionSoftware {
		return &errs.Error{Kind: errs.BadParameter, Reason: ReasonUnsupported}
	}
	return nil
}

func (p fakeProvider) Sync(ctx context.Context, t Target) (SyncResult, error) {
	p.t.syncs++
	if p.t.down {
		return SyncResult{}, errors.New("target unreachable")
	}
	res := SyncResult{Versions: map[int]string{}}
	for _, v := range t.Key.VersionNumbers() {
		enabled, ok := p.t.versions[v]
		if !ok && t.Dist.Versions[v] != "" {
			res.Findings = append(res.Findings, fmt.Sprintf("version %d missing", v))
		}
		want := v >= t.Key.MinEnabledVersion
		if ok && enabled != want && want {
			res.Findings = append(res.Findings, fmt.Sprintf("version %d disabled", v))
		}
		p.t.versions[v] = want
		res.Versions[v] = fmt.Sprintf("id-%d", v)
	}
	return res, nil
}

func (p fakeProvider) Remove(ctx context.Context, t Target) error {
	if p.t.down {
		return errors.New("target unreachable")
	}
	clear(p.t.versions)
	return nil
}

func newTestService(t *testing.T) (*Service, *clock.Fake, *fakeTarget) {
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
	ft := &fakeTarget{versions: map[int]bool{}}
	s := New(b.System(), clk, nil, map[string]Factory{"fake": func(k *KMS) (Provider, error) {
		if k.Credentials["token"] == "" {
			return nil, &errs.Error{Kind: errs.BadParameter, Reason: ReasonInvalidCredentials}
		}
		return fakeProvider{ft}, nil
	}})
	return s, clk, ft
}

const tenant = "7a1b2c3d-0000-4000-8000-000000000001"

func reason(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func TestKeyTypesAndMaterial(t *testing.T) {
	s, _, _ := newTestService(t)
	ctx := context.Background()
	for i, typ := range Types {
		k, err := s.CreateKey(ctx, tenant, fmt.Sprintf("k%d", i), typ)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		priv, err := k.Private(1)
		if err != nil {
			t.Fatal(err)
		}
		switch p := priv.(type) {
		case []byte:
			if typ != TypeAES256 || len(p) != 32 {
				t.Errorf("%s: %d raw bytes", typ, len(p))
			}
		case *rsa.PrivateKey:
			if want := map[string]int{TypeRSA2048: 2048, TypeRSA3072: 3072, TypeRSA4096: 4096}[typ]; p.N.BitLen() != want {
				t.Errorf("%s: %d bits", typ, p.N.BitLen())
			}
		case *ecdsa.PrivateKey:
			if want := map[string]string{TypeECDSAP256: "P-256", TypeECDSAP384: "P-384", TypeECDSAP521: "P-521"}[typ]; p.Curve.Params().Name != want {
				t.Errorf("%s: curve %s", typ, p.Curve.Params().Name)
			}
		default:
			t.Errorf("%s: %T", typ, priv)
		}
		if (k.PublicPEM(1) == "") != (typ == TypeAES256) {
			t.Errorf("%s: public PEM %q", typ, k.PublicPEM(1))
		}
	}
	if _, err := s.CreateKey(ctx, tenant, "x", "rsa-1024"); reason(err) != ReasonInvalidType {
		t.Errorf("rsa-1024: %v", err)
	}
	if _, err := s.CreateKey(ctx, tenant, "bad/name", TypeRSA2048); reason(err) != ReasonInvalidName {
		t.Errorf("bad name: %v", err)
	}
	if names, _ := s.ListKeys(ctx, tenant); len(names) != len(Types) {
		t.Errorf("refused keys were stored: %v", names)
	}
	// Another tenant sees nothing.
	if names, _ := s.ListKeys(ctx, "7a1b2c3d-0000-4000-8000-000000000002"); len(names) != 0 {
		t.Errorf("other tenant sees %v", names)
	}
}

func TestLifecycleWithDistribution(t *testing.T) {
	s, clk, ft := newTestService(t)
	ctx := context.Background()
	if _, err := s.CreateKey(ctx, tenant, "k", TypeAES256); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKMS(ctx, tenant, KMS{Name: "m", Provider: "fake", KeyCollection: "c"}); reason(err) != ReasonInvalidCredentials {
		t.Fatalf("kms without credentials: %v", err)
	}
	if _, err := s.PutKMS(ctx, tenant, KMS{Name: "m", Provider: "fake", KeyCollection: "c", Credentials: map[string]string{"token": "t"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Distribute(ctx, tenant, "m", "k", []string{"encrypt,decrypt"}, ProtectionHSM); reason(err) != ReasonUnsupported {
		t.Fatalf("hsm into a software-only provider: %v", err)
	}
	if _, err := s.Distribute(ctx, tenant, "m", "k", []string{"encrypt,fly"}, ProtectionSoftware); reason(err) != ReasonInvalidPurpose {
		t.Fatalf("bad purpose: %v", err)
	}
	// A target that is down: the first delivery fails and nothing is recorded.
	ft.down = true
	if _, err := s.Distribute(ctx, tenant, "m", "k", []string{"encrypt", "decrypt"}, ProtectionSoftware); !IsProviderError(err) {
		t.Fatalf("distribute to a down target: %v", err)
	}
	if _, err := s.GetDistribution(ctx, tenant, "m", "k"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("a failed distribution was recorded: %v", err)
	}
	ft.down = false
	d, err := s.Distribute(ctx, tenant, "m", "k", []string{"encrypt", "decrypt"}, ProtectionSoftware)
	if err != nil || d.State != StateDistributed || d.Versions[1] != "id-1" {
		t.Fatalf("distribute: %+v %v", d, err)
	}
	// The key cannot go while distributed, the KMS neither.
	yes := true
	if _, err := s.UpdateKey(ctx, tenant, "k", KeyUpdate{DeletionAllowed: &yes}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKey(ctx, tenant, "k"); reason(err) != ReasonKeyDistributed {
		t.Fatalf("delete a distributed key: %v", err)
	}
	if err := s.DeleteKMS(ctx, tenant, "m"); reason(err) != ReasonKMSInUse {
		t.Fatalf("delete a KMS in use: %v", err)
	}

	// A rotation while the target is down succeeds centrally; the
	// distribution records the error and backs off.
	ft.down = true
	k, err := s.RotateKey(ctx, tenant, "k")
	if err != nil || k.LatestVersion != 2 {
		t.Fatalf("rotate with the target down: %v", err)
	}
	d, _ = s.GetDistribution(ctx, tenant, "m", "k")
	if d.State != StateError || d.LastError == "" || !d.NextAttempt.Equal(clk.Now().Add(30*time.Second)) {
		t.Fatalf("after a failed sync: %+v", d)
	}
	// Reconcile before the retry time skips it; after, it repairs.
	ft.down = false
	rep, err := s.Reconcile(ctx)
	if err != nil || rep.Skipped != 1 || rep.Checked != 0 {
		t.Fatalf("reconcile during backoff: %+v %v", rep, err)
	}
	clk.Advance(31 * time.Second)
	rep, err = s.Reconcile(ctx)
	if err != nil || rep.Checked != 1 || len(rep.Failed) != 0 {
		t.Fatalf("reconcile after backoff: %+v %v", rep, err)
	}
	d, _ = s.GetDistribution(ctx, tenant, "m", "k")
	if d.State != StateDistributed || d.Versions[2] != "id-2" || !ft.versions[2] {
		t.Fatalf("after reconcile: %+v, target %v", d, ft.versions)
	}
	// Drift out of band: reported as repaired.
	delete(ft.versions, 1)
	if rep, _ = s.Reconcile(ctx); len(rep.Repaired) != 1 {
		t.Fatalf("drift not reported: %+v", rep)
	}
	if d, _ = s.GetDistribution(ctx, tenant, "m", "k"); d.State != StateRepaired {
		t.Fatalf("after repair: %+v", d)
	}
	// min_enabled_version: out of range refused, 2 disables version 1 there.
	seven := 7
	if _, err := s.UpdateKey(ctx, tenant, "k", KeyUpdate{MinEnabledVersion: &seven}); reason(err) != ReasonInvalidMinVersion {
		t.Fatalf("min 7: %v", err)
	}
	two := 2
	if _, err := s.UpdateKey(ctx, tenant, "k", KeyUpdate{MinEnabledVersion: &two}); err != nil {
		t.Fatal(err)
	}
	if ft.versions[1] || !ft.versions[2] {
		t.Fatalf("target after min_enabled_version=2: %v", ft.versions)
	}
	// Remove, then delete.
	if err := s.RemoveDistribution(ctx, tenant, "m", "k"); err != nil {
		t.Fatal(err)
	}
	if len(ft.versions) != 0 {
		t.Fatalf("target after remove: %v", ft.versions)
	}
	if err := s.DeleteKey(ctx, tenant, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKMS(ctx, tenant, "m"); err != nil {
		t.Fatal(err)
	}
}

func TestBackoff(t *testing.T) {
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute}
	for i, w := range want {
		if got := Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if Backoff(50) != time.Hour {
		t.Errorf("Backoff(50) = %v", Backoff(50))
	}
}

func TestParsePurpose(t *testing.T) {
	got, err := ParsePurpose([]string{"Encrypt, decrypt", "encrypt"})
	if err != nil || fmt.Sprint(got) != "[encrypt decrypt]" {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range [][]string{nil, {""}, {" , "}, {"encrypt,fly"}} {
		if _, err := ParsePurpose(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestLeaseAcrossNodes: two nodes (two Services on one storage) never
// work on the same distribution at once. While node A holds a
// distribution's lease, node B's distribute, reconcile and remove are
// refused with ReasonBusy and never call the target; when A releases, B
// proceeds; a lease its holder never released (a node that died) expires
// after LeaseTTL and B takes over.
func TestLeaseAcrossNodes(t *testing.T) {
	a, clk, ft := newTestService(t)
	b := New(a.view, clk, nil, a.providers)
	ctx := context.Background()
	if _, err := a.CreateKey(ctx, tenant, "k", TypeAES256); err != nil {
		t.Fatal(err)
	}
	if _, err := a.PutKMS(ctx, tenant, KMS{Name: "m", Provider: "fake", KeyCollection: "c", Credentials: map[string]string{"token": "t"}}); err != nil {
		t.Fatal(err)
	}
	unlock, err := a.lock(ctx, tenant, "m", "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Distribute(ctx, tenant, "m", "k", []string{"encrypt"}, ProtectionSoftware); reason(err) != ReasonBusy || errs.KindOf(err) != errs.Conflict {
		t.Fatalf("distribute on node B while node A holds the lease: %v", err)
	}
	if ft.syncs != 0 {
		t.Fatalf("node B called the target %d times while node A held the lease", ft.syncs)
	}
	unlock()
	if _, err := b.Distribute(ctx, tenant, "m", "k", []string{"encrypt"}, ProtectionSoftware); err != nil {
		t.Fatal("distribute on node B after node A released:", err)
	}
	syncs := ft.syncs

	clk.Advance(time.Hour) // the distribution is due for reconciliation
	// Node A dies holding the lease.
	if _, err := a.lock(ctx, tenant, "m", "k"); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Reconcile(ctx)
	if err != nil || len(rep.Failed) != 1 || ft.syncs != syncs {
		t.Fatalf("reconcile on node B under node A's lease: %+v %v (target called %d times)", rep, err, ft.syncs-syncs)
	}
	if err := b.RemoveDistribution(ctx, tenant, "m", "k"); reason(err) != ReasonBusy {
		t.Fatalf("remove on node B under node A's lease: %v", err)
	}
	clk.Advance(b.LeaseTTL)
	if err := b.RemoveDistribution(ctx, tenant, "m", "k"); err != nil {
		t.Fatal("remove on node B after node A's lease expired:", err)
	}
	if _, err := b.GetDistribution(ctx, tenant, "m", "k"); errs.KindOf(err) != errs.NotFound {
		t.Fatalf("distribution after remove: %v", err)
	}
}
