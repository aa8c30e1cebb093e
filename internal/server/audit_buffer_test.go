package server

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSinkBufferFollowsTheSink: an HTTP sink's disk buffer is named after
// the sink, not its place in the configuration, so removing the first of
// two sinks does not hand its unsent events to the second; a buffer of the
// old naming (http-N.buffer) is adopted, with its offset, by the sink at
// that place when that sink has none of its own.
func TestSinkBufferFollowsTheSink(t *testing.T) {
	dir := t.TempDir()
	a := SinkIdentity(AuditSinkConfig{Type: "http", URL: "https://a.example/ingest"})
	b := SinkIdentity(AuditSinkConfig{Type: "http", URL: "https://b.example/ingest"})
	path := func(name, id string, n int) string {
		t.Helper()
		p, err := sinkBuffer(dir, name, id, n)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// An old-style buffer of the sink that was first: adopted by it.
	legacy := filepath.Join(dir, "http-1.buffer")
	os.WriteFile(legacy, []byte("event of a\n"), 0o600)
	os.WriteFile(legacy+".offset", []byte("0"), 0o600)
	pa := path("http-1", a, 1)
	if got, err := os.ReadFile(pa); err != nil || string(got) != "event of a\n" {
		t.Fatalf("the old buffer was not adopted: %q %v", got, err)
	}
	if _, err := os.Stat(pa + ".offset"); err != nil {
		t.Fatalf("its offset was not adopted: %v", err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Fatalf("the old buffer is still there: %v", err)
	}
	pb := path("http-2", b, 1)
	if pb == pa {
		t.Fatal("two sinks share a buffer")
	}
	os.WriteFile(pb, []byte("event of b\n"), 0o600)
	// a is removed: b is now first, and keeps its own buffer.
	if p := path("http-1", b, 1); p != pb {
		t.Fatalf("b moved to the first place and got %s, not its buffer %s", p, pb)
	}
	// The same identity twice (two sinks to one URL, other headers): two buffers.
	if path("http-1", b, 2) == pb {
		t.Fatal("the second sink of one identity shares the first's buffer")
	}
	if got, _ := os.ReadFile(pa); string(got) != "event of a\n" {
		t.Fatal("the removed sink's unsent events were changed")
	}
}
