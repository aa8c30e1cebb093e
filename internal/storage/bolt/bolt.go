// Package bolt is the embedded storage.Backend, a single bbolt file.
//
// It owns one file, opened with mode 0600 and locked against other processes,
// holding one bucket of key-value pairs; bbolt keeps the keys in byte order and
// its B+tree lets Scan seek straight to the first key it needs. Every Update is
// committed with fsync before it returns (DESIGN.md invariant 2). Concurrent
// Updates are group-committed (group.go): the functions of several callers
// run one after another in one transaction and share one commit, which is
// what makes thousands of durable writes per second possible on one disk.
// The Updates that arrive while a commit is in progress form the next batch,
// so batches grow with the load by themselves, without a timer.
//
// The price of group commit is that an Update's function may run more than
// once: when any function in a batch fails, the batch is rolled back, the
// failing function is re-run alone and the others are re-run together. So fn
// must have no effect outside the transaction, as storage.Backend requires.
//
// bolt stores what it is given and never interprets values; it must never
// trade durability for speed (no NoSync, no unsynced writes).
package bolt

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/keyward/keyward/internal/storage"
)

// bucket is the one bucket every key lives in.
var bucket = []byte("keyward")

var (
	errReadOnly = errors.New("bolt: write in a read-only transaction")
	errNoBucket = errors.New("bolt: file has no keyward bucket")
)

var _ storage.Backend = (*Backend)(nil)

// Options configures Open. The zero value is a sensible default.
type Options struct {
	// Timeout is how long Open waits for the file lock held by another
	// process before it fails. Zero means 1 second.
	Timeout time.Duration

	// MaxBatchDelay is how long the first Update of a group commit waits for
	// others to join before committing, when no commit is in progress.
	// Updates that arrive during a commit join the next batch, which
	// commits as soon as the current one is done (and its first Update has
	// waited MaxBatchDelay). Larger values build bigger batches under light
	// load but add latency to every write. Zero means 500µs, which measured
	// best on a virtual disk with ~1ms fsync (docs/PERFORMANCE.md).
	MaxBatchDelay time.Duration

	// MaxBatchSize is the most Updates one commit carries. Zero means 1000.
	MaxBatchSize int

	// Mlock keeps the whole database file resident (mlock(2)), so that
	// reads never wait for the disk after the kernel evicted cold pages.
	// The file's size counts against RLIMIT_MEMLOCK unless the process
	// has CAP_IPC_LOCK.
	Mlock bool
}

// Backend is a storage.Backend on a bbolt file. It is safe for concurrent use.
type Backend struct {
	db *bbolt.DB
	gc groupCommit
}

// Open opens or creates the bbolt file at path. It fails if another process
// holds the file for longer than opts.Timeout.
func Open(path string, opts Options) (*Backend, error) {
	timeout := cmp.Or(opts.Timeout, time.Second)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout, Mlock: opts.Mlock})
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return &Backend{db: db, gc: groupCommit{db: db, maxBatch: cmp.Or(opts.MaxBatchSize, 1000),
		delay: cmp.Or(opts.MaxBatchDelay, 500*time.Microsecond), wake: make(chan struct{}, 1)}}, nil
}

// View runs fn in a read-only bbolt transaction, a consistent snapshot that
// does not block writers. ctx is checked only before fn starts.
func (b *Backend) View(ctx context.Context, fn func(storage.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.db.View(func(btx *bbolt.Tx) error {
		bk := btx.Bucket(bucket)
		if bk == nil {
			return errNoBucket
		}
		return fn(&tx{bk: bk})
	})
}

// Update runs fn in a read-write transaction that may be shared with other
// concurrent Updates (group commit), and returns once it has been committed
// and fsynced. fn may run more than once; see the package documentation.
// ctx is checked only before fn is queued: once queued, the write cannot be
// withdrawn.
func (b *Backend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.gc.update(fn)
}

// Close waits for open transactions to finish and closes the file.
func (b *Backend) Close() error {
	return b.db.Close()
}

type tx struct {
	bk       *bbolt.Bucket
	writable bool
}

func (tx *tx) Get(key string) ([]byte, error) {
	// Bucket.Get reports a missing key as a nil value, which is hard to tell
	// from a present empty one; comparing the cursor's key is unambiguous.
	k, v := tx.bk.Cursor().Seek([]byte(key))
	if k == nil || string(k) != key {
		return nil, storage.ErrNotFound
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

func (tx *tx) Put(key string, value []byte) error {
	if !tx.writable {
		return errReadOnly
	}
	// bbolt keeps both slices until the transaction ends; copy them so the
	// caller may reuse its buffers, as storage.Tx promises.
	v := append(make([]byte, 0, len(value)), value...)
	if err := tx.bk.Put([]byte(key), v); err != nil {
		return fmt.Errorf("bolt: put: %w", err)
	}
	return nil
}

func (tx *tx) Delete(key string) error {
	if !tx.writable {
		return errReadOnly
	}
	if key == "" {
		return nil // bbolt rejects it; it cannot exist
	}
	if err := tx.bk.Delete([]byte(key)); err != nil {
		return fmt.Errorf("bolt: delete: %w", err)
	}
	return nil
}

// Scan seeks to the first candidate key, so its cost is proportional to the
// keys it visits, not to the size of the bucket.
func (tx *tx) Scan(prefix, after string, fn func(key string, value []byte) bool) error {
	p := []byte(prefix)
	c := tx.bk.Cursor()
	k, v := c.Seek([]byte(max(prefix, after)))
	if k != nil && string(k) == after {
		k, v = c.Next()
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if !fn(string(k), v) {
			return nil
		}
	}
	return nil
}
