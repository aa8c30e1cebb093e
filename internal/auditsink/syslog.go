package auditsink

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// Syslog sends events as RFC 5424 messages over TCP with TLS, framed by
// octet counting (RFC 5425). A Write returns once the message was written
// to the connection; a broken connection is dialled again once per Write.
type Syslog struct {
	addr    string
	tls     *tls.Config
	host    string
	timeout time.Duration

	mu   sync.Mutex
	conn net.Conn
	buf  []byte
	line []byte
}

// SyslogOptions configure a Syslog sink.
type SyslogOptions struct {
	// Addr is host:port of the collector (TLS).
	Addr string
	// TLS verifies the collector (RootCAs, ServerName); nil: system roots.
	TLS *tls.Config
	// Hostname names this node in the header; empty: os.Hostname.
	Hostname string
	// Timeout bounds dialling and each write; zero: 5 s.
	Timeout time.Duration
}

// NewSyslog returns a syslog sink; it dials on the first Write.
func NewSyslog(o SyslogOptions) *Syslog {
	h := o.Hostname
	if h == "" {
		h, _ = os.Hostname()
	}
	if h == "" {
		h = "-"
	}
	cfg := o.TLS
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(o.Addr)
	}
	to := o.Timeout
	if to == 0 {
		to = 5 * time.Second
	}
	return &Syslog{addr: o.Addr, tls: cfg, host: h, timeout: to}
}

// facility local0 (16); severity info (6), or warning (4) for a request
// that was denied or unauthenticated.
const facility = 16

// Write sends e as one RFC 5424 message.
func (s *Syslog) Write(_ context.Context, e *audit.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.line, err = e.AppendJSON(s.line[:0]); err != nil {
		return err
	}
	sev := 6
	if e.Result == audit.Denied || e.Result == audit.Unauthenticated {
		sev = 4
	}
	// <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
	msg := append(s.buf[:0], '<')
	msg = strconv.AppendInt(msg, int64(facility*8+sev), 10)
	msg = append(msg, ">1 "...)
	msg = e.Time.UTC().AppendFormat(msg, "2006-01-02T15:04:05.000000Z07:00")
	msg = append(msg, ' ')
	msg = append(msg, s.host...)
	msg = append(msg, " keyward "...)
	msg = strconv.AppendInt(msg, int64(os.Getpid()), 10)
	msg = append(msg, " AuditEvent - "...)
	msg = append(msg, s.line...)
	frame := strconv.AppendInt(make([]byte, 0, len(msg)+8), int64(len(msg)), 10)
	frame = append(frame, ' ')
	frame = append(frame, msg...)
	s.buf = msg
	for attempt := 0; ; attempt++ {
		if s.conn == nil {
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: s.timeout}, Config: s.tls}
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			c, derr := d.DialContext(ctx, "tcp", s.addr)
			cancel()
			if derr != nil {
				return fmt.Errorf("syslog %s: %w", s.addr, derr)
			}
			s.conn = c
		}
		s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
		_, err = s.conn.Write(frame)
		if err == nil {
			return nil
		}
		s.conn.Close()
		s.conn = nil
		if attempt == 1 {
			return fmt.Errorf("syslog %s: %w", s.addr, err)
		}
	}
}

// Close closes the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
}
