package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// More of the regression guard (make bench-ci, docs/PERFORMANCE.md): the
// remaining operations of keyward bench, over the full HTTP stack.

func BenchmarkPS256Sign(b *testing.B) {
	digest := sha256.Sum256([]byte("benchmark"))
	b.Run("raw", func(b *testing.B) {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := rsa.SignPSS(rand.Reader, k, crypto.SHA256, digest[:], opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("keyward", func(b *testing.B) {
		be := newBenchEnv(b)
		v := be.createKey(b, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)})
		body, _ := json.Marshal(map[string]string{"alg": "PS256", "value": b64(digest[:])})
		be.parallel(b, http.MethodPost, "keys/rsa/"+v+"/sign?api-version=7.6", body)
	})
}

// BenchmarkSecretSet is a durable write: each request is committed and
// fsynced (group commit) before it is answered.
func BenchmarkSecretSet(b *testing.B) {
	be := newBenchEnv(b)
	body, _ := json.Marshal(map[string]string{"value": "a small secret value"})
	be.do(b, http.MethodPut, "secrets/bench-0?api-version=7.6", body)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be.do(b, http.MethodPut, fmt.Sprintf("secrets/bench-%d?api-version=7.6", n.Add(1)%16), body)
		}
	})
}

// BenchmarkSecretList is the first page (25 items) of a vault's secrets.
func BenchmarkSecretList(b *testing.B) {
	be := newBenchEnv(b)
	c, _ := azsecrets.NewClient(be.e.Info.VaultURL, be.e.Credential(), &azsecrets.ClientOptions{ClientOptions: be.e.ClientOptions()})
	for i := range 30 {
		if _, err := c.SetSecret(context.Background(), fmt.Sprintf("s%02d", i), azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
			b.Fatal(err)
		}
	}
	be.parallel(b, http.MethodGet, "secrets?api-version=7.6&maxresults=25", nil)
}
