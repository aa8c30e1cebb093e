package migrate

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/mem"
)

func fill(t *testing.T, b storage.Backend, n int) {
	t.Helper()
	err := b.Update(context.Background(), func(tx storage.Tx) error {
		for i := range n {
			if err := tx.Put(fmt.Sprintf("k/%05d", i), []byte(fmt.Sprint("value ", i))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCopyVerifyAndResume(t *testing.T) {
	ctx := context.Background()
	src, dst := mem.New(), mem.New()
	fill(t, src, 1234)

	// Interrupt the first run after two batches.
	errStop := errors.New("stop")
	stopper := &failingBackend{Backend: dst, failAfter: 2, err: errStop}
	if _, err := Copy(ctx, src, stopper, Options{BatchSize: 100}); !errors.Is(err, errStop) {
		t.Fatalf("interrupted copy: %v", err)
	}
	if _, _, err := Verify(ctx, src, dst); !errors.Is(err, ErrTargetDiverged) {
		t.Fatal("a partial copy verified")
	}
	n, err := Copy(ctx, src, dst, Options{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1234-200 {
		t.Fatalf("resumed copy copied %d keys, want %d", n, 1234-200)
	}
	s, d, err := Verify(ctx, src, dst)
	if err != nil || s.Keys != 1234 || s != d {
		t.Fatalf("verify: %+v %+v %v", s, d, err)
	}
	// A second run has nothing to do.
	if n, err := Copy(ctx, src, dst, Options{}); err != nil || n != 0 {
		t.Fatalf("idempotent run: %d %v", n, err)
	}
}

func TestRefusesADivergedTarget(t *testing.T) {
	ctx := context.Background()
	src, dst := mem.New(), mem.New()
	fill(t, src, 10)
	dst.Update(ctx, func(tx storage.Tx) error { return tx.Put("k/00003", []byte("something else")) })
	if _, err := Copy(ctx, src, dst, Options{}); !errors.Is(err, ErrTargetDiverged) {
		t.Fatalf("copy into a diverged target: %v", err)
	}
}

// failingBackend fails Update after failAfter successful ones.
type failingBackend struct {
	storage.Backend
	failAfter int
	err       error
}

func (f *failingBackend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if f.failAfter == 0 {
		return f.err
	}
	f.failAfter--
	return f.Backend.Update(ctx, fn)
}
