package vault

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
)

// PurgeDue purges every soft-deleted object whose retention has ended at
// now and returns how many it purged. It reads only the due part of each
// vault's purge queue, so its cost follows the number of due objects.
func (s *Service) PurgeDue(ctx context.Context) (int, error) {
	now := s.clock.Now().Unix()
	total := 0
	for _, v := range s.Vaults() {
		n, err := s.purgeVault(ctx, v, now)
		total += n
		if err != nil {
			return total, fmt.Errorf("vault %s: %w", v.Name, err)
		}
	}
	return total, nil
}

type dueItem struct {
	key  string
	t    ObjectType
	name string
}

func (s *Service) purgeVault(ctx context.Context, v *Vault, now int64) (int, error) {
	n := 0
	for {
		var due []dueItem
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			entries, err := jobs.DueKeys(tx, purgeQueue, now, 100)
			for _, e := range entries {
				coll, name, _ := strings.Cut(e.Rest, "/")
				due = append(due, dueItem{key: e.Key, t: collType(coll), name: name})
			}
			return err
		})
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, d := range due {
			var held [][]byte
			if d.t == Keys {
				held = s.hsmHandles(ctx, v, d.name)
			}
			err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
				if d.t == "" || d.name == "" {
					return tx.Delete(d.key) // names nothing: stale
				}
				if err := purge(tx, s.objs(v, d.t), d.name); KindOf(err) == DeletedNotFound {
					return tx.Delete(d.key) // stale queue entry
				} else if err != nil {
					return err
				}
				return nil
			})
			if err != nil {
				return n, err
			}
			s.destroyOwned(ctx, v, held)
			n++
		}
	}
}

// purgeQueue is the due queue (internal/jobs) of soft-deleted objects:
// q/{purge time}/{c}/{name}.
const purgeQueue = "q/"
