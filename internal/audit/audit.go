// Package audit records one event for every request Keyward answers.
//
// An Event is a typed struct with no field that can hold a secret value, key
// material, a token or a password (DESIGN.md invariant 3): callers fill in
// who asked for what and how it ended, never what was exchanged. Events go to
// Sinks; the file sink writes one JSON line per event. Hash chaining and
// further sinks are added as Sinks wrapping or beside the file sink, without
// touching the handlers that produce events.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Result classifies how a request ended.
type Result string

const (
	Allowed         Result = "allowed"         // authorized and succeeded
	Denied          Result = "denied"          // authenticated but not authorized (or blocked by network rules)
	Failed          Result = "failed"          // authorized but failed (bad input, not found, conflict, server error)
	Unauthenticated Result = "unauthenticated" // no or invalid credentials
)

// Caller identifies who made a request. IDs only: never a token.
type Caller struct {
	TenantID string `json:"tenant_id,omitempty"`
	ObjectID string `json:"oid,omitempty"`
	AppID    string `json:"appid,omitempty"`
	IP       string `json:"ip,omitempty"`
}

// Event is one audited request.
type Event struct {
	Time       time.Time `json:"time"`
	RequestID  string    `json:"request_id"`
	Caller     Caller    `json:"caller"`
	Service    string    `json:"service"`             // "vault", "identity", "sys", ...
	Vault      string    `json:"vault,omitempty"`     // vault name for data-plane requests
	Operation  string    `json:"operation"`           // e.g. "SecretGet", "TokenIssue"
	ObjectID   string    `json:"object_id,omitempty"` // full object URL or principal ID
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	APIVersion string    `json:"api_version,omitempty"`
	Status     int       `json:"status"`
	Result     Result    `json:"result"`
	ErrorCode  string    `json:"error_code,omitempty"` // Azure error code, never a message with data in it
	Reason     string    `json:"reason,omitempty"`     // why denied (missing action), fixed vocabulary
	LatencyMS  float64   `json:"latency_ms"`
	UserAgent  string    `json:"user_agent,omitempty"`
}

// Sink receives events. Write must be safe for concurrent use.
type Sink interface {
	Write(ctx context.Context, e *Event) error
	Close() error
}

// FileSink appends events as JSON lines to a file.
//
// Concurrent Writes are group-written: each appends its line to the
// pending batch, and one of them writes the whole batch with a single
// write(2) while the others wait for it, so a busy server makes one system
// call per batch instead of one per request. Every Write still returns only
// once its own line is in the file.
//
// The file holds only whole lines. A batch that is written only in part (a
// full disk makes write(2) short) is cut off again: the file is truncated
// back to where the batch began, and every Write of that batch fails, so
// the caller can refuse the request it was auditing. If the cut fails too,
// the next batch starts with a newline, so that the torn line stands alone
// and the lines after it stay readable; the same holds for a file that a
// crash left ending mid-line.
type FileSink struct {
	mu       sync.Mutex
	cond     sync.Cond // signalled when a batch has been written
	f        file
	pending  *batch // lines not yet handed to write(2)
	writing  bool   // a batch is being written
	spareBuf []byte // the buffer of the last written batch, for reuse
	torn     bool   // the file does not end with a newline: start the next batch on a fresh line
	failures uint64 // batches that failed to be written
}

// file is what FileSink needs of an *os.File opened for appending.
type file interface {
	io.Writer
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Sync() error
	Close() error
}

// batch is the lines one write(2) carries and its outcome.
type batch struct {
	buf  []byte
	done bool
	err  error
}

// OpenFile opens (creating, mode 0600) the audit log at path for appending.
func OpenFile(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	torn, err := endsTorn(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return newFileSink(f, torn), nil
}

func newFileSink(f file, torn bool) *FileSink {
	s := &FileSink{f: f, pending: &batch{buf: make([]byte, 0, 4096)}, torn: torn}
	s.cond.L = &s.mu
	return s
}

// endsTorn reports whether f is non-empty and does not end with a newline.
func endsTorn(f *os.File) (bool, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return false, err
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], fi.Size()-1); err != nil {
		return false, err
	}
	return last[0] != '\n', nil
}

// Failures returns how many batches could not be written (each failed every
// Write it carried).
func (s *FileSink) Failures() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

var errSinkClosed = errors.New("audit: sink closed")

// Write appends e as one line. The line reaches the file (not only a
// buffer) before Write returns.
func (s *FileSink) Write(_ context.Context, e *Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errSinkClosed
	}
	b := s.pending
	n := len(b.buf)
	var err error
	if b.buf, err = e.AppendJSON(b.buf); err != nil {
		b.buf = b.buf[:n]
		return err
	}
	b.buf = append(b.buf, '\n')
	for !b.done {
		if s.writing {
			s.cond.Wait()
			continue
		}
		s.writeBatch()
	}
	return b.err
}

// writeBatch writes the pending batch; s.mu is held on entry and exit but
// not during the system call, so other Writes can fill the next batch.
func (s *FileSink) writeBatch() {
	b := s.pending
	s.pending = &batch{buf: s.spareBuf[:0]}
	s.spareBuf = nil
	s.writing = true
	f := s.f
	buf := b.buf
	if s.torn {
		buf = append([]byte{'\n'}, buf...)
	}
	torn := s.torn
	s.mu.Unlock()
	err := errSinkClosed
	if f != nil {
		var n int
		n, err = f.Write(buf)
		switch {
		case err == nil && n < len(buf):
			err = io.ErrShortWrite
			fallthrough
		case err != nil && n > 0:
			// Cut back, the file is as before this batch; else torn.
			if !cutBack(f, n) {
				torn = true
			}
		case err == nil:
			torn = false
		}
		if err != nil {
			err = fmt.Errorf("audit: writing %d events: %w", countLines(b.buf), err)
		}
	}
	s.mu.Lock()
	s.writing = false
	s.torn = torn
	if err != nil {
		s.failures++
	}
	b.done, b.err = true, err
	if cap(b.buf) <= 1<<20 {
		s.spareBuf = b.buf[:0]
	}
	b.buf = nil
	s.cond.Broadcast()
}

// cutBack removes the n bytes a short write appended to f. The file is
// opened for appending and only this sink writes it, so they are its last
// n bytes. It reports whether the file again ends with a whole line.
func cutBack(f file, n int) bool {
	fi, err := f.Stat()
	if err != nil || fi.Size() < int64(n) {
		return false
	}
	return f.Truncate(fi.Size()-int64(n)) == nil
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

// Close writes what is pending, syncs and closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	for s.writing || len(s.pending.buf) > 0 {
		if s.writing {
			s.cond.Wait()
			continue
		}
		s.writeBatch()
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	s.f = nil
	return err
}

// ErrUnavailable is returned (wrapped) when no sink durably accepted an
// event. The HTTP layer answers it with 503 and Retry-After: a request whose
// event cannot be recorded is refused (DESIGN.md invariant 3).
var ErrUnavailable = errors.New("audit: sink unavailable")

// Log fans events out to sinks. Every sink is required: an event counts as
// recorded only when all of them accepted it.
type Log struct {
	sinks []Sink
	// OnError is called when a sink fails; nil ignores failures. It must not
	// log the event's content beyond its request ID.
	OnError func(err error)

	failures  atomic.Uint64 // writes that some sink refused
	unhealthy atomic.Bool   // the last write failed
}

// NewLog returns a Log writing to sinks.
func NewLog(onError func(error), sinks ...Sink) *Log {
	return &Log{sinks: sinks, OnError: onError}
}

// Record writes e to every sink and returns once each has accepted it (the
// file sink: the line is in the file), or an error wrapping ErrUnavailable.
// A nil Log records nothing and succeeds.
func (l *Log) Record(ctx context.Context, e *Event) error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, s := range l.sinks {
		if err := s.Write(ctx, e); err != nil {
			errs = append(errs, err)
			if l.OnError != nil {
				l.OnError(err)
			}
		}
	}
	if len(errs) > 0 {
		l.failures.Add(1)
		l.unhealthy.Store(true)
		return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
	}
	if l.unhealthy.Load() {
		l.unhealthy.Store(false)
	}
	return nil
}

// Healthy reports whether the last event was accepted by every sink.
func (l *Log) Healthy() bool { return l == nil || !l.unhealthy.Load() }

// Failures is the number of events some sink refused since start.
func (l *Log) Failures() uint64 {
	if l == nil {
		return 0
	}
	return l.failures.Load()
}

// Close closes every sink.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, s := range l.sinks {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// MemorySink keeps events in memory, for tests.
type MemorySink struct {
	mu     sync.Mutex
	events []Event
}

// Write stores a copy of e.
func (m *MemorySink) Write(_ context.Context, e *Event) error {
	m.mu.Lock()
	m.events = append(m.events, *e)
	m.mu.Unlock()
	return nil
}

// Close does nothing.
func (m *MemorySink) Close() error { return nil }

// Events returns a copy of the events written so far.
func (m *MemorySink) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}
