//go:build cgo

package hsm_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/pkcs11"

	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/keys"
)

// The package's own share of an HSM signature (docs/PERFORMANCE.md,
// "Session 6: HSM path"): the same token key signed by raw PKCS#11 calls
// ("pkcs11": C_SignInit + C_Sign on one session per goroutine, the object
// handle found once, the session flags Keyward uses) and by the operator
// Keyward loads ("operator": session pool, handle cache, alg checks), in
// the same run and at the same parallelism.
//
//	go test -run '^$' -bench 'BenchmarkSign' -benchtime 2s ./internal/hsm/

var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

func benchSign(b *testing.B, spec keys.Spec, alg string, mech uint, input func([]byte) []byte) {
	h, tok := hsmtest.Open(b)
	ctx := context.Background()
	handle, _, err := h.Generate(ctx, spec)
	if err != nil {
		b.Fatal(err)
	}
	op, err := h.Load(ctx, handle)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("benchmark"))
	in := input(digest[:])
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("pkcs11-c%d", par), func(b *testing.B) {
			p := pkcs11.New(tok.Module)
			if err := p.Initialize(); err != nil && !strings.Contains(err.Error(), "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
				b.Fatal(err)
			}
			slot := findSlot(b, p, tok.Label)
			b.SetParallelism(par)
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				s, err := p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
				if err != nil {
					b.Error(err)
					return
				}
				defer p.CloseSession(s)
				_ = p.Login(s, pkcs11.CKU_USER, tok.UserPIN) // the HSM value logged in already: same process
				if err := p.FindObjectsInit(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(spec.ID)),
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}); err != nil {
					b.Error(err)
					return
				}
				objs, _, err := p.FindObjects(s, 1)
				_ = p.FindObjectsFinal(s)
				if err != nil || len(objs) != 1 {
					b.Errorf("key object: %v", err)
					return
				}
				m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
				for pb.Next() {
					if err := p.SignInit(s, m, objs[0]); err != nil {
						b.Error(err)
						return
					}
					if _, err := p.Sign(s, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(fmt.Sprintf("operator-c%d", par), func(b *testing.B) {
			b.SetParallelism(par)
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := op.Sign(ctx, alg, digest[:]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// reportCPU adds the process's CPU time per operation (user + system) as
// cpu-µs/op, steadier than ns/op on a busy machine.
func reportCPU(b *testing.B) func() {
	start := processCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((processCPU()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func findSlot(b *testing.B, p *pkcs11.Ctx, label string) uint {
	slots, err := p.GetSlotList(true)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := p.GetTokenInfo(s); err == nil && strings.TrimRight(ti.Label, " \x00") == label {
			return s
		}
	}
	b.Fatalf("token %q not found", label)
	return 0
}

func BenchmarkSignRS256(b *testing.B) {
	benchSign(b, keys.Spec{Kty: keys.KtyRSA, Size: 2048, ID: "bench-rsa"}, keys.AlgRS256, pkcs11.CKM_RSA_PKCS,
		func(d []byte) []byte { return append(append([]byte(nil), digestInfoSHA256...), d...) })
}

func BenchmarkSignES256(b *testing.B) {
	benchSign(b, keys.Spec{Kty: keys.KtyEC, Curve: keys.CurveP256, ID: "bench-ec"}, keys.AlgES256, pkcs11.CKM_ECDSA,
		func(d []byte) []byte { return d })
}
