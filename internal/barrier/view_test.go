package barrier

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

// TestViewKeepsTheStoredFormat: a value written through a vault's view is
// the value the whole-key-space transaction reads under the old layout
// (v/{id}/key, keyring v-{id}), and the other way round, so data
// directories written before views existed stay readable.
func TestViewKeepsTheStoredFormat(t *testing.T) {
	ctx := context.Background()
	b, backend := unsealed(t)
	v := b.Vault("0123")
	if err := v.EnsureKeyring(ctx, t0); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, func(tx Tx) error { return tx.Put("v/0123/old", []byte("written before views")) }); err != nil {
		t.Fatal(err)
	}
	if err := v.Update(ctx, func(tx Tx) error { return tx.Put("new", []byte("written by a view")) }); err != nil {
		t.Fatal(err)
	}
	if got := v.StorageKey("new"); got != "v/0123/new" {
		t.Fatalf("StorageKey = %q", got)
	}
	var old, fresh []byte
	if err := v.View(ctx, func(tx Tx) (err error) { old, err = tx.Get("old"); return err }); err != nil || string(old) != "written before views" {
		t.Fatalf("old value through the view: %q %v", old, err)
	}
	if err := b.View(ctx, func(tx Tx) (err error) { fresh, err = tx.Get("v/0123/new"); return err }); err != nil || string(fresh) != "written by a view" {
		t.Fatalf("new value through the whole key space: %q %v", fresh, err)
	}
	// The keyring is the one the old layout names.
	if err := backend.View(ctx, func(tx storage.Tx) error { _, err := tx.Get(keyringPrefix + "v-0123"); return err }); err != nil {
		t.Fatalf("vault keyring: %v", err)
	}
	var keys []string
	v.View(ctx, func(tx Tx) error {
		return tx.ScanKeys("", "", func(k string) bool { keys = append(keys, k); return true })
	})
	if strings.Join(keys, ",") != "new,old" {
		t.Fatalf("keys of the view: %v", keys)
	}
}

// TestViewsAreChroots: no view reaches another namespace or the barrier's
// own records.
func TestViewsAreChroots(t *testing.T) {
	ctx := context.Background()
	b, _ := unsealed(t)
	a, c := b.Vault("a"), b.Vault("c")
	for _, v := range []*View{a, c, b.Tenant("T1")} {
		if err := v.EnsureKeyring(ctx, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Update(ctx, func(tx Tx) error { return tx.Put("secret", []byte("a's")) }); err != nil {
		t.Fatal(err)
	}
	if err := c.View(ctx, func(tx Tx) error { _, err := tx.Get("secret"); return err }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("vault c sees vault a's key: %v", err)
	}
	sys := b.System()
	if err := sys.Update(ctx, func(tx Tx) error { return tx.Put("sys/x", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"v/a/secret", "t/t1/x", keyRoot, keyringPrefix + "v-a"} {
		err := sys.View(ctx, func(tx Tx) error { _, err := tx.Get(k); return err })
		if !errors.Is(err, ErrOutsideView) && !errors.Is(err, ErrReserved) {
			t.Errorf("system view read %s: %v", k, err)
		}
		if err := sys.Update(ctx, func(tx Tx) error { return tx.Put(k, []byte("x")) }); err == nil {
			t.Errorf("system view wrote %s", k)
		}
	}
	var seen []string
	sys.View(ctx, func(tx Tx) error {
		return tx.ScanKeys("", "", func(k string) bool { seen = append(seen, k); return true })
	})
	if strings.Join(seen, ",") != "sys/x" {
		t.Fatalf("system view lists %v", seen)
	}
	if err := b.Vault("a/b").View(ctx, func(Tx) error { return nil }); err == nil {
		t.Fatal("a view with a slash in its ID")
	}
	// One transaction spans two namespaces.
	if err := sys.Update(ctx, func(tx Tx) error {
		if err := tx.Put("sys/y", []byte("2")); err != nil {
			return err
		}
		return c.In(tx).Put("z", []byte("3"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.View(ctx, func(tx Tx) error { _, err := tx.Get("v/c/z"); return err }); err != nil {
		t.Fatalf("write through In: %v", err)
	}
	// Tenant IDs are case-insensitive; blobs are bound to the tenant.
	blob, err := b.Tenant("T1").SealBlob(ctx, "backup/x", []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Tenant("t1").OpenBlob(ctx, "backup/x", blob); err != nil || string(got) != "p" {
		t.Fatalf("open: %q %v", got, err)
	}
}

// TestDestroyRemovesDataAndKeyring: purging a namespace leaves nothing of
// it in storage, its keyring included, and touches no other namespace.
func TestDestroyRemovesDataAndKeyring(t *testing.T) {
	ctx := context.Background()
	b, backend := unsealed(t)
	gone, kept := b.Vault("gone"), b.Vault("kept")
	for _, v := range []*View{gone, kept} {
		if err := v.EnsureKeyring(ctx, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := gone.Update(ctx, func(tx Tx) error {
		for i := range destroyBatch + 3 {
			if err := tx.Put(strings.Repeat("k", 1+i%7)+string(rune('a'+i%26))+string(rune('0'+i%10))+"/"+string(rune(i)), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	kept.Update(ctx, func(tx Tx) error { return tx.Put("x", []byte("stays")) })
	if err := gone.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	backend.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("", "", func(k string, _ []byte) bool {
			if strings.HasPrefix(k, "v/gone/") || strings.HasSuffix(k, "v-gone") {
				t.Errorf("%s left after Destroy", k)
			}
			return true
		})
	})
	if err := kept.View(ctx, func(tx Tx) error { _, err := tx.Get("x"); return err }); err != nil {
		t.Fatalf("other vault after Destroy: %v", err)
	}
	if err := gone.Update(ctx, func(tx Tx) error { return tx.Put("x", []byte("x")) }); !errors.Is(err, ErrNoScope) {
		t.Fatalf("write after Destroy: %v", err)
	}
	if err := b.System().Destroy(ctx); err == nil {
		t.Fatal("the system namespace was destroyed")
	}
}
