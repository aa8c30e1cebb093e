package e2e

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
)

// BenchmarkHASecretGet reads one secret through one node, or round-robin
// through two nodes sharing one PostgreSQL database. Client, nodes and
// database share the machine's cores, so the figure says what a second
// node costs or gains on one machine, not on two.
func BenchmarkHASecretGet(b *testing.B) {
	for _, nodes := range []int{1, 2} {
		b.Run(map[int]string{1: "nodes=1", 2: "nodes=2"}[nodes], func(b *testing.B) {
			ctx := context.Background()
			dsn := pgtest.Start(b).NewDatabase(b)
			envs := []*kwtest.Env{kwtest.Start(b, kwtest.Options{Backend: "postgres", DSN: dsn})}
			if nodes == 2 {
				dir := b.TempDir()
				copyDevFiles(b, envs[0].DataDir, dir)
				envs = append(envs, kwtest.Start(b, kwtest.Options{Backend: "postgres", DSN: dsn, DataDir: dir}))
			}
			c, _ := azsecrets.NewClient(envs[0].Info.VaultURL, envs[0].Credential(), &azsecrets.ClientOptions{ClientOptions: envs[0].ClientOptions()})
			if _, err := c.SetSecret(ctx, "bench", azsecrets.SetSecretParameters{Value: to.Ptr("value")}, nil); err != nil {
				b.Fatal(err)
			}
			// Each node here has its own address, so its own token audience;
			// behind a load balancer all nodes share one public address.
			var toks []string
			for _, e := range envs {
				tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
				if err != nil {
					b.Fatal(err)
				}
				toks = append(toks, tok.Token)
			}
			var n atomic.Uint64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1)) % len(envs)
					e := envs[i]
					req, _ := http.NewRequest(http.MethodGet, e.Info.VaultURL+"secrets/bench/?api-version=7.6", nil)
					req.Header.Set("Authorization", "Bearer "+toks[i])
					resp, err := e.HTTP.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}
