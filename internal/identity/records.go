package identity

import (
	"context"

	"github.com/keyward/keyward/internal/barrier"
)

// scanRecords decodes each JSON record under prefix into a new T and calls
// fn with it until fn returns false. Records that do not decode are
// skipped.
func scanRecords[T any](tx barrier.Tx, prefix string, fn func(*T) bool) error {
	return tx.Scan(prefix, "", func(_ string, raw []byte) bool {
		v := new(T)
		if jsonUnmarshal(raw, v) != nil {
			return true
		}
		return fn(v)
	})
}

// findRecord is the first record under prefix that match accepts: a full
// scan, for lookups by a field that is not the key. ErrNotFound when none.
func findRecord[T any](ctx context.Context, s Store, prefix string, match func(*T) bool) (*T, error) {
	var found *T
	err := s.View(ctx, func(tx barrier.Tx) error {
		return scanRecords(tx, prefix, func(v *T) bool {
			if match(v) {
				found = v
				return false
			}
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, ErrNotFound
	}
	return found, nil
}

// listRecords is every record under prefix, each passed through clean
// (which drops what a listing must not show).
func listRecords[T any](ctx context.Context, s Store, prefix string, clean func(*T)) ([]*T, error) {
	var out []*T
	err := s.View(ctx, func(tx barrier.Tx) error {
		return scanRecords(tx, prefix, func(v *T) bool {
			if clean != nil {
				clean(v)
			}
			out = append(out, v)
			return true
		})
	})
	return out, err
}
