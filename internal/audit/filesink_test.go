package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestFileSinkConcurrentWrites: every line written by concurrent Writes is
// in the file, whole, once, and is in the file when its Write returns; with
// WithLinger (a writer of one event yields once to let others join its
// batch) as without, and the lines form one unbroken chain.
func TestFileSinkConcurrentWrites(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testFileSinkConcurrentWrites(t, context.Background()) })
	t.Run("linger", func(t *testing.T) { testFileSinkConcurrentWrites(t, WithLinger(context.Background())) })
}

func testFileSinkConcurrentWrites(t *testing.T, ctx context.Context) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := s.Write(ctx, &Event{RequestID: id, Time: time.Unix(1, 0).UTC()}); err != nil {
					t.Error(err)
					return
				}
				// The line must already be in the file.
				raw, err := os.ReadFile(path)
				if err != nil || !containsLine(raw, id) {
					t.Errorf("%s not in the file when Write returned", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), &Event{}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	f, _ := os.Open(path)
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	var prev string
	for n := int64(1); sc.Scan(); n++ {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		if seen[e.RequestID] {
			t.Fatalf("%s twice", e.RequestID)
		}
		seen[e.RequestID] = true
		var c chainFields
		if err := unmarshalChain(sc.Bytes(), &c); err != nil || c.Seq != n || (n > 1 && c.Prev != prev) {
			t.Fatalf("line %d breaks the chain: seq %d, prev %q, want %q (%v)", n, c.Seq, c.Prev, prev, err)
		}
		sum := sha256.Sum256(sc.Bytes())
		prev = hex.EncodeToString(sum[:])
	}
	if len(seen) != writers*each {
		t.Fatalf("%d lines, want %d", len(seen), writers*each)
	}
}

func containsLine(raw []byte, id string) bool {
	return bytes.Contains(raw, []byte(`"request_id":"`+id+`"`))
}

func BenchmarkFileSinkParallel(b *testing.B) {
	s, err := OpenFile(filepath.Join(b.TempDir(), "audit.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := &Event{Time: time.Now().UTC(), RequestID: "0b6f7c1e-2a5d-4c4f-9e61-6a1d0c7a9e55", Service: "vault", Vault: "dev",
		Operation: "SecretGet", Method: "GET", Path: "/secrets/bench/", APIVersion: "7.6", Status: 200, Result: Allowed, LatencyMS: 0.412,
		Caller: Caller{TenantID: "7f0b5a9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b", ObjectID: "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", IP: "127.0.0.1"}}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Write(context.Background(), e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
