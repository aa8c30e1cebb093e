package vault

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// TestPurgedVaultLeavesNothing: purging a vault removes its objects, its
// queues and its barrier keyring from storage, and nothing of another vault.
func TestPurgedVaultLeavesNothing(t *testing.T) {
	s, _, backend := newServiceMem(t)
	ctx := context.Background()
	const tenant = "11111111-1111-1111-1111-111111111111"
	gone, err := s.CreateVault(ctx, Vault{Name: "gone", TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.CreateVault(ctx, Vault{Name: "kept", TenantID: tenant})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*Vault{gone, kept} {
		if _, err := s.SetSecret(ctx, v, SetSecretParams{Name: "s", Value: NewSecretValue([]byte("x"))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DeleteSecret(ctx, v, "s"); err != nil { // leaves a purge-queue entry
			t.Fatal(err)
		}
		if _, err := s.CreateKey(ctx, v, CreateKeyParams{Name: "k", Kty: "EC"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SoftDeleteVault(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.PurgeVault(ctx, "gone", false); err != nil {
		t.Fatal(err)
	}
	var left []string
	backend.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("", "", func(k string, _ []byte) bool {
			if strings.Contains(k, gone.ID) || strings.HasSuffix(k, "/gone") {
				left = append(left, k)
			}
			return true
		})
	})
	if len(left) > 0 {
		t.Fatalf("purged vault left %v", left)
	}
	if _, err := s.GetKey(ctx, kept, "k", ""); err != nil {
		t.Fatalf("the other vault after the purge: %v", err)
	}
}

// TestIndexRecordsBeforeViews: an expiry index written before views kept
// storage keys ("v/{id}/x/e/..."); replacing it still removes those entries.
func TestIndexRecordsBeforeViews(t *testing.T) {
	s, _, backend := newServiceMem(t)
	ctx := context.Background()
	v, err := s.CreateVault(ctx, Vault{Name: "old", TenantID: "11111111-1111-1111-1111-111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	exp := int64(1_900_000_000)
	sec, err := s.SetSecret(ctx, v, SetSecretParams{Name: "s", Value: NewSecretValue([]byte("x")),
		Attributes: &AttributesPatch{Expires: &exp}})
	if err != nil {
		t.Fatal(err)
	}
	o, view := s.objs(v, Secrets), s.in(v)
	// Rewrite the index record the way the previous layout stored it.
	if err := view.Update(ctx, func(tx barrier.Tx) error {
		var idx expiryIndex
		if _, err := barrier.GetJSON(tx, o.indexRecord("s"), &idx); err != nil || len(idx.Keys) == 0 {
			t.Fatalf("index record: %+v %v", idx, err)
		}
		for i, k := range idx.Keys {
			idx.Keys[i] = view.StorageKey(k)
		}
		return barrier.PutJSON(tx, o.indexRecord("s"), &idx)
	}); err != nil {
		t.Fatal(err)
	}
	later := exp + 86400
	if _, err := s.UpdateSecret(ctx, v, UpdateSecretParams{Name: "s", Version: sec.Version,
		Attributes: &AttributesPatch{Expires: &later}}); err != nil {
		t.Fatal(err)
	}
	var due []string
	backend.View(ctx, func(tx storage.Tx) error {
		return tx.Scan(view.StorageKey("x/"), "", func(k string, _ []byte) bool {
			if !strings.Contains(k, "/x/i/") {
				due = append(due, k)
			}
			return true
		})
	})
	if len(due) != 2 || !strings.Contains(due[0], fmt.Sprint(later)) {
		t.Fatalf("due entries after reindexing: %v", due)
	}
}
