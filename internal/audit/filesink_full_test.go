package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFileSinkFullDiskTmpfs fills a real 64 KiB tmpfs with audit events:
// every Write that returned nil is in the file once, whole; every Write
// that failed is not; and after space is freed the next lines start on
// their own line (issue 12.2: a short write used to leave half a line that
// the next batch was glued onto). It needs root to mount; without it, the
// injected-file tests below cover the same paths.
func TestFileSinkFullDiskTmpfs(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); TestFileSinkShortWrite covers this at the file layer", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	// A filler takes most of the space, so the log fills after a few pages.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 48<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "audit.log")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fillAndRecover(t, s, path, false, func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFileSinkShortWrite is the same at the file layer: a file whose
// write(2) stops part-way with ENOSPC once a quota is spent.
func TestFileSinkShortWrite(t *testing.T) {
	for _, failCut := range []bool{false, true} {
		t.Run(fmt.Sprintf("truncateFails=%v", failCut), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			ff := &fullFile{File: f, quota: 5000, failTruncate: failCut}
			s := newFileSink(ff, false)
			defer s.Close()
			fillAndRecover(t, s, path, failCut, func() {
				ff.mu.Lock()
				ff.quota = 1 << 30
				ff.mu.Unlock()
			})
			ff.mu.Lock()
			defer ff.mu.Unlock()
			if ff.short == 0 {
				t.Fatal("no write was short: the test did not exercise a torn line")
			}
		})
	}
}

// TestFileSinkOpensTornFile: a file a crash left ending mid-line gets its
// next line on a fresh line.
func TestFileSinkOpensTornFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"time":"2026-12-04T01:31`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(context.Background(), &Event{RequestID: "after"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(lines) != 2 || !json.Valid([]byte(lines[1])) {
		t.Fatalf("file %q: the new event is not on a line of its own", raw)
	}
}

// fillAndRecover writes events from several goroutines until writes fail,
// frees space, writes more, and checks the file against what Write said.
// With allowTorn (the sink could not cut a short write back), a torn
// fragment may stand on a line of its own, but never glued to another.
func fillAndRecover(t *testing.T, s *FileSink, path string, allowTorn bool, free func()) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	ok, failed := map[string]bool{}, map[string]bool{}
	write := func(id string) error {
		err := s.Write(ctx, &Event{RequestID: id, Time: time.Unix(1, 0).UTC(), Service: "vault", Operation: "SecretGet",
			Path: "/secrets/" + strings.Repeat("x", 100), Method: "GET", Status: 200, Result: Allowed})
		mu.Lock()
		if err == nil {
			ok[id] = true
		} else {
			failed[id] = true
		}
		mu.Unlock()
		return err
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				err := write(fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Errorf("Write failed with %v, want ENOSPC", err)
					}
					// A few more after the first failure, then stop.
					mu.Lock()
					enough := len(failed) > 20
					mu.Unlock()
					if enough {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		t.Fatal("the disk never filled")
	}
	if s.Failures() == 0 {
		t.Fatal("Failures() is 0 after failed writes")
	}
	free()
	for i := range 50 {
		if err := write(fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatalf("write after freeing space: %v", err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen, torn := map[string]bool{}, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if !allowTorn || strings.Count(sc.Text(), `{"time"`) > 1 {
				t.Fatalf("torn line %q: %v", sc.Text(), err)
			}
			torn++
			continue
		}
		if seen[e.RequestID] {
			t.Fatalf("%s twice", e.RequestID)
		}
		if failed[e.RequestID] {
			t.Fatalf("%s is in the file but its Write failed", e.RequestID)
		}
		seen[e.RequestID] = true
	}
	for id := range ok {
		if !seen[id] {
			t.Fatalf("%s acknowledged but not in the file", id)
		}
	}
	if allowTorn && torn == 0 {
		t.Fatal("no torn fragment although the sink could not cut back")
	}
	t.Logf("%d events written, %d refused, %d failed batches, %d torn fragments", len(ok), len(failed), s.Failures(), torn)
}

// fullFile is an *os.File whose writes stop with ENOSPC once quota bytes
// are spent, writing the part that still fits (a short write).
type fullFile struct {
	*os.File
	mu           sync.Mutex
	quota        int
	short        int
	failTruncate bool
}

func (f *fullFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(p) <= f.quota {
		f.quota -= len(p)
		return f.File.Write(p)
	}
	n, err := f.File.Write(p[:f.quota])
	f.quota -= n
	if n > 0 {
		f.short++
	}
	if err == nil {
		err = &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return n, err
}

func (f *fullFile) Truncate(size int64) error {
	if f.failTruncate {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}
