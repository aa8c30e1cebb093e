package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
)

// Vault lifecycle for the management plane (AZURE-API.md §6): update,
// soft delete, recover, purge. A soft-deleted vault keeps all its data
// under its barrier scope and its name stays reserved until it is purged.

const deletedVaultsPrefix = "sys/deletedvaults/"

// DeletedVault is a soft-deleted vault.
type DeletedVault struct {
	Vault              Vault     `json:"vault"`
	DeletionDate       time.Time `json:"deletionDate"`
	ScheduledPurgeDate time.Time `json:"scheduledPurgeDate"`
}

// UpdateVault applies fn to the stored vault named name. fn may change
// SKU, PurgeProtected and Location only; identity fields are restored.
func (s *Service) UpdateVault(ctx context.Context, name string, fn func(*Vault) error) (*Vault, error) {
	cur, err := s.Vault(name)
	if err != nil {
		return nil, err
	}
	nv := *cur
	if err := fn(&nv); err != nil {
		return nil, err
	}
	nv.ID, nv.Name, nv.TenantID, nv.Created, nv.RetentionDays = cur.ID, cur.Name, cur.TenantID, cur.Created, cur.RetentionDays
	if cur.PurgeProtected {
		nv.PurgeProtected = true // one-way
	}
	switch nv.SKU {
	case "standard", "premium":
	default:
		return nil, badParameter("sku must be standard or premium.")
	}
	raw, err := json.Marshal(&nv)
	if err != nil {
		return nil, err
	}
	if err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		return tx.Put(vaultsPrefix+strings.ToLower(nv.Name), raw)
	}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.vaults[strings.ToLower(nv.Name)] = &nv
	s.mu.Unlock()
	return &nv, nil
}

// SoftDeleteVault deletes vault name: it disappears from the data plane at
// once and can be recovered until its retention ends.
func (s *Service) SoftDeleteVault(ctx context.Context, name string) (*DeletedVault, error) {
	v, err := s.Vault(name)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	dv := &DeletedVault{Vault: *v, DeletionDate: now, ScheduledPurgeDate: now.Add(time.Duration(v.RetentionDays) * 24 * time.Hour)}
	raw, err := json.Marshal(dv)
	if err != nil {
		return nil, err
	}
	key := strings.ToLower(v.Name)
	if err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		if err := tx.Delete(vaultsPrefix + key); err != nil {
			return err
		}
		return tx.Put(deletedVaultsPrefix+key, raw)
	}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.vaults, key)
	s.mu.Unlock()
	return dv, nil
}

// DeletedVault returns the soft-deleted vault named name.
func (s *Service) DeletedVault(ctx context.Context, name string) (*DeletedVault, error) {
	dv := new(DeletedVault)
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		raw, err := tx.Get(deletedVaultsPrefix + strings.ToLower(name))
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, dv)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &Error{Kind: DeletedNotFound, Type: Vaults, Name: clip(name)}
	}
	if err != nil {
		return nil, err
	}
	return dv, nil
}

// DeletedVaults lists soft-deleted vaults, by name.
func (s *Service) DeletedVaults(ctx context.Context) ([]*DeletedVault, error) {
	var out []*DeletedVault
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return tx.Scan(deletedVaultsPrefix, "", func(_ string, raw []byte) bool {
			dv := new(DeletedVault)
			if json.Unmarshal(raw, dv) == nil {
				out = append(out, dv)
			}
			return true
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Vault.Name < out[j].Vault.Name })
	return out, err
}

// RecoverVault brings a soft-deleted vault back with all its data.
func (s *Service) RecoverVault(ctx context.Context, name string) (*Vault, error) {
	dv, err := s.DeletedVault(ctx, name)
	if err != nil {
		return nil, err
	}
	v := dv.Vault
	raw, err := json.Marshal(&v)
	if err != nil {
		return nil, err
	}
	key := strings.ToLower(v.Name)
	if err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(vaultsPrefix + key); err == nil {
			return &Error{Kind: Conflict, Type: Vaults, Name: v.Name, Reason: ReasonVaultExists}
		}
		if err := tx.Delete(deletedVaultsPrefix + key); err != nil {
			return err
		}
		return tx.Put(vaultsPrefix+key, raw)
	}); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.vaults[key] = &v
	s.mu.Unlock()
	return &v, nil
}

// PurgeVault deletes a soft-deleted vault and everything in it for good.
// A purge-protected vault can only be purged once its retention has ended
// (force is for the scheduler, which calls it only then).
func (s *Service) PurgeVault(ctx context.Context, name string, force bool) error {
	dv, err := s.DeletedVault(ctx, name)
	if err != nil {
		return err
	}
	if dv.Vault.PurgeProtected && !force && s.clock.Now().Before(dv.ScheduledPurgeDate) {
		return &Error{Kind: Forbidden, Name: name, Inner: "PurgeProtected",
			Msg: fmt.Sprintf("Vault %s has purge protection enabled and cannot be purged before %s.", dv.Vault.Name, dv.ScheduledPurgeDate.Format(time.RFC3339))}
	}
	// Everything in the vault goes, its keyring last; the registry record
	// after it, so a purge interrupted half way is done again. Its HSM
	// keys' token objects go after the storage (pools.go).
	held, err := s.HSMHandles(ctx, &dv.Vault)
	if err != nil {
		return err
	}
	if err := s.in(&dv.Vault).Destroy(ctx); err != nil {
		return err
	}
	s.destroyOwned(ctx, &dv.Vault, held)
	return s.sys.Update(ctx, func(tx barrier.Tx) error {
		return tx.Delete(deletedVaultsPrefix + strings.ToLower(dv.Vault.Name))
	})
}

// PurgeDueVaults purges soft-deleted vaults whose retention has ended.
func (s *Service) PurgeDueVaults(ctx context.Context) (int, error) {
	dvs, err := s.DeletedVaults(ctx)
	if err != nil {
		return 0, err
	}
	now := s.clock.Now()
	n := 0
	for _, dv := range dvs {
		if now.Before(dv.ScheduledPurgeDate) {
			continue
		}
		if err := s.PurgeVault(ctx, dv.Vault.Name, true); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
