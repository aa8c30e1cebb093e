package auditsink

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// TestHTTPRetriesAndBounds: batches the collector refuses are retried
// until it takes them, none is lost or sent twice; a full buffer refuses
// Writes; what is unsent at Close is sent by the next start.
func TestHTTPRetriesAndBounds(t *testing.T) {
	var mu sync.Mutex
	fail := 3
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail > 0 {
			fail--
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			i := strings.Index(sc.Text(), `"request_id":"`)
			got[sc.Text()[i+14:i+18]]++
		}
	}))
	defer srv.Close()
	buf := filepath.Join(t.TempDir(), "http.buffer")
	s, err := NewHTTP(HTTPOptions{URL: srv.URL, BufferPath: buf, BufferBytes: 64 << 10, FlushInterval: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if err := s.Write(context.Background(), &audit.Event{RequestID: "r" + string(rune('A'+i/26)) + string(rune('a'+i%26)) + "x"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes never sent", s.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	if len(got) != 40 || fail != 0 {
		t.Fatalf("collector got %d distinct events (fail left %d): %v", len(got), fail, got)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("%s sent %d times", id, n)
		}
	}
	fail = 1 << 30 // the collector goes away
	mu.Unlock()
	big := &audit.Event{RequestID: "big", UserAgent: strings.Repeat("u", 200)}
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		werr = s.Write(context.Background(), big)
	}
	if werr == nil || !strings.Contains(werr.Error(), "buffer full") {
		t.Fatalf("a full buffer accepted writes: %v", werr)
	}
	pending := s.Pending()
	if pending > 64<<10 {
		t.Fatalf("buffer holds %d bytes, bound 64 KiB", pending)
	}
	s.Close()
	mu.Lock()
	fail = 0
	mu.Unlock()
	s2, err := NewHTTP(HTTPOptions{URL: srv.URL, BufferPath: buf, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Pending() != pending {
		t.Fatalf("restart found %d bytes unsent, want %d", s2.Pending(), pending)
	}
	for s2.Pending() > 0 {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the buffer left by the last run was never sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["big\""] == 0 {
		t.Fatalf("the buffered events were not sent after restart: %v", len(got))
	}
}
