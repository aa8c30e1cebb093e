// Package mem is an in-memory storage.Backend for tests.
//
// It keeps every key in a sorted slice guarded by one sync.RWMutex: View holds
// the read lock and Update the write lock, so transactions are serializable
// simply because writers run one at a time. An Update buffers its writes and
// applies them only when its function returns nil.
//
// mem never persists anything and never shares memory with its callers:
// values are copied on the way in and on the way out. Use it in unit tests of
// the layers above storage; never use it to hold a real vault, whose data
// would be lost when the process exits.
package mem

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/keyward/keyward/internal/storage"
)

var (
	errClosed   = errors.New("mem: backend is closed")
	errReadOnly = errors.New("mem: write in a read-only transaction")
	errEmptyKey = errors.New("mem: empty key")
	errTxDone   = errors.New("mem: transaction used after its function returned")
)

var _ storage.Backend = (*Backend)(nil)

// Backend is an in-memory storage.Backend. The zero value is not usable; call
// New.
type Backend struct {
	mu      sync.RWMutex
	entries []entry // sorted by key, keys unique
	closed  bool
}

type entry struct {
	key   string
	value []byte
}

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{}
}

// View runs fn with a read-only transaction. Writers wait until it returns.
func (b *Backend) View(ctx context.Context, fn func(storage.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return errClosed
	}
	tx := &tx{b: b}
	defer func() { tx.done = true }()
	return fn(tx)
}

// Update runs fn with a read-write transaction while holding the write lock.
// Writes are applied only if fn returns nil; fn runs exactly once.
func (b *Backend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	tx := &tx{b: b, writes: make(map[string]*[]byte)}
	err := fn(tx)
	tx.done = true
	if err != nil {
		return err
	}
	for k, v := range tx.writes {
		b.apply(k, v)
	}
	return nil
}

// Close discards the data. Later calls to View and Update fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.entries = nil
	return nil
}

// search returns the index of the first entry whose key is >= key, and
// whether that entry's key equals key.
func (b *Backend) search(key string) (int, bool) {
	return slices.BinarySearchFunc(b.entries, key, func(e entry, k string) int {
		return strings.Compare(e.key, k)
	})
}

// apply stores *v under k, or deletes k when v is nil. The caller holds the
// write lock.
func (b *Backend) apply(k string, v *[]byte) {
	i, found := b.search(k)
	switch {
	case v == nil && found:
		b.entries = slices.Delete(b.entries, i, i+1)
	case v == nil:
	case found:
		b.entries[i].value = *v
	default:
		b.entries = slices.Insert(b.entries, i, entry{key: k, value: *v})
	}
}

// tx reads the committed entries of b through writes, the uncommitted
// changes of an Update (a nil pointer marks a delete). writes is nil in a
// View.
type tx struct {
	b      *Backend
	writes map[string]*[]byte
	done   bool
}

func (tx *tx) Get(key string) ([]byte, error) {
	if tx.done {
		return nil, errTxDone
	}
	if v, ok := tx.writes[key]; ok {
		if v == nil {
			return nil, storage.ErrNotFound
		}
		return bytes.Clone(*v), nil
	}
	i, found := tx.b.search(key)
	if !found {
		return nil, storage.ErrNotFound
	}
	return bytes.Clone(tx.b.entries[i].value), nil
}

func (tx *tx) Put(key string, value []byte) error {
	switch {
	case tx.done:
		return errTxDone
	case tx.writes == nil:
		return errReadOnly
	case key == "":
		return errEmptyKey
	}
	v := append(make([]byte, 0, len(value)), value...)
	tx.writes[key] = &v
	return nil
}

func (tx *tx) Delete(key string) error {
	switch {
	case tx.done:
		return errTxDone
	case tx.writes == nil:
		return errReadOnly
	}
	tx.writes[key] = nil
	return nil
}

// Scan merges the committed entries with the transaction's own writes, so an
// Update sees what it has written.
func (tx *tx) Scan(prefix, after string, fn func(key string, value []byte) bool) error {
	if tx.done {
		return errTxDone
	}
	inRange := func(k string) bool { return k > after && strings.HasPrefix(k, prefix) }

	// The transaction's own writes in range, in key order.
	var pending []string
	for k := range tx.writes {
		if inRange(k) {
			pending = append(pending, k)
		}
	}
	slices.Sort(pending)

	start, _ := tx.b.search(max(prefix, after))
	committed := tx.b.entries[start:]
	for {
		var k string
		var v []byte
		switch {
		case len(committed) > 0 && committed[0].key == after:
			committed = committed[1:] // after itself is excluded
			continue
		case len(committed) > 0 && !inRange(committed[0].key):
			committed = nil // past the prefix
			continue
		case len(committed) > 0 && (len(pending) == 0 || committed[0].key < pending[0]):
			k, v = committed[0].key, committed[0].value
			committed = committed[1:]
		case len(pending) > 0:
			if len(committed) > 0 && committed[0].key == pending[0] {
				committed = committed[1:] // overwritten or deleted here
			}
			k = pending[0]
			pending = pending[1:]
			w := tx.writes[k]
			if w == nil {
				continue // deleted in this transaction
			}
			v = *w
		default:
			return nil
		}
		// Hand out a copy and scribble over it afterwards, so a caller that
		// keeps value past fn (against the Tx contract) fails in tests
		// instead of working by accident.
		c := bytes.Clone(v)
		more := fn(k, c)
		clear(c)
		if !more {
			return nil
		}
	}
}
