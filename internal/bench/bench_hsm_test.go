//go:build cgo

package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestRunHSMOperations runs the HSM operations against an in-process dev
// server with its own SoftHSM2 token (skipped locally without SoftHSM2, a
// failure in CI): the load through the full stack, and the raw side's
// C_SignInit + C_Sign on the same token object from the client's code.
// Both run in this process, so the figures mean nothing; the shape does.
func TestRunHSMOperations(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{HSM: true})
	devJSON := filepath.Join(e.DataDir, "dev.json")
	for _, op := range []string{OpHSMRS256, OpHSMES256} {
		t.Run(op, func(t *testing.T) {
			r, err := Run(context.Background(), Config{
				DevJSON: devJSON, Op: op, Concurrency: 3, Duration: 400 * time.Millisecond,
				Warmup: 100 * time.Millisecond, ServerPID: os.Getpid(), Raw: true, RawDuration: 200 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, r, true, true)
			if r.Raw.Goroutines != 3 || r.Raw.Ops <= 0 || r.Raw.CPUMicrosPerOp <= 0 || r.CPURatio <= 0 {
				t.Fatalf("%s: raw %+v, cpu ratio %v; want 3 token sessions signing", op, r.Raw, r.CPURatio)
			}
		})
	}
	t.Run("raw goroutines", func(t *testing.T) {
		r, err := Run(context.Background(), Config{
			DevJSON: devJSON, Op: OpHSMES256, Concurrency: 2, Requests: 20, Raw: true, RawDuration: 100 * time.Millisecond, RawGoroutines: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, r, false, true)
		if r.Raw.Goroutines != 1 {
			t.Fatalf("raw on %d goroutines, want 1", r.Raw.Goroutines)
		}
	})
}

// TestHSMOperationWithoutToken: a dev server without SoftHSM2 has no
// "hsm" in dev.json, and the HSM operations say what is missing instead
// of running.
func TestHSMOperationWithoutToken(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	_, err := Run(context.Background(), Config{DevJSON: filepath.Join(e.DataDir, "dev.json"), Op: OpHSMRS256, Requests: 1})
	if err == nil || !strings.Contains(err.Error(), "SoftHSM2") {
		t.Fatalf("hsm-sign-rs256 without a token: %v", err)
	}
}
