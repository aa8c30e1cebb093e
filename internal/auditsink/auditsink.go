// Package auditsink holds the audit sinks that send events off the host:
// syslog (RFC 5424 over TCP+TLS, RFC 5425 framing), HTTP (batched JSON
// lines to any collector, with retry and a bounded disk buffer) and a
// writer (stdout). The file sink, with the hash chain, is internal/audit's.
//
// Every sink encodes an event as the same JSON line the file holds (without
// the chain's prev field, which only the file's lines can carry), so a
// collector gets Azure's AuditEvent fields and Keyward's.
package auditsink

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/keyward/keyward/internal/audit"
)

// Writer writes each event as one JSON line to w (stdout). A Write returns
// when the line was handed to w.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewWriter returns a sink writing JSON lines to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes e as one line.
func (s *Writer) Write(_ context.Context, e *audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errClosed
	}
	var err error
	if s.buf, err = e.AppendJSON(s.buf[:0]); err != nil {
		return err
	}
	s.buf = append(s.buf, '\n')
	_, err = s.w.Write(s.buf)
	return err
}

// Close stops the sink (it does not close w).
func (s *Writer) Close() error {
	s.mu.Lock()
	s.w = nil
	s.mu.Unlock()
	return nil
}

var errClosed = errors.New("auditsink: closed")
