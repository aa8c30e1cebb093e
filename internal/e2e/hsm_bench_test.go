//go:build cgo

package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/miekg/pkcs11"
)

// HSM benchmarks (docs/PERFORMANCE.md, "HSM keys"): the same token key
// signed through raw PKCS#11 calls ("pkcs11": C_SignInit + C_Sign on one
// session per goroutine, the object handle found once) and through
// Keyward's full stack ("keyward"), in the same run, on every core.

var digestInfoSHA256 = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

func benchHSMSign(b *testing.B, kty azkeys.KeyType, alg string, mech uint, input func([]byte) []byte) {
	digest := sha256.Sum256([]byte("benchmark"))
	e := kwtest.Start(b, kwtest.Options{HSM: true})
	be := &benchEnv{e: e, hc: e.HTTP, proto: "HTTP/2.0"}
	tok, err := e.Credential().GetToken(b.Context(), tokenOpts(e))
	if err != nil {
		b.Fatal(err)
	}
	be.token = tok.Token
	p := azkeys.CreateKeyParameters{Kty: to.Ptr(kty)}
	if kty == azkeys.KeyTypeRSAHSM {
		p.KeySize = to.Ptr[int32](2048)
	} else {
		p.Curve = to.Ptr(azkeys.CurveNameP256)
	}
	v := be.createKey(b, "hsm", p)
	// The same key type in software (RSA / EC, no -HSM), for the stack's
	// own cost in the same run: keyward-software minus Go's signature.
	sp := p
	sp.Kty = to.Ptr(azkeys.KeyTypeRSA)
	if kty == azkeys.KeyTypeECHSM {
		sp.Kty = to.Ptr(azkeys.KeyTypeEC)
	}
	sv := be.createKey(b, "software", sp)
	// pkcs11 and keyward: one goroutine per core; the -c4 variants: four
	// per core, so that the token is kept busy while other requests are in
	// TLS, HTTP and audit (a server's rate, not one client's round trips).
	for _, par := range []int{1, 4} {
		name := "pkcs11"
		if par > 1 {
			name = fmt.Sprintf("pkcs11-c%d", par)
		}
		b.Run(name, func(b *testing.B) {
			b.SetParallelism(par)
			ctx := pkcs11.New(e.Info.HSM.Module)
			if err := ctx.Initialize(); err != nil && !strings.Contains(err.Error(), "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
				b.Fatal(err)
			}
			slots, _ := ctx.GetSlotList(true)
			var slot uint
			found := false
			for _, s := range slots {
				if ti, err := ctx.GetTokenInfo(s); err == nil && strings.TrimRight(ti.Label, " ") == e.Info.HSM.TokenLabel {
					slot, found = s, true
				}
			}
			if !found {
				b.Fatal("token not found")
			}
			in := input(digest[:])
			m := []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}
			b.ResetTimer()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				// The session flags Keyward's pool uses (read-write).
				s, err := ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
				if err != nil {
					b.Error(err)
					return
				}
				defer ctx.CloseSession(s)
				_ = ctx.Login(s, pkcs11.CKU_USER, e.Info.HSM.UserPIN) // already logged in by Keyward: same process
				ctx.FindObjectsInit(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(v)),
					pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
				objs, _, err := ctx.FindObjects(s, 1)
				ctx.FindObjectsFinal(s)
				if err != nil || len(objs) != 1 {
					b.Errorf("key object: %v", err)
					return
				}
				for pb.Next() {
					if err := ctx.SignInit(s, m, objs[0]); err != nil {
						b.Error(err)
						return
					}
					if _, err := ctx.Sign(s, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	for _, run := range []struct {
		name, path string
		par        int
	}{{"keyward", "keys/hsm/" + v, 1}, {"keyward-c4", "keys/hsm/" + v, 4}, {"keyward-software", "keys/software/" + sv, 1}} {
		par := run.par
		b.Run(run.name, func(b *testing.B) {
			body, _ := json.Marshal(map[string]string{"alg": alg, "value": b64(digest[:])})
			b.SetParallelism(par)
			path := run.path + "/sign?api-version=7.6"
			be.do(b, http.MethodPost, path, body) // warm: token cache, key cache, connections
			b.ResetTimer()
			defer reportCPU(b)()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					be.do(b, http.MethodPost, path, body)
				}
			})
		})
	}
}

// reportCPU adds the process's CPU time per operation (user + system,
// every thread: for "keyward" the in-process client's share too) as
// cpu-µs/op: under a busy machine's load it moves far less than ns/op, so
// the ratio of the two rows' cpu-µs/op is the steadier comparison.
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

func BenchmarkHSMRS256Sign(b *testing.B) {
	benchHSMSign(b, azkeys.KeyTypeRSAHSM, "RS256", pkcs11.CKM_RSA_PKCS, func(d []byte) []byte { return append(append([]byte(nil), digestInfoSHA256...), d...) })
}

func BenchmarkHSMES256Sign(b *testing.B) {
	benchHSMSign(b, azkeys.KeyTypeECHSM, "ES256", pkcs11.CKM_ECDSA, func(d []byte) []byte { return d })
}
