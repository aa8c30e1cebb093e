package throttle

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestZeroConfigLimitsNothing(t *testing.T) {
	l := New(clock.NewFake(t0), Config{})
	for range 100_000 {
		if d := l.Allow("v", "t", "p"); !d.Allowed {
			t.Fatal("refused with no limits")
		}
	}
	if len(l.buckets) != 0 {
		t.Fatal("buckets kept with no limits")
	}
}

func TestVaultBucket(t *testing.T) {
	clk := clock.NewFake(t0)
	l := New(clk, Config{Vault: Limit{Rate: 5, Burst: 5}})
	for i := range 5 {
		if d := l.Allow("v", "t", fmt.Sprint("p", i)); !d.Allowed {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	d := l.Allow("v", "t", "p9")
	if d.Allowed || d.Scope != VaultScope || d.RetryAfter != 200*time.Millisecond {
		t.Fatalf("6th request: %+v, want refused by the vault, retry after 200ms", d)
	}
	if d := l.Allow("other", "t", "p"); !d.Allowed {
		t.Fatal("another vault was throttled")
	}
	clk.Advance(199 * time.Millisecond)
	if d := l.Allow("v", "t", "p"); d.Allowed {
		t.Fatal("allowed before a token was earned")
	}
	clk.Advance(time.Millisecond)
	if d := l.Allow("v", "t", "p"); !d.Allowed {
		t.Fatalf("refused after RetryAfter: %+v", d)
	}
	// A long pause refills to the burst, not beyond.
	clk.Advance(time.Hour)
	n := 0
	for l.Allow("v", "t", "p").Allowed {
		n++
	}
	if n != 5 {
		t.Fatalf("%d requests after a long pause, want the burst of 5", n)
	}
}

func TestPrincipalBucketAndDefaultBurst(t *testing.T) {
	clk := clock.NewFake(t0)
	l := New(clk, Config{Vault: Limit{Rate: 1000}, Principal: Limit{Rate: 2}})
	n := 0
	for l.Allow("v", "t", "p").Allowed {
		n++
	}
	if n != 20 {
		t.Fatalf("burst %d, want 10 s × 2/s = 20", n)
	}
	d := l.Allow("v2", "t", "p")
	if d.Allowed || d.Scope != PrincipalScope || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("principal over its limit in another vault: %+v", d)
	}
	if !l.Allow("v", "t", "q").Allowed {
		t.Fatal("another principal was throttled")
	}
}

// A refused request takes no token from the bucket that had one.
func TestRefusalTakesNothing(t *testing.T) {
	clk := clock.NewFake(t0)
	l := New(clk, Config{Vault: Limit{Rate: 1, Burst: 3}, Principal: Limit{Rate: 1, Burst: 1}})
	if !l.Allow("v", "t", "p").Allowed {
		t.Fatal("first request refused")
	}
	for range 10 {
		if l.Allow("v", "t", "p").Allowed {
			t.Fatal("principal over its burst allowed")
		}
	}
	for _, p := range []string{"q", "r"} {
		if !l.Allow("v", "t", p).Allowed {
			t.Fatalf("%s refused: the vault bucket lost tokens to refused requests", p)
		}
	}
}

func TestSweepForgetsFullBuckets(t *testing.T) {
	clk := clock.NewFake(t0)
	l := New(clk, Config{Principal: Limit{Rate: 10}})
	for i := range maxIdleBuckets {
		l.Allow("v", "t", fmt.Sprint(i))
	}
	clk.Advance(10 * time.Second) // every bucket is full again
	l.Allow("v", "t", "new")
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", len(l.buckets))
	}
}

func TestConcurrentAllowIsExact(t *testing.T) {
	l := New(clock.NewFake(t0), Config{Vault: Limit{Rate: 1, Burst: 1000}})
	var mu sync.Mutex
	allowed := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if l.Allow("v", "t", "p").Allowed {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Fatalf("%d allowed, want exactly the burst of 1000", allowed)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(clock.Real{}, Config{Vault: Limit{Rate: 1e9}, Principal: Limit{Rate: 1e9}})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("0123456789abcdef", "7f0b5a9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f")
		}
	})
}
