package vault

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
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
	prefix := "q/"
	n := 0
	for {
		var due []dueItem
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			return tx.ScanKeys(prefix, "", func(key string) bool {
				parts := strings.Split(strings.TrimPrefix(key, prefix), "/")
				if len(parts) != 3 {
					return true
				}
				ts, err := strconv.ParseInt(parts[0], 10, 64)
				if err != nil || ts > now {
					return false
				}
				var t ObjectType
				switch parts[1] {
				case "s":
					t = Secrets
				case "k":
					t = Keys
				case "c":
					t = Certificates
				default:
					return true
				}
				due = append(due, dueItem{key: key, t: t, name: parts[2]})
				return len(due) < 100
			})
		})
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, d := range due {
			err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
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
			n++
		}
	}
}
