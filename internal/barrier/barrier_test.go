package barrier

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/mem"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func initShamir(t *testing.T, n, k int) (*Barrier, *mem.Backend, [][]byte) {
	t.Helper()
	backend := mem.New()
	b := New(backend)
	shares, err := b.Initialize(context.Background(), SealConfig{Type: "shamir", Shares: n, Threshold: k}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != n {
		t.Fatalf("%d shares", len(shares))
	}
	return b, backend, shares
}

func TestUnsealWithThresholdShares(t *testing.T) {
	ctx := context.Background()
	b, backend, shares := initShamir(t, 5, 3)
	if !b.Sealed() {
		t.Fatal("initialized barrier is unsealed")
	}
	if err := b.View(ctx, func(Tx) error { return nil }); !errors.Is(err, ErrSealed) {
		t.Fatalf("view while sealed: %v", err)
	}
	for i, s := range shares[2:4] {
		st, err := b.Unseal(ctx, s)
		if err != nil || !st.Sealed || st.Progress != i+1 {
			t.Fatalf("share %d: %+v %v", i, st, err)
		}
	}
	// The same share again is refused and does not count.
	if st, err := b.Unseal(ctx, shares[3]); !errors.Is(err, ErrDuplicateShare) || st.Progress != 2 {
		t.Fatalf("duplicate: %+v %v", st, err)
	}
	if st, err := b.Unseal(ctx, shares[0]); err != nil || st.Sealed {
		t.Fatalf("third share: %+v %v", st, err)
	}
	if err := b.EnsureScope(ctx, "v-1", t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put("v/1/x", []byte("plaintext")) }); err != nil {
		t.Fatal(err)
	}
	// Storage holds ciphertext only.
	backend.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("", "", func(k string, v []byte) bool {
			if bytes.Contains(v, []byte("plaintext")) {
				t.Errorf("plaintext under %s", k)
			}
			return true
		})
	})
	// A new barrier on the same storage (a restart) unseals with any 3 shares.
	b2 := New(backend)
	for _, s := range [][]byte{shares[4], shares[1], shares[2]} {
		if _, err := b2.Unseal(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var got []byte
	if err := b2.View(ctx, func(tx Tx) error {
		var err error
		got, err = tx.Get("v/1/x")
		return err
	}); err != nil || string(got) != "plaintext" {
		t.Fatalf("after restart: %q %v", got, err)
	}
	b2.Seal()
	if !b2.Sealed() {
		t.Fatal("seal did not seal")
	}
	if err := b2.View(ctx, func(tx Tx) error { _, err := tx.Get("v/1/x"); return err }); !errors.Is(err, ErrSealed) {
		t.Fatalf("read after seal: %v", err)
	}
}

func TestWrongSharesNeverUnseal(t *testing.T) {
	ctx := context.Background()
	b, _, shares := initShamir(t, 5, 3)
	wrong := make([]byte, len(shares[0]))
	rand.Read(wrong)
	wrong[len(wrong)-1] = 200 // an x coordinate no real share uses twice here
	b.Unseal(ctx, shares[0])
	b.Unseal(ctx, shares[1])
	st, err := b.Unseal(ctx, wrong)
	if !errors.Is(err, ErrBadShares) || !st.Sealed || st.Progress != 0 {
		t.Fatalf("wrong share: %+v %v", st, err)
	}
	// Shares of another initialization never unseal this one.
	_, _, other := initShamir(t, 5, 3)
	for _, s := range other[:3] {
		st, err = b.Unseal(ctx, s)
	}
	if !errors.Is(err, ErrBadShares) || !st.Sealed {
		t.Fatalf("foreign shares: %+v %v", st, err)
	}
	if _, err := b.Unseal(ctx, []byte("short")); !errors.Is(err, ErrMalformedShare) {
		t.Fatalf("malformed: %v", err)
	}
	// Fewer than the threshold leaves it sealed; the right three open it.
	for _, s := range shares[:3] {
		st, err = b.Unseal(ctx, s)
	}
	if err != nil || st.Sealed {
		t.Fatalf("right shares after wrong ones: %+v %v", st, err)
	}
}

func TestInitializeTwiceAndParameters(t *testing.T) {
	ctx := context.Background()
	b, _, _ := initShamir(t, 3, 2)
	if _, err := b.Initialize(ctx, SealConfig{Type: "shamir", Shares: 3, Threshold: 2}, t0); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second init: %v", err)
	}
	for _, cfg := range []SealConfig{
		{Type: "shamir", Shares: 3, Threshold: 4},
		{Type: "shamir", Shares: 3, Threshold: 1},
		{Type: "shamir", Shares: 256, Threshold: 2},
		{Type: "magic", Shares: 3, Threshold: 2},
	} {
		if _, err := New(mem.New()).Initialize(ctx, cfg, t0); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func unsealed(t *testing.T) (*Barrier, *mem.Backend) {
	t.Helper()
	backend := mem.New()
	b := New(backend)
	shares, err := b.Initialize(context.Background(), SealConfig{Type: "dev", Shares: 1, Threshold: 1}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unseal(context.Background(), shares[0]); err != nil {
		t.Fatal(err)
	}
	return b, backend
}

func TestMovedOrChangedBlobsFail(t *testing.T) {
	ctx := context.Background()
	b, backend := unsealed(t)
	b.EnsureScope(ctx, "v-a", t0)
	b.EnsureScope(ctx, "v-b", t0)
	b.Update(ctx, func(tx Tx) error {
		tx.Put("v/a/one", []byte("1"))
		return tx.Put("v/a/two", []byte("2"))
	})
	for _, move := range [][2]string{{"v/a/one", "v/a/two"}, {"v/a/one", "v/b/one"}, {"v/a/one", "sys/one"}} {
		backend.Update(ctx, func(tx storage.Tx) error {
			blob, _ := tx.Get(move[0])
			return tx.Put(move[1], blob)
		})
		err := b.View(ctx, func(tx Tx) error { _, err := tx.Get(move[1]); return err })
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("blob moved %s -> %s: %v", move[0], move[1], err)
		}
	}
	backend.Update(ctx, func(tx storage.Tx) error {
		blob, _ := tx.Get("v/a/one")
		blob[len(blob)-1] ^= 1
		return tx.Put("v/a/one", blob)
	})
	if err := b.View(ctx, func(tx Tx) error { _, err := tx.Get("v/a/one"); return err }); !errors.Is(err, ErrCorrupt) {
		t.Errorf("flipped bit: %v", err)
	}
	// A scope without a keyring cannot be written.
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put("v/none/x", []byte("x")) }); !errors.Is(err, ErrNoScope) {
		t.Errorf("write to a scope without a keyring: %v", err)
	}
	// The barrier's own keys are out of reach through a Tx.
	if err := b.View(ctx, func(tx Tx) error { _, err := tx.Get(keyRoot); return err }); !errors.Is(err, ErrReserved) {
		t.Errorf("reading the root key through the barrier: %v", err)
	}
}

func TestRotateScopeKeepsOldValuesReadable(t *testing.T) {
	ctx := context.Background()
	b, backend := unsealed(t)
	b.EnsureScope(ctx, "v-r", t0)
	b.Update(ctx, func(tx Tx) error { return tx.Put("v/r/old", []byte("old")) })
	if err := b.RotateScope(ctx, "v-r", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b.Update(ctx, func(tx Tx) error { return tx.Put("v/r/new", []byte("new")) })
	var oldTerm, newTerm byte
	backend.View(ctx, func(tx storage.Tx) error {
		o, _ := tx.Get("v/r/old")
		n, _ := tx.Get("v/r/new")
		oldTerm, newTerm = o[4], n[4]
		return nil
	})
	if oldTerm != 1 || newTerm != 2 {
		t.Fatalf("terms %d and %d, want 1 and 2", oldTerm, newTerm)
	}
	// Another node (a fresh barrier) reads both.
	shares := [][]byte{}
	_ = shares
	for _, k := range []string{"v/r/old", "v/r/new"} {
		if err := b.View(ctx, func(tx Tx) error { _, err := tx.Get(k); return err }); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
}

func TestBlobsAreBoundToScopeAndLabel(t *testing.T) {
	ctx := context.Background()
	b, _ := unsealed(t)
	b.EnsureScope(ctx, "t-one", t0)
	b.EnsureScope(ctx, "t-two", t0)
	blob, err := b.SealBlob(ctx, "t-one", "backup/secrets", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.OpenBlob(ctx, "t-one", "backup/secrets", blob); err != nil || string(got) != "payload" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := b.OpenBlob(ctx, "t-two", "backup/secrets", blob); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other tenant opened the blob: %v", err)
	}
	if _, err := b.OpenBlob(ctx, "t-one", "backup/keys", blob); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("other label opened the blob: %v", err)
	}
}

func TestScopeOf(t *testing.T) {
	for key, want := range map[string]string{
		"v/abc/s/n/x": "v-abc", "t/123/x": "t-123", "sys/vaults/x": SystemScope,
		"v/": SystemScope, "v//x": SystemScope, "x/abc/y": SystemScope,
	} {
		if got := ScopeOf(key); got != want {
			t.Errorf("ScopeOf(%q) = %q, want %q", key, got, want)
		}
	}
}
