package auditsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// HTTP sends events in batches of JSON lines (application/x-ndjson) by POST
// to a collector: Loki's or Elasticsearch's JSON-lines endpoints, a Splunk
// HEC-style raw endpoint, or anything that takes lines.
//
// A Write appends the event's line to a disk buffer (BufferPath) and
// returns: the event is accepted once it is in that file. A sender sends
// what the buffer holds in batches, retries a failed batch with backoff
// (up to MaxBackoff), and drops a batch only once the collector took it.
// The buffer is bounded (BufferBytes): when the collector has been away so
// long that it is full, Writes fail, and the Log refuses the request if the
// sink is required.
type HTTP struct {
	o      HTTPOptions
	client *http.Client

	mu     sync.Mutex
	f      *os.File // the buffer, opened for appending and reading
	size   int64    // bytes in the buffer
	offset int64    // bytes of it the collector has taken
	line   []byte

	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	sent     atomic.Uint64 // events the collector took
	failures atomic.Uint64 // batches the collector refused or did not answer
}

// HTTPOptions configure an HTTP sink.
type HTTPOptions struct {
	URL string
	// Header is sent with every batch (e.g. Authorization: Splunk <token>;
	// it is never logged).
	Header http.Header
	// Client sends the batches (TLS roots, timeouts); nil: a client with a
	// 10 s timeout.
	Client *http.Client
	// BufferPath is the disk buffer; BufferPath.offset records how much of
	// it was sent.
	BufferPath string
	// BufferBytes bounds the buffer; zero: 64 MiB.
	BufferBytes int64
	// BatchBytes bounds one POST; zero: 1 MiB. FlushInterval: how often
	// the sender looks when not woken; zero: a second.
	BatchBytes    int
	FlushInterval time.Duration
	// MaxBackoff bounds the wait between retries; zero: 30 s.
	MaxBackoff time.Duration
}

// NewHTTP opens the buffer (continuing what a previous run left unsent)
// and starts the sender.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	if o.URL == "" || o.BufferPath == "" {
		return nil, errors.New("auditsink: HTTP sink needs a URL and a buffer path")
	}
	if o.BufferBytes == 0 {
		o.BufferBytes = 64 << 20
	}
	if o.BatchBytes == 0 {
		o.BatchBytes = 1 << 20
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	f, err := os.OpenFile(o.BufferPath, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &HTTP{o: o, client: o.Client, f: f, size: fi.Size(),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if raw, err := os.ReadFile(o.BufferPath + ".offset"); err == nil {
		if n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64); err == nil && n >= 0 && n <= s.size {
			s.offset = n
		}
	}
	go s.run()
	return s, nil
}

// Write appends e to the disk buffer.
func (s *HTTP) Write(_ context.Context, e *audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errClosed
	}
	var err error
	if s.line, err = e.AppendJSON(s.line[:0]); err != nil {
		return err
	}
	s.line = append(s.line, '\n')
	if s.size-s.offset+int64(len(s.line)) > s.o.BufferBytes {
		return fmt.Errorf("auditsink: HTTP buffer full (%d bytes unsent to %s)", s.size-s.offset, s.o.URL)
	}
	n, err := s.f.Write(s.line)
	if err != nil {
		if n > 0 {
			s.f.Truncate(s.size) // keep the buffer whole lines
		}
		return err
	}
	s.size += int64(n)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending is the number of bytes not yet sent.
func (s *HTTP) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size - s.offset
}

// Sent is the number of events the collector took.
func (s *HTTP) Sent() uint64 { return s.sent.Load() }

func (s *HTTP) run() {
	defer close(s.done)
	backoff := time.Duration(0)
	t := time.NewTicker(s.o.FlushInterval)
	defer t.Stop()
	for {
		if backoff > 0 {
			select {
			case <-s.stop:
				return
			case <-time.After(backoff):
			}
		} else {
			select {
			case <-s.stop:
				return
			case <-s.wake:
			case <-t.C:
			}
		}
		for {
			more, err := s.sendOne()
			if err != nil {
				s.failures.Add(1)
				backoff = min(max(2*backoff, 100*time.Millisecond), s.o.MaxBackoff)
				break
			}
			backoff = 0
			if !more {
				break
			}
		}
	}
}

// sendOne sends the next batch; more reports whether the buffer holds more.
func (s *HTTP) sendOne() (more bool, err error) {
	s.mu.Lock()
	f, off, size := s.f, s.offset, s.size
	s.mu.Unlock()
	if f == nil || off >= size {
		return false, nil
	}
	buf := make([]byte, min(size-off, int64(s.o.BatchBytes)))
	if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
		return false, err
	}
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	} else {
		// One line longer than a batch: send it alone.
		buf = make([]byte, size-off)
		if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
			return false, err
		}
	}
	req, err := http.NewRequest(http.MethodPost, s.o.URL, bytes.NewReader(buf))
	if err != nil {
		return false, err
	}
	for k, v := range s.o.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := s.client.Do(req)
	if err != nil {
		return false, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return false, fmt.Errorf("auditsink: collector answered %d", resp.StatusCode)
	}
	s.sent.Add(uint64(bytes.Count(buf, []byte("\n"))))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += int64(len(buf))
	if s.offset == s.size && s.f != nil {
		// All sent: start the buffer afresh.
		if s.f.Truncate(0) == nil {
			s.offset, s.size = 0, 0
		}
	}
	os.WriteFile(s.o.BufferPath+".offset", strconv.AppendInt(nil, s.offset, 10), 0o600)
	return s.offset < s.size, nil
}

// Close stops the sender after one last attempt to send what is buffered;
// what it could not send stays in the buffer for the next start.
func (s *HTTP) Close() error {
	s.mu.Lock()
	if s.f == nil {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	for {
		more, err := s.sendOne()
		if err != nil || !more {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.f.Close()
	s.f = nil
	return err
}
