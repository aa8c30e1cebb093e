// Package hsmtest gives tests a real SoftHSM2 token made in a temporary
// directory. The SoftHSM2 library reads its configuration once per
// process, so every token of a test binary lives in one directory, made
// at first use; each call makes a new token (its own label and PINs).
package hsmtest

import (
	"os"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/hsm"
)

// Module returns the SoftHSM2 module path. Without it the test is skipped
// locally and fails in CI (CI=true), where .ci/run installs softhsm2.
func Module(tb testing.TB) string {
	tb.Helper()
	m := os.Getenv("KEYWARD_TEST_HSM_MODULE")
	if m == "" {
		m = hsm.DefaultSoftHSMModule
	}
	if _, err := os.Stat(m); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("SoftHSM2 is missing (%s): apt-get install -y softhsm2", m)
		}
		tb.Skipf("SoftHSM2 is not installed (%s); apt-get install -y softhsm2 to run this test", m)
	}
	return m
}

var (
	once sync.Once
	dir  string
	derr error
)

// Dir is the process's SoftHSM2 directory (configuration and tokens).
func Dir(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		dir, derr = os.MkdirTemp("", "keyward-softhsm-")
		if derr == nil {
			_, derr = hsm.PrepareSoftHSMConf(dir)
		}
	})
	if derr != nil {
		tb.Fatal(derr)
	}
	return dir
}

// Token makes a new SoftHSM2 token and returns it.
func Token(tb testing.TB) hsm.SoftToken {
	tb.Helper()
	m := Module(tb)
	d, err := os.MkdirTemp(Dir(tb), "rec-")
	if err != nil {
		tb.Fatal(err)
	}
	t, err := hsm.EnsureSoftToken(m, d)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// Open makes a token and opens it; the HSM is closed at the test's end.
func Open(tb testing.TB) (*hsm.HSM, hsm.SoftToken) {
	tb.Helper()
	t := Token(tb)
	h, err := hsm.Open(t.Config())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h, t
}
