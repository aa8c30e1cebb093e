// Package storage is Keyward's ordered key-value store with transactions.
//
// A Backend knows nothing about vaults, secrets or encryption: it stores opaque
// byte values under string keys and keeps them in ascending byte order of the
// key. Everything Keyward writes arrives here already sealed by the barrier
// (DESIGN.md invariant 1), so a backend is "completely untrusted": it sees
// names and ciphertext, never plaintext.
//
// Backends: bolt (embedded, default), mem (tests), postgres (high
// availability). One conformance suite, storagetest.Run, defines the contract
// every backend must pass.
package storage

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Tx.Get when the key does not exist.
var ErrNotFound = errors.New("storage: key not found")

// ErrUnavailable wraps failures of the underlying store that are expected to
// be temporary (a database that cannot be reached). The HTTP layer answers
// them with 503 and Retry-After.
var ErrUnavailable = errors.New("storage: backend unavailable")

// Backend is an ordered key-value store with serializable transactions.
type Backend interface {
	// View runs fn in a read-only transaction with a consistent snapshot.
	View(ctx context.Context, fn func(Tx) error) error

	// Update runs fn in a read-write transaction. When Update returns nil the
	// transaction has been committed durably (fsync or database commit).
	// If fn returns an error nothing it wrote is kept and Update returns that
	// error. fn may be called more than once (conflict retry, group commit),
	// so it must have no effect outside the transaction.
	Update(ctx context.Context, fn func(Tx) error) error

	// Close releases the backend. No method may be called after Close.
	Close() error
}

// Tx is a transaction. It is valid only inside the function it was passed
// to and must not be used from more than one goroutine.
//
// Keys are arbitrary non-empty byte strings (NUL bytes and invalid UTF-8
// included). Keep them to at most 1024 bytes: every backend accepts that
// much, and longer keys fail in some (PostgreSQL's B-tree index takes about
// 2.7 KB, bbolt 32 KiB).
type Tx interface {
	// Get returns the value stored under key, or ErrNotFound. The caller
	// owns the returned slice.
	Get(key string) ([]byte, error)

	// Put stores value under key, replacing any previous value. The backend
	// copies value; the caller may reuse it. A nil value is stored as an
	// empty one. Put with an empty key, or on a read-only transaction,
	// returns an error.
	Put(key string, value []byte) error

	// Delete removes key. Deleting a key that does not exist is not an error;
	// Delete on a read-only transaction is.
	Delete(key string) error

	// Scan calls fn for each key that starts with prefix, in ascending byte
	// order, beginning with the first key strictly greater than after (or
	// the first key with the prefix when after is ""). It stops when fn
	// returns false or the keys with the prefix are exhausted. value is only
	// valid during the call to fn; copy it to keep it. fn must not modify the
	// transaction.
	Scan(prefix, after string, fn func(key string, value []byte) bool) error
}
