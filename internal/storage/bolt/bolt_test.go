package bolt_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bberrors "go.etcd.io/bbolt/errors"

	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/bolt"
	"github.com/keyward/keyward/internal/storage/storagetest"
)

// crashChildEnv, when set to a file path, turns the test binary into the
// writer that TestKillDurability kills.
const crashChildEnv = "KEYWARD_TEST_BOLT_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

func openTemp(t *testing.T) *bolt.Backend {
	t.Helper()
	b, err := bolt.Open(filepath.Join(t.TempDir(), "keyward.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return openTemp(t) })
}

func TestDurable(t *testing.T) {
	storagetest.RunDurable(t, func(t *testing.T) func() storage.Backend {
		path := filepath.Join(t.TempDir(), "keyward.db")
		return func() storage.Backend {
			b, err := bolt.Open(path, bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	})
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("file mode %v, want no access for group and others", perm)
	}
}

// TestSecondOpenFails checks that a file in use is reported, not waited on
// forever. flock conflicts between two opens even within one process.
func TestSecondOpenFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	b2, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		b2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, bberrors.ErrTimeout) {
		t.Errorf("second Open: %v, want a lock timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v to fail", d)
	}
}

// TestKillDurability checks invariant 2: an Update that has returned
// survives the writer being killed with SIGKILL. A child process (this test
// binary, see TestMain) writes from several goroutines and prints each key
// once its Update has returned; the test kills it mid-stream, reopens the
// file and checks every acknowledged key. SIGKILL loses no page cache, so
// this tests that Update acknowledges only committed transactions and that
// the file is consistent after an abrupt stop, not fsync against power loss.
func TestKillDurability(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyward.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	const killAfter = 1000
	var acked []string
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a line without its newline was cut off by the kill
		}
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, strings.TrimSuffix(line, "\n"))
		if len(acked) == killAfter {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if len(acked) < killAfter {
		t.Fatalf("child stopped after %d acknowledged writes: %v", len(acked), err)
	}
	t.Logf("child killed (%v) after %d acknowledged writes", err, len(acked))

	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer b.Close()
	err = b.View(t.Context(), func(tx storage.Tx) error {
		for _, k := range acked {
			v, err := tx.Get(k)
			if err != nil {
				return fmt.Errorf("acknowledged key %q: %w", k, err)
			}
			if string(v) != crashValue(k) {
				return fmt.Errorf("acknowledged key %q has value %q", k, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func crashValue(key string) string { return strings.Repeat(key, 8) }

// crashChild writes keys from 8 goroutines until it is killed, printing each
// key after its Update returns. It gives up after a minute so that it cannot
// outlive a parent that died.
func crashChild(path string) {
	b, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("w%d/%07d", g, i)
				err := b.Update(context.Background(), func(tx storage.Tx) error {
					return tx.Put(k, []byte(crashValue(k)))
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				os.Stdout.WriteString(k + "\n") // one write: a whole line or nothing
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Minute)
	os.Exit(3)
}

// BenchmarkUpdate measures durable writes of distinct keys. With one writer
// every Update waits for its own fsync; with many, group commit shares one
// fsync among all the Updates of a batch. Compare writes/s.
func BenchmarkUpdate(b *testing.B) {
	value := make([]byte, 256)
	b.Run("serial", func(b *testing.B) {
		db := openBench(b)
		i := 0
		for b.Loop() {
			i++
			k := fmt.Sprintf("k/%d", i)
			if err := db.Update(b.Context(), func(tx storage.Tx) error { return tx.Put(k, value) }); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	})
	for _, p := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("parallel=%dxGOMAXPROCS", p), func(b *testing.B) {
			db := openBench(b)
			var n atomic.Int64
			b.SetParallelism(p)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := fmt.Sprintf("k/%d", n.Add(1))
					if err := db.Update(b.Context(), func(tx storage.Tx) error { return tx.Put(k, value) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// BenchmarkViewGet measures concurrent point reads.
func BenchmarkViewGet(b *testing.B) {
	db := openBench(b)
	const keys = 10000
	err := db.Update(b.Context(), func(tx storage.Tx) error {
		for i := range keys {
			if err := tx.Put(fmt.Sprintf("k/%d", i), make([]byte, 256)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprintf("k/%d", n.Add(1)%keys)
			if err := db.View(b.Context(), func(tx storage.Tx) error { _, err := tx.Get(k); return err }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkScanPage reads a page of 25 keys from the middle of a million:
// Scan must seek to after, so the time does not grow with the keys before it.
func BenchmarkScanPage(b *testing.B) {
	db := openBench(b)
	const keys, perTx = 1_000_000, 100_000
	for start := 0; start < keys; start += perTx {
		err := db.Update(b.Context(), func(tx storage.Tx) error {
			for i := start; i < start+perTx; i++ {
				if err := tx.Put(fmt.Sprintf("k/%07d", i), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	after := fmt.Sprintf("k/%07d", keys*9/10)
	for b.Loop() {
		n := 0
		err := db.View(b.Context(), func(tx storage.Tx) error {
			return tx.Scan("k/", after, func(string, []byte) bool { n++; return n < 25 })
		})
		if err != nil || n != 25 {
			b.Fatalf("Scan: %d keys, %v", n, err)
		}
	}
}

func openBench(b *testing.B) *bolt.Backend {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// TestMlock runs the conformance suite on a locked file, and checks that
// the file's pages are locked (VmLck) while it is open, including after it
// grew.
func TestMlock(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := bolt.Open(filepath.Join(t.TempDir(), "keyward.db"), bolt.Options{Mlock: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})

	before := lockedKB(t)
	b, err := bolt.Open(filepath.Join(t.TempDir(), "keyward.db"), bolt.Options{Mlock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	value := make([]byte, 4096)
	for i := range 512 { // 2 MiB: the file grows and is remapped
		err := b.Update(context.Background(), func(tx storage.Tx) error {
			return tx.Put(fmt.Sprintf("k%05d", i), value)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if after := lockedKB(t); after < before+2048 {
		t.Fatalf("VmLck %d kB after writing 2 MiB to a locked file, %d kB before", after, before)
	}
}

func lockedKB(t *testing.T) int {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmLck:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmLck in /proc/self/status")
	return 0
}
