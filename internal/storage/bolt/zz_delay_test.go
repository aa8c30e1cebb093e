package bolt_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/bolt"
)

func BenchmarkDelay(b *testing.B) {
	value := make([]byte, 256)
	for _, d := range []time.Duration{100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2 * time.Millisecond} {
		for _, p := range []int{0, 4, 16} {
			b.Run(fmt.Sprintf("d=%v/p=%d", d, p), func(b *testing.B) {
				db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{MaxBatchDelay: d})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				var n atomic.Int64
				put := func() {
					k := fmt.Sprintf("k/%d", n.Add(1))
					if err := db.Update(b.Context(), func(tx storage.Tx) error { return tx.Put(k, value) }); err != nil {
						b.Error(err)
					}
				}
				if p == 0 {
					for b.Loop() {
						put()
					}
				} else {
					b.SetParallelism(p)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							put()
						}
					})
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			})
		}
	}
}
