package alerts

import (
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
)

// BenchmarkObserveSecretGet: the built-in rules observing a repeated
// secret read (what every secret get's audit event costs the engine), on
// every core at once.
func BenchmarkObserveSecretGet(b *testing.B) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC))
	en := New(clk, nil, Builtin(), nil)
	ev := &audit.Event{Time: clk.Now(), Status: 200, OperationName: "SecretGet", Result: "allowed", Service: "vault", Vault: "v",
		ObjectID: "https://v.vault.local/secrets/s/0123456789abcdef", Caller: audit.Caller{ObjectID: "4f1c6a5e-0000-4000-8000-000000000001", IP: "127.0.0.1"}}
	en.Observe(ev)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			en.Observe(ev)
		}
	})
}
