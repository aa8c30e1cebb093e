package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/kwtest"
)

// TestREADMEExample runs the README's example against a real dev server.
func TestREADMEExample(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	got, err := run(context.Background(), filepath.Join(e.DataDir, "dev.json"), "readme", "it works")
	if err != nil {
		t.Fatal(err)
	}
	if got != "it works" {
		t.Fatalf("got %q", got)
	}
}
