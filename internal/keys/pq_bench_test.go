package keys_test

import (
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

// The post-quantum operations through *PQKey (docs/POST-QUANTUM.md).

func BenchmarkPQ(b *testing.B) {
	msg := []byte("bench message")
	for _, alg := range keys.AKPAlgorithms() {
		k, err := keys.GeneratePQ(alg)
		if err != nil {
			b.Fatal(err)
		}
		switch {
		case keys.IsMLDSA(alg):
			sig, _ := k.Sign(alg, msg)
			b.Run(alg+"/sign", func(b *testing.B) {
				for b.Loop() {
					if _, err := k.Sign(alg, msg); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(alg+"/verify", func(b *testing.B) {
				for b.Loop() {
					if ok, _ := k.Verify(alg, msg, sig); !ok {
						b.Fatal("verify")
					}
				}
			})
		case keys.IsMLKEM(alg):
			_, ct, _ := k.Encapsulate(alg)
			b.Run(alg+"/decapsulate", func(b *testing.B) {
				for b.Loop() {
					if _, err := k.Decapsulate(alg, ct); err != nil {
						b.Fatal(err)
					}
				}
			})
		default:
			dek := make([]byte, 32)
			w, _ := k.WrapKey(alg, dek)
			b.Run(alg+"/wrap", func(b *testing.B) {
				for b.Loop() {
					if _, err := k.WrapKey(alg, dek); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(alg+"/unwrap", func(b *testing.B) {
				for b.Loop() {
					if _, err := k.UnwrapKey(alg, w); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
