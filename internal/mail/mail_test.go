package mail

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/certificates"
)

func TestNewValidates(t *testing.T) {
	for _, c := range []Config{
		{Addr: "nohost", From: "a@b"},
		{Addr: "h:25", From: "not an address"},
		{Addr: "h:25", From: "a@b", TLS: "sometimes"},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	s, err := New(Config{Addr: "h:587", From: "keyward@example.com"})
	if err != nil || s.cfg.TLS != StartTLS {
		t.Fatalf("defaults: %v %+v", err, s)
	}
}

func TestMessage(t *testing.T) {
	s, _ := New(Config{Addr: "h:25", From: "keyward@example.com"})
	date := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := s.message(&certificates.Mail{Subject: "Zertifikat läuft ab\r\nBcc: evil@example.com", Body: "line one\r\nline two é\r\n", Date: date},
		[]string{"a@example.com", "b@example.com"})
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if m.Header.Get("Bcc") != "" || !strings.HasPrefix(subj, "Zertifikat läuft ab") {
		t.Fatalf("header injection or bad subject: %q %v", subj, m.Header)
	}
	if d, _ := m.Header.Date(); !d.Equal(date) || m.Header.Get("To") != "a@example.com, b@example.com" {
		t.Fatalf("headers %v", m.Header)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(m.Body))
	if !strings.Contains(string(body), "line two é") {
		t.Fatalf("body %q", body)
	}
}
