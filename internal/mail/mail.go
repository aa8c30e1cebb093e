package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/certificates"
)

// TLS modes.
const (
	// StartTLS upgrades the connection with STARTTLS and refuses servers
	// that do not offer it (the default; port 587).
	StartTLS = "starttls"
	// ImplicitTLS connects with TLS from the first byte (port 465).
	ImplicitTLS = "tls"
	// InsecureNoTLS sends mail in clear text: only for a relay on the same
	// host or in tests.
	InsecureNoTLS = "none"
)

// Config configures the SMTP sender.
type Config struct {
	// Addr is the SMTP server, host:port.
	Addr string
	// From is the envelope and header sender address.
	From string
	// Username and Password authenticate with AUTH PLAIN when Username is set.
	Username string
	Password string
	// TLS is StartTLS (default), ImplicitTLS or InsecureNoTLS.
	TLS string
	// Roots, when not nil, replaces the system roots for the server.
	Roots *x509.CertPool
	// HelloName is sent in EHLO; empty: "localhost".
	HelloName string
	// Timeout bounds one delivery; 0 is 30 seconds.
	Timeout time.Duration
}

// Sender sends mail through one SMTP server.
type Sender struct{ cfg Config }

var _ certificates.Mailer = (*Sender)(nil)

// New validates cfg and returns a sender.
func New(cfg Config) (*Sender, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("smtp: address %q: %w", cfg.Addr, err)
	}
	if !validAddress(cfg.From) {
		return nil, fmt.Errorf("smtp: from address %q is not valid", cfg.From)
	}
	switch cfg.TLS {
	case "":
		cfg.TLS = StartTLS
	case StartTLS, ImplicitTLS, InsecureNoTLS:
	default:
		return nil, fmt.Errorf("smtp: tls must be %s, %s or %s", StartTLS, ImplicitTLS, InsecureNoTLS)
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Sender{cfg: cfg}, nil
}

func validAddress(a string) bool {
	return strings.Count(a, "@") == 1 && !strings.ContainsAny(a, " \t\r\n<>,;\"") && len(a) <= 320
}

// Send delivers m to every recipient in one SMTP transaction.
func (s *Sender) Send(ctx context.Context, m *certificates.Mail) error {
	var to []string
	for _, r := range m.To {
		if validAddress(r) {
			to = append(to, r)
		}
	}
	if len(to) == 0 {
		return errors.New("smtp: no valid recipient")
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	host, _, _ := net.SplitHostPort(s.cfg.Addr)
	tlsCfg := &tls.Config{ServerName: host, RootCAs: s.cfg.Roots, MinVersion: tls.VersionTLS12}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if s.cfg.TLS == ImplicitTLS {
		conn = tls.Client(conn, tlsCfg)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp: %w", err)
	}
	defer c.Close()
	if err := c.Hello(s.cfg.HelloName); err != nil {
		return fmt.Errorf("smtp: EHLO: %w", err)
	}
	if s.cfg.TLS == StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("smtp: the server does not offer STARTTLS (set tls = \"tls\" or, for a local relay, \"none\")")
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("smtp: STARTTLS: %w", err)
		}
	}
	if s.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, host)); err != nil {
			return fmt.Errorf("smtp: authentication failed: %w", err)
		}
	}
	if err := c.Mail(s.cfg.From); err != nil {
		return fmt.Errorf("smtp: MAIL FROM: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("smtp: RCPT TO %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp: DATA: %w", err)
	}
	if _, err := w.Write(s.message(m, to)); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	return c.Quit()
}

// message renders an RFC 5322 message: plain UTF-8 text, quoted-printable.
func (s *Sender) message(m *certificates.Mail, to []string) []byte {
	oneLine := func(v string) string { return strings.NewReplacer("\r", " ", "\n", " ").Replace(v) }
	var b bytes.Buffer
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	fmt.Fprintf(&b, "From: Keyward <%s>\r\n", s.cfg.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	fmt.Fprintf(&b, "Date: %s\r\n", date.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@keyward>\r\n", uuid.NewString())
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nAuto-Submitted: auto-generated\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(m.Body))
	qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}
