package jobs

import (
	"fmt"
	"strconv"
	"strings"
)

// A due queue is a key range ordered by when its entries are due:
//
//	{prefix}{due}/{rest}
//
// with due in Unix seconds, twelve digits, zero-padded, so that key order
// is time order and the due part of a queue is a prefix scan that stops at
// the first entry not yet due. Purge after retention, expiry
// notifications, certificate lifetime actions, the event outbox and the
// mail outbox are due queues; this file is the one reader and writer of
// that layout.

// DueKey is the key of an entry of the queue at prefix due at due (Unix
// seconds; negative times count as 0).
func DueKey(prefix string, due int64, rest string) string {
	return fmt.Sprintf("%s%012d/%s", prefix, max(due, 0), rest)
}

// Entry is one due entry.
type Entry struct {
	Key   string
	Due   int64
	Rest  string // the key after "{due}/"
	Value []byte // DueEntries only
}

// KeyScanner lists keys in order (barrier.Tx is one).
type KeyScanner interface {
	ScanKeys(prefix, after string, fn func(key string) bool) error
}

// Scanner lists keys and values in order (barrier.Tx is one).
type Scanner interface {
	Scan(prefix, after string, fn func(key string, value []byte) bool) error
}

// DueKeys returns at most limit entries of the queue at prefix that are
// due at now, earliest first, without their values.
func DueKeys(tx KeyScanner, prefix string, now int64, limit int) ([]Entry, error) {
	var due []Entry
	err := tx.ScanKeys(prefix, "", func(key string) bool {
		e, ok := parseDue(prefix, key, now)
		if !ok {
			return false
		}
		due = append(due, e)
		return len(due) < limit
	})
	return due, err
}

// DueEntries is DueKeys with the entries' values.
func DueEntries(tx Scanner, prefix string, now int64, limit int) ([]Entry, error) {
	var due []Entry
	err := tx.Scan(prefix, "", func(key string, val []byte) bool {
		e, ok := parseDue(prefix, key, now)
		if !ok {
			return false
		}
		e.Value = val
		due = append(due, e)
		return len(due) < limit
	})
	return due, err
}

// parseDue reads an entry; ok is false at the first entry not yet due (or
// not in the layout, which ends the scan the same way).
func parseDue(prefix, key string, now int64) (Entry, bool) {
	ts, rest, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
	at, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || at > now {
		return Entry{}, false
	}
	return Entry{Key: key, Due: at, Rest: rest}, true
}
