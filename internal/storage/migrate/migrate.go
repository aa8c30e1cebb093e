// Package migrate copies a Keyward store from one storage backend to
// another (bbolt to PostgreSQL when a single node grows into a cluster).
//
// It works below the barrier: values are copied exactly as sealed, so no
// key is needed and nothing is re-encrypted (DESIGN.md invariant 1 holds in
// transit too). The copy is made in key order, one batch per transaction, so
// it can be interrupted and resumed: the largest key already in the target
// is where the next run starts. Verify then reads both stores end to end and
// compares the number of keys and a SHA-256 over every key and value.
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/keyward/keyward/internal/storage"
)

// Options tune Copy.
type Options struct {
	// BatchSize is the number of keys per target transaction; 0 means 500.
	BatchSize int
	// Progress, when not nil, is called after each committed batch.
	Progress func(copied int, lastKey string)
}

// Summary describes a store's contents.
type Summary struct {
	Keys     int
	Bytes    int64
	Checksum [32]byte
}

// ErrTargetDiverged means the target holds keys the source does not, or
// different values: it is not a partial copy of the source.
var ErrTargetDiverged = errors.New("migrate: the target store is not empty and is not a partial copy of the source")

// Copy copies every key of src that dst does not have yet, in key order.
// It returns the number of keys it copied in this run.
func Copy(ctx context.Context, src, dst storage.Backend, opts Options) (int, error) {
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 500
	}
	resume, err := lastKey(ctx, dst)
	if err != nil {
		return 0, err
	}
	if resume != "" {
		// The target must be exactly the source's prefix up to resume.
		s, err := summarize(ctx, src, func(k string) bool { return k <= resume })
		if err != nil {
			return 0, err
		}
		d, err := Summarize(ctx, dst)
		if err != nil {
			return 0, err
		}
		if s != d {
			return 0, ErrTargetDiverged
		}
	}
	copied := 0
	after := resume
	for {
		type kv struct {
			k string
			v []byte
		}
		var chunk []kv
		err := src.View(ctx, func(tx storage.Tx) error {
			chunk = chunk[:0]
			return tx.Scan("", after, func(k string, v []byte) bool {
				chunk = append(chunk, kv{k, append([]byte(nil), v...)})
				return len(chunk) < batch
			})
		})
		if err != nil {
			return copied, fmt.Errorf("migrate: reading the source: %w", err)
		}
		if len(chunk) == 0 {
			return copied, nil
		}
		err = dst.Update(ctx, func(tx storage.Tx) error {
			for _, e := range chunk {
				if err := tx.Put(e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return copied, fmt.Errorf("migrate: writing the target: %w", err)
		}
		copied += len(chunk)
		after = chunk[len(chunk)-1].k
		if opts.Progress != nil {
			opts.Progress(copied, after)
		}
	}
}

func lastKey(ctx context.Context, b storage.Backend) (string, error) {
	last := ""
	err := b.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("", "", func(k string, _ []byte) bool {
			last = k
			return true
		})
	})
	return last, err
}

// Summarize counts and checksums every key and value of b.
func Summarize(ctx context.Context, b storage.Backend) (Summary, error) {
	return summarize(ctx, b, nil)
}

func summarize(ctx context.Context, b storage.Backend, include func(string) bool) (Summary, error) {
	var s Summary
	h := sha256.New()
	err := b.View(ctx, func(tx storage.Tx) error {
		return tx.Scan("", "", func(k string, v []byte) bool {
			if include != nil && !include(k) {
				return false // keys come in order: past the bound, done
			}
			s.Keys++
			s.Bytes += int64(len(k) + len(v))
			writeField(h, []byte(k))
			writeField(h, v)
			return true
		})
	})
	copy(s.Checksum[:], h.Sum(nil))
	return s, err
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// Verify compares two stores and reports both summaries; err is
// ErrTargetDiverged when they differ.
func Verify(ctx context.Context, src, dst storage.Backend) (Summary, Summary, error) {
	s, err := Summarize(ctx, src)
	if err != nil {
		return s, Summary{}, err
	}
	d, err := Summarize(ctx, dst)
	if err != nil {
		return s, d, err
	}
	if s != d {
		return s, d, ErrTargetDiverged
	}
	return s, d, nil
}
