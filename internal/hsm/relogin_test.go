//go:build cgo

package hsm

import (
	"context"
	"crypto/sha256"
	"os"
	"testing"

	"github.com/keyward/keyward/internal/keys"
)

// TestReloginAfterTokenReset: every session of the application is closed
// behind the pool's back (what a token reset or re-insertion does: the
// sessions and the login are gone); the next operation recovers, logs in
// again and succeeds.
func TestReloginAfterTokenReset(t *testing.T) {
	if _, err := os.Stat(DefaultSoftHSMModule); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("SoftHSM2 is missing")
		}
		t.Skip("SoftHSM2 is not installed")
	}
	dir, err := os.MkdirTemp("", "keyward-softhsm-relogin-") // the library keeps its first configuration for the process
	if err != nil {
		t.Fatal(err)
	}
	tok, err := EnsureSoftToken(DefaultSoftHSMModule, dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(tok.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	handle, _, err := h.Generate(ctx, keys.Spec{Kty: keys.KtyEC})
	if err != nil {
		t.Fatal(err)
	}
	op, _ := h.Load(ctx, handle)
	d := sha256.Sum256([]byte("x"))
	if _, err := op.Sign(ctx, keys.AlgES256, d[:]); err != nil {
		t.Fatal(err)
	}
	if err := h.p.CloseAllSessions(h.slot); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := op.Sign(ctx, keys.AlgES256, d[:]); err != nil {
			t.Fatalf("sign %d after the sessions were closed: %v", i, err)
		}
	}
}
