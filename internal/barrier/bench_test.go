package barrier

import (
	"context"
	"fmt"
	"testing"

	"github.com/keyward/keyward/internal/storage/mem"
)

func unsealedTB(tb testing.TB) *Barrier {
	tb.Helper()
	b := New(mem.New())
	shares, err := b.Initialize(context.Background(), SealConfig{Type: "dev", Shares: 1, Threshold: 1}, t0)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := b.Unseal(context.Background(), shares[0]); err != nil {
		tb.Fatal(err)
	}
	if err := b.EnsureScope(context.Background(), "v-0123456789abcdef", t0); err != nil {
		tb.Fatal(err)
	}
	return b
}

// BenchmarkGet is one read of a small sealed value: what a secret read
// does twice (the name record, then the version).
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	br := unsealedTB(b)
	const key = "v/0123456789abcdef/s/v/bench/0123456789abcdef0123456789abcdef"
	if err := br.Update(ctx, func(tx Tx) error { return tx.Put(key, make([]byte, 200)) }); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := br.View(ctx, func(tx Tx) error { _, err := tx.Get(key); return err }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut is one write of a small value (mem backend: no fsync).
func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	br := unsealedTB(b)
	const key = "v/0123456789abcdef/s/v/bench/0123456789abcdef0123456789abcdef"
	val := make([]byte, 200)
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Update(ctx, func(tx Tx) error { return tx.Put(key, val) }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetUncached reads 100,000 distinct values, more than the subkey
// cache holds: each read derives its subkey (one HKDF-Expand).
func BenchmarkGetUncached(b *testing.B) {
	ctx := context.Background()
	br := unsealedTB(b)
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("v/0123456789abcdef/s/v/bench-%d/0123456789abcdef0123456789abcdef", i)
	}
	if err := br.Update(ctx, func(tx Tx) error {
		for _, k := range keys {
			if err := tx.Put(k, make([]byte, 200)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := keys[(i*7919)%n]
		i++
		if err := br.View(ctx, func(tx Tx) error { _, err := tx.Get(k); return err }); err != nil {
			b.Fatal(err)
		}
	}
}
