// Package storagetest is the conformance suite for storage.Backend.
//
// Run checks the contract documented in package storage: byte-ordered keys,
// prefix scans with paging, read-your-writes and rollback in Update, read-only
// View, copied values, and serializable transactions under concurrency.
// RunDurable adds the checks for a backend that keeps its data across Close.
// A backend is done when its tests call Run (and RunDurable, if it persists)
// and they pass.
//
// The suite tests only what package storage promises. It must never reach
// into a particular backend, and only test code may import it.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keyward/keyward/internal/storage"
)

// Run runs the conformance suite. open is called once per subtest and must
// return a backend over new, empty storage; Run closes it when the subtest
// ends.
func Run(t *testing.T, open func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"EmptyValue", testEmptyValue},
		{"EmptyKey", testEmptyKey},
		{"LargeValue", testLargeValue},
		{"LongKey", testLongKey},
		{"ByteOrder", testByteOrder},
		{"ScanPrefixAfter", testScanPrefixAfter},
		{"ScanPaging", testScanPaging},
		{"ScanStopsEarly", testScanStopsEarly},
		{"GetDuringScan", testGetDuringScan},
		{"ReadYourWrites", testReadYourWrites},
		{"Rollback", testRollback},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"PutCopiesValue", testPutCopiesValue},
		{"GetNotAliased", testGetNotAliased},
		{"ContextCanceled", testContextCanceled},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ConsistentSnapshots", testConsistentSnapshots},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := open(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, b)
		})
	}
}

// RunDurable checks that committed data survives Close. newStore is called
// once and must create new, empty storage (a file, a database) and return a
// function that opens a backend over it. RunDurable calls that function
// several times, each time after closing the backend it opened before, and
// closes the last one itself.
func RunDurable(t *testing.T, newStore func(t *testing.T) (open func() storage.Backend)) {
	t.Run("Reopen", func(t *testing.T) {
		open := newStore(t)
		b := open()
		rng := rand.New(rand.NewChaCha8([32]byte{1}))
		want := map[string][]byte{
			"empty":     {},
			"large":     randomBytes(rng, 1<<20),
			"\xff\x00k": []byte("binary key"),
		}
		for i := range 100 {
			want[fmt.Sprintf("k/%03d", i)] = []byte(strconv.Itoa(i))
		}
		update(t, b, func(tx storage.Tx) error {
			for k, v := range want {
				if err := tx.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		update(t, b, func(tx storage.Tx) error { return tx.Delete("k/005") })
		delete(want, "k/005")
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		b = open()
		checkContents(t, b, want)
		putKey(t, b, "after-reopen", []byte("x"))
		want["after-reopen"] = []byte("x")
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		b = open()
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		checkContents(t, b, want)
	})
}

var errBoom = errors.New("storagetest: boom")

func testGetPutDelete(t *testing.T, b storage.Backend) {
	if _, err := getKey(t, b, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of missing key: err = %v, want ErrNotFound", err)
	}
	putKey(t, b, "k", []byte("v1"))
	wantValue(t, b, "k", "v1")
	putKey(t, b, "k", []byte("v2"))
	wantValue(t, b, "k", "v2")
	update(t, b, func(tx storage.Tx) error { return tx.Delete("k") })
	if _, err := getKey(t, b, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	// Deleting a missing key is not an error.
	update(t, b, func(tx storage.Tx) error { return tx.Delete("k") })
	update(t, b, func(tx storage.Tx) error { return tx.Delete("never-existed") })
	// An Update that writes nothing commits.
	update(t, b, func(tx storage.Tx) error { return nil })
}

func testEmptyValue(t *testing.T, b storage.Backend) {
	update(t, b, func(tx storage.Tx) error {
		if err := tx.Put("nil", nil); err != nil {
			return err
		}
		return tx.Put("empty", []byte{})
	})
	for _, k := range []string{"nil", "empty"} {
		v, err := getKey(t, b, k)
		if err != nil || len(v) != 0 {
			t.Errorf("Get(%q) = %q, %v; want empty value, nil", k, v, err)
		}
	}
	got := scanAll(t, b, "", "")
	if want := []string{"empty", "nil"}; !slices.Equal(keysOf(got), want) {
		t.Errorf("Scan keys = %q, want %q", keysOf(got), want)
	}
}

func testEmptyKey(t *testing.T, b storage.Backend) {
	err := b.Update(t.Context(), func(tx storage.Tx) error { return tx.Put("", []byte("v")) })
	if err == nil {
		t.Errorf("Put with an empty key succeeded, want an error")
	}
	if _, err := getKey(t, b, ""); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(\"\"): err = %v, want ErrNotFound", err)
	}
}

func testLargeValue(t *testing.T, b storage.Backend) {
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	big := randomBytes(rng, 1<<20)
	putKey(t, b, "large", big)
	v, err := getKey(t, b, "large")
	if err != nil || string(v) != string(big) {
		t.Fatalf("Get of 1 MiB value: len %d, err %v; want the value written", len(v), err)
	}
	got := scanAll(t, b, "", "")
	if len(got) != 1 || string(got[0].value) != string(big) {
		t.Fatalf("Scan did not return the 1 MiB value")
	}
}

func testLongKey(t *testing.T, b storage.Backend) {
	k := strings.Repeat("k", 1024)
	putKey(t, b, k, []byte("v"))
	wantValue(t, b, k, "v")
}

// orderedKeys are distinct keys in ascending byte order: keys that are
// prefixes of each other, NUL bytes, bytes above 0x7f in multi-byte UTF-8 and
// in invalid UTF-8.
var orderedKeys = []string{
	"\x00",
	"\x00\x00",
	"A",
	"Z",
	"a",
	"a\x00",
	"a\x01",
	"aa",
	"aaa",
	"ab",
	"a\x7f",
	"a\x80",
	"a\xff",
	"b",
	"z",
	"\u007f",
	"é",          // c3 a9
	"ÿ",          // c3 bf
	"Ā",          // c4 80
	"\uffff",     // ef bf bf
	"\U0001F511", // f0 9f 94 91
	"\xff",
	"\xff\x00",
	"\xff\xff",
	"\xff\xff\xff",
}

func testByteOrder(t *testing.T, b storage.Backend) {
	if !slices.IsSorted(orderedKeys) {
		t.Fatal("orderedKeys is not sorted")
	}
	shuffled := slices.Clone(orderedKeys)
	rand.New(rand.NewChaCha8([32]byte{3})).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	// Half in one transaction, half one per transaction.
	half := len(shuffled) / 2
	update(t, b, func(tx storage.Tx) error {
		for _, k := range shuffled[:half] {
			if err := tx.Put(k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	for _, k := range shuffled[half:] {
		putKey(t, b, k, []byte(k))
	}
	got := scanAll(t, b, "", "")
	if !slices.Equal(keysOf(got), orderedKeys) {
		t.Fatalf("Scan order:\n got %q\nwant %q", keysOf(got), orderedKeys)
	}
	for _, e := range got {
		if string(e.value) != e.key {
			t.Errorf("value of %q = %q", e.key, e.value)
		}
	}
	for _, k := range orderedKeys {
		wantValue(t, b, k, k)
	}
}

func testScanPrefixAfter(t *testing.T, b storage.Backend) {
	// Includes the LIKE wildcards % and _ and prefixes ending in 0xff, whose
	// upper bound cannot be formed by incrementing the last byte.
	keys := []string{
		"a", "a%", "a%b", "a_", "a_b", "aa", "ab", "abc", "abd", "a\xff", "a\xff\xff", "a\xffb",
		"b", "ba", "\xff", "\xff\x00", "\xff\xff", "\xff\xffz",
	}
	update(t, b, func(tx storage.Tx) error {
		for _, k := range keys {
			if err := tx.Put(k, []byte("v:"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	slices.Sort(keys)

	// A few cases spelled out, so the suite does not rest on reference alone.
	literal := []struct {
		prefix, after string
		want          []string
	}{
		{"a%", "", []string{"a%", "a%b"}},
		{"a_", "", []string{"a_", "a_b"}},
		{"ab", "", []string{"ab", "abc", "abd"}},
		{"ab", "ab", []string{"abc", "abd"}},
		{"ab", "abc", []string{"abd"}},
		{"ab", "abca", []string{"abd"}},
		{"ab", "abd", nil},
		{"ab", "a", []string{"ab", "abc", "abd"}},
		{"a\xff", "", []string{"a\xff", "a\xffb", "a\xff\xff"}},
		{"\xff", "", []string{"\xff", "\xff\x00", "\xff\xff", "\xff\xffz"}},
		{"\xff\xff", "", []string{"\xff\xff", "\xff\xffz"}},
		{"", "b", []string{"ba", "\xff", "\xff\x00", "\xff\xff", "\xff\xffz"}},
		{"", "\xff\xffz", nil},
		{"c", "", nil},
		{"abcd", "", nil},
	}
	for _, c := range literal {
		if got := keysOf(scanAll(t, b, c.prefix, c.after)); !slices.Equal(got, c.want) {
			t.Errorf("Scan(%q, %q) = %q, want %q", c.prefix, c.after, got, c.want)
		}
	}

	prefixes := []string{"", "a", "a%", "a_", "ab", "abc", "abcd", "a\xff", "a\xff\xff", "b", "c", "\xff", "\xff\xff", "\xff\xff\xff"}
	afters := []string{"", "\x00", "a", "a%", "a%a", "aa", "ab", "abc", "a\xff", "a\xff\xff", "b", "bz", "\xff", "\xff\xff", "\xff\xff\xff"}
	for _, prefix := range prefixes {
		for _, after := range afters {
			var want []string
			for _, k := range keys {
				if strings.HasPrefix(k, prefix) && k > after {
					want = append(want, k)
				}
			}
			got := scanAll(t, b, prefix, after)
			if !slices.Equal(keysOf(got), want) {
				t.Errorf("Scan(%q, %q) = %q, want %q", prefix, after, keysOf(got), want)
			}
			for _, e := range got {
				if string(e.value) != "v:"+e.key {
					t.Errorf("Scan(%q, %q): value of %q = %q", prefix, after, e.key, e.value)
				}
			}
		}
	}
}

func testScanPaging(t *testing.T, b storage.Backend) {
	const n, pageSize = 1000, 25
	var want []string
	update(t, b, func(tx storage.Tx) error {
		// Neighbours just outside the prefix on both sides.
		for _, k := range []string{"page", "page.", "page0", "pag/1", "pagf/1", "paga"} {
			if err := tx.Put(k, []byte("outside")); err != nil {
				return err
			}
		}
		for i := range n {
			k := fmt.Sprintf("page/%d", i) // not zero-padded: byte order is not numeric order
			want = append(want, k)
			if err := tx.Put(k, []byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	slices.Sort(want)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > n/pageSize+1 {
			t.Fatalf("paging did not end after %d pages", pages)
		}
		var page []string
		view(t, b, func(tx storage.Tx) error {
			return tx.Scan("page/", after, func(k string, v []byte) bool {
				if string(v) != k {
					t.Errorf("value of %q = %q", k, v)
				}
				page = append(page, k)
				return len(page) < pageSize
			})
		})
		if len(page) > pageSize {
			t.Fatalf("page has %d keys, fn asked to stop at %d", len(page), pageSize)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged Scan returned %d keys, want %d in order, each once", len(got), len(want))
	}
}

func testScanStopsEarly(t *testing.T, b storage.Backend) {
	update(t, b, func(tx storage.Tx) error {
		for i := range 10 {
			if err := tx.Put(fmt.Sprintf("k%d", i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	calls := 0
	view(t, b, func(tx storage.Tx) error {
		return tx.Scan("", "", func(string, []byte) bool {
			calls++
			return calls < 3
		})
	})
	if calls != 3 {
		t.Errorf("fn called %d times after returning false on call 3", calls)
	}
}

func testGetDuringScan(t *testing.T, b storage.Backend) {
	update(t, b, func(tx storage.Tx) error {
		for i := range 5 {
			if err := tx.Put(fmt.Sprintf("item/%d", i), []byte(fmt.Sprintf("ref/%d", i))); err != nil {
				return err
			}
			if err := tx.Put(fmt.Sprintf("ref/%d", i), []byte(strconv.Itoa(i))); err != nil {
				return err
			}
		}
		return nil
	})
	for name, run := range map[string]func(context.Context, func(storage.Tx) error) error{"View": b.View, "Update": b.Update} {
		n := 0
		err := run(t.Context(), func(tx storage.Tx) error {
			var getErr error
			err := tx.Scan("item/", "", func(k string, v []byte) bool {
				var ref []byte
				ref, getErr = tx.Get(string(v))
				if getErr != nil {
					return false
				}
				if want := strings.TrimPrefix(k, "item/"); string(ref) != want {
					getErr = fmt.Errorf("Get(%q) = %q, want %q", v, ref, want)
					return false
				}
				n++
				return true
			})
			return errors.Join(err, getErr)
		})
		if err != nil || n != 5 {
			t.Errorf("%s: Get inside Scan: %d of 5 items, err %v", name, n, err)
		}
	}
}

func testReadYourWrites(t *testing.T, b storage.Backend) {
	update(t, b, func(tx storage.Tx) error {
		for _, k := range []string{"a", "b", "c", "e"} {
			if err := tx.Put(k, []byte("old:"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	want := []kv{{"a", []byte("old:a")}, {"b", []byte("new:b")}, {"ba", []byte("new:ba")}, {"d", []byte("new:d")}, {"e", []byte("again:e")}}
	update(t, b, func(tx storage.Tx) error {
		steps := []error{
			tx.Put("b", []byte("new:b")),   // overwrite
			tx.Delete("c"),                 // delete committed
			tx.Put("d", []byte("new:d")),   // insert
			tx.Put("f", []byte("new:f")),   // insert, then
			tx.Delete("f"),                 // delete it again
			tx.Delete("e"),                 // delete committed, then
			tx.Put("e", []byte("again:e")), // put it back
			tx.Put("ba", []byte("new:ba")),
		}
		if err := errors.Join(steps...); err != nil {
			return err
		}
		if v, err := tx.Get("b"); err != nil || string(v) != "new:b" {
			t.Errorf("Get(b) in Update = %q, %v; want own write", v, err)
		}
		for _, k := range []string{"c", "f"} {
			if _, err := tx.Get(k); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get(%q) in Update after Delete: err = %v, want ErrNotFound", k, err)
			}
		}
		if got := scanTx(t, tx, "", ""); !equalKVs(got, want) {
			t.Errorf("Scan in Update = %v, want %v", got, want)
		}
		if got := scanTx(t, tx, "b", "b"); !equalKVs(got, want[2:3]) {
			t.Errorf("Scan(b, b) in Update = %v, want %v", got, want[2:3])
		}
		return nil
	})
	if got := scanAll(t, b, "", ""); !equalKVs(got, want) {
		t.Errorf("Scan after commit = %v, want %v", got, want)
	}
}

func testRollback(t *testing.T, b storage.Backend) {
	putKey(t, b, "x", []byte("1"))
	putKey(t, b, "y", []byte("1"))
	err := b.Update(t.Context(), func(tx storage.Tx) error {
		if err := errors.Join(tx.Put("x", []byte("2")), tx.Delete("y"), tx.Put("z", []byte("1"))); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	want := []kv{{"x", []byte("1")}, {"y", []byte("1")}}
	if got := scanAll(t, b, "", ""); !equalKVs(got, want) {
		t.Errorf("after failed Update: %v, want %v", got, want)
	}
}

func testViewIsReadOnly(t *testing.T, b storage.Backend) {
	putKey(t, b, "k", []byte("v"))
	view(t, b, func(tx storage.Tx) error {
		if err := tx.Put("k", []byte("changed")); err == nil {
			t.Error("Put in View succeeded")
		}
		if err := tx.Put("new", []byte("v")); err == nil {
			t.Error("Put of a new key in View succeeded")
		}
		if err := tx.Delete("k"); err == nil {
			t.Error("Delete in View succeeded")
		}
		return nil
	})
	want := []kv{{"k", []byte("v")}}
	if got := scanAll(t, b, "", ""); !equalKVs(got, want) {
		t.Errorf("after writes in View: %v, want %v", got, want)
	}
}

func testPutCopiesValue(t *testing.T, b storage.Backend) {
	update(t, b, func(tx storage.Tx) error {
		buf := []byte("abc")
		if err := tx.Put("k", buf); err != nil {
			return err
		}
		copy(buf, "XYZ")
		if err := tx.Put("k2", buf); err != nil {
			return err
		}
		copy(buf, "123")
		if v, err := tx.Get("k"); err != nil || string(v) != "abc" {
			t.Errorf("Get in Update after reusing the buffer = %q, %v; want \"abc\"", v, err)
		}
		return nil
	})
	wantValue(t, b, "k", "abc")
	wantValue(t, b, "k2", "XYZ")
}

func testGetNotAliased(t *testing.T, b storage.Backend) {
	putKey(t, b, "k", []byte("value"))
	mutate := func(tx storage.Tx) error {
		v, err := tx.Get("k")
		if err != nil {
			return err
		}
		copy(v, "XXXXX")
		v, err = tx.Get("k")
		if err != nil {
			return err
		}
		if string(v) != "value" {
			t.Errorf("Get after mutating an earlier result = %q", v)
		}
		return nil
	}
	view(t, b, mutate)
	update(t, b, mutate)
	wantValue(t, b, "k", "value")
}

func testContextCanceled(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	called := false
	err := b.Update(ctx, func(tx storage.Tx) error {
		called = true
		return tx.Put("k", []byte("v"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a canceled context: err = %v, want context.Canceled", err)
	}
	err = b.View(ctx, func(storage.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("View with a canceled context: err = %v, want context.Canceled", err)
	}
	if called {
		t.Error("fn called despite a canceled context")
	}
	if _, err := getKey(t, b, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Update with a canceled context wrote: Get err = %v", err)
	}
}

// testConcurrentIncrements checks serializability: concurrent
// read-modify-write transactions on one key lose no update.
func testConcurrentIncrements(t *testing.T, b storage.Backend) {
	const writers, increments = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range increments {
				err := b.Update(t.Context(), func(tx storage.Tx) error {
					n := 0
					v, err := tx.Get("counter")
					switch {
					case errors.Is(err, storage.ErrNotFound):
					case err != nil:
						return err
					default:
						if n, err = strconv.Atoi(string(v)); err != nil {
							return err
						}
					}
					return tx.Put("counter", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update: %v", err)
	}
	wantValue(t, b, "counter", strconv.Itoa(writers*increments))
}

// testConsistentSnapshots checks that readers running during writes never see
// a transaction half applied, and that a View sees one snapshot throughout.
func testConsistentSnapshots(t *testing.T, b storage.Backend) {
	const rounds, readers = 200, 4
	write := func(i int) error {
		return b.Update(t.Context(), func(tx storage.Tx) error {
			v := []byte(strconv.Itoa(i))
			keys := []string{"snap/a", "snap/b", "snap/c"}
			if i%2 == 1 {
				slices.Reverse(keys)
			}
			for _, k := range keys {
				if err := tx.Put(k, v); err != nil {
					return err
				}
			}
			if i%3 == 0 {
				return tx.Delete("snap/d")
			}
			return tx.Put("snap/d", v)
		})
	}
	if err := write(0); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, readers+1)
	wg.Go(func() {
		defer stop()
		for i := 1; i <= rounds; i++ {
			if err := write(i); err != nil {
				errs <- err
				return
			}
		}
	})
	for range readers {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := b.View(t.Context(), func(tx storage.Tx) error {
					first, err := tx.Get("snap/a")
					if err != nil {
						return err
					}
					var seen []string
					err = tx.Scan("snap/", "", func(k string, v []byte) bool {
						seen = append(seen, k+"="+string(v))
						return true
					})
					if err != nil {
						return err
					}
					again, err := tx.Get("snap/c")
					if err != nil {
						return err
					}
					i, _ := strconv.Atoi(string(first))
					want := []string{"snap/a=" + string(first), "snap/b=" + string(first), "snap/c=" + string(first)}
					if i%3 != 0 {
						want = append(want, "snap/d="+string(first))
					}
					if !slices.Equal(seen, want) || string(again) != string(first) {
						return fmt.Errorf("inconsistent snapshot: Get(snap/a) = %s, Scan = %q, then Get(snap/c) = %s", first, seen, again)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// kv is one key-value pair returned by a scan.
type kv struct {
	key   string
	value []byte
}

func (e kv) String() string { return fmt.Sprintf("%q=%q", e.key, e.value) }

func keysOf(kvs []kv) []string {
	var keys []string
	for _, e := range kvs {
		keys = append(keys, e.key)
	}
	return keys
}

func equalKVs(a, b []kv) bool {
	return slices.EqualFunc(a, b, func(x, y kv) bool { return x.key == y.key && string(x.value) == string(y.value) })
}

func update(t *testing.T, b storage.Backend, fn func(storage.Tx) error) {
	t.Helper()
	if err := b.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, b storage.Backend, fn func(storage.Tx) error) {
	t.Helper()
	if err := b.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func putKey(t *testing.T, b storage.Backend, key string, value []byte) {
	t.Helper()
	update(t, b, func(tx storage.Tx) error { return tx.Put(key, value) })
}

func getKey(t *testing.T, b storage.Backend, key string) ([]byte, error) {
	t.Helper()
	var v []byte
	var getErr error
	view(t, b, func(tx storage.Tx) error {
		v, getErr = tx.Get(key)
		return nil
	})
	return v, getErr
}

func wantValue(t *testing.T, b storage.Backend, key, want string) {
	t.Helper()
	v, err := getKey(t, b, key)
	if err != nil || string(v) != want {
		t.Fatalf("Get(%q) = %q, %v; want %q", key, v, err, want)
	}
}

func scanTx(t *testing.T, tx storage.Tx, prefix, after string) []kv {
	t.Helper()
	var got []kv
	err := tx.Scan(prefix, after, func(k string, v []byte) bool {
		got = append(got, kv{k, slices.Clone(v)})
		return true
	})
	if err != nil {
		t.Fatalf("Scan(%q, %q): %v", prefix, after, err)
	}
	return got
}

func scanAll(t *testing.T, b storage.Backend, prefix, after string) []kv {
	t.Helper()
	var got []kv
	view(t, b, func(tx storage.Tx) error {
		got = scanTx(t, tx, prefix, after)
		return nil
	})
	return got
}

func checkContents(t *testing.T, b storage.Backend, want map[string][]byte) {
	t.Helper()
	got := scanAll(t, b, "", "")
	if len(got) != len(want) {
		t.Errorf("after reopen: %d keys, want %d", len(got), len(want))
	}
	for _, e := range got {
		if w, ok := want[e.key]; !ok || string(w) != string(e.value) {
			t.Errorf("after reopen: key %q has a value of %d bytes, want %d bytes (present: %v)", e.key, len(e.value), len(w), ok)
		}
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}
