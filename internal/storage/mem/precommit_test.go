package mem

import (
	"context"
	"errors"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

type gate struct {
	err   error
	calls int
}

func (g *gate) PreCommit() error { g.calls++; return g.err }

// TestPreCommitRollsBack: a PreCommitter that fails keeps the write from
// committing; one that succeeds runs after the function and lets it commit.
func TestPreCommitRollsBack(t *testing.T) {
	b := storage.WithPreCommitHooks(New())
	refused := errors.New("audit refused")
	g := &gate{err: refused}
	ctx := storage.WithPreCommit(context.Background(), g)
	err := b.Update(ctx, func(tx storage.Tx) error { return tx.Put("k", []byte("v")) })
	if !errors.Is(err, refused) || g.calls != 1 {
		t.Fatalf("refused commit: %v, %d calls", err, g.calls)
	}
	b.View(context.Background(), func(tx storage.Tx) error {
		if _, err := tx.Get("k"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("a refused write was committed: %v", err)
		}
		return nil
	})
	g.err = nil
	if err := b.Update(ctx, func(tx storage.Tx) error { return errors.New("fn fails") }); err == nil || g.calls != 1 {
		t.Fatalf("PreCommit ran after a failed function (%d calls)", g.calls)
	}
	if err := b.Update(ctx, func(tx storage.Tx) error { return tx.Put("k", []byte("v")) }); err != nil || g.calls != 2 {
		t.Fatalf("accepted commit: %v, %d calls", err, g.calls)
	}
	b.View(context.Background(), func(tx storage.Tx) error {
		if v, err := tx.Get("k"); err != nil || string(v) != "v" {
			t.Fatalf("accepted write not committed: %q %v", v, err)
		}
		return nil
	})
}
