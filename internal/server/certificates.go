package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/keyward/keyward/internal/certificates"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/keyward/keyward/internal/acme"
	"github.com/keyward/keyward/internal/mail"
)

// SMTPConfig is the mail server certificate lifetime actions
// (EmailContacts) send through (docs/CERTIFICATES.md).
type SMTPConfig struct {
	// Addr is host:port of the SMTP server.
	Addr string
	// From is the sender address.
	From string
	// Username and Password authenticate (AUTH PLAIN) when Username is set.
	// cmd/keyward reads the password from a file or the environment.
	Username string
	Password string
	// TLS is "starttls" (default), "tls" (implicit) or "none" (clear text:
	// a relay on the same host, tests).
	TLS string
	// Roots, when not nil, replaces the system roots for the server.
	Roots *x509.CertPool
}

// ACMEConfig configures ACME issuers (docs/CERTIFICATES.md).
type ACMEConfig struct {
	// HTTP01Listen, when set, is the plain-HTTP address of Keyward's
	// built-in HTTP-01 responder (":80", or a port a proxy forwards
	// /.well-known/acme-challenge/ to).
	HTTP01Listen string
	// HookURL is an https endpoint that solves challenges (DNS-01 by
	// default) on Keyward's behalf; HookSecret signs its requests.
	HookURL    string
	HookSecret []byte
	// HookChallenge is "dns-01" (default) or "http-01".
	HookChallenge string
	// AllowedDirectories restricts the directory URLs ACME issuers may name.
	AllowedDirectories []string
	// Roots, when not nil, are trusted for ACME servers and the hook.
	Roots *x509.CertPool
}

// certState is what the certificate machinery runs besides the vault
// service: the HTTP-01 responder's listener.
type certState struct {
	http01   *http.Server
	http01Ln net.Listener
}

func (c *Config) validateCertificates() []error {
	var errs []error
	if m := c.SMTP; m != nil {
		if _, _, err := net.SplitHostPort(m.Addr); err != nil {
			errs = append(errs, fmt.Errorf("smtp address %q: %w", m.Addr, err))
		}
		if m.From == "" {
			errs = append(errs, errors.New("smtp from address is required"))
		}
	}
	a := c.ACME
	if a.HTTP01Listen != "" {
		if _, _, err := net.SplitHostPort(a.HTTP01Listen); err != nil {
			errs = append(errs, fmt.Errorf("acme http01 listen address %q: %w", a.HTTP01Listen, err))
		}
	}
	if a.HookURL != "" {
		if u, err := url.Parse(a.HookURL); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("acme hook URL %q must be https://", a.HookURL))
		}
	}
	switch a.HookChallenge {
	case "", acme.DNS01, acme.HTTP01:
	default:
		errs = append(errs, fmt.Errorf("acme hook challenge %q must be dns-01 or http-01", a.HookChallenge))
	}
	return errs
}

// startCertificates makes the mailer and the ACME client the vault
// service is built with, and starts the HTTP-01 responder.
func (s *Server) startCertificates() (certificates.ExternalCA, certificates.Mailer, error) {
	var mailer certificates.Mailer
	if m := s.cfg.SMTP; m != nil {
		sender, err := mail.New(mail.Config{Addr: m.Addr, From: m.From, Username: m.Username, Password: m.Password,
			TLS: m.TLS, Roots: m.Roots})
		if err != nil {
			return nil, nil, err
		}
		mailer = sender
	}
	a := s.cfg.ACME
	var responder *acme.Responder
	if a.HTTP01Listen != "" {
		ln, err := net.Listen("tcp", a.HTTP01Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("acme http01 listener: %w", err)
		}
		responder = acme.NewResponder()
		s.certs.http01Ln = ln
		s.certs.http01 = &http.Server{Handler: responder, ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxHeaderBytes: 8 << 10}
		go func() {
			if err := s.certs.http01.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("acme http-01 responder stopped", "error", err)
			}
		}()
	}
	cfg := acme.Config{Roots: a.Roots, HookURL: a.HookURL, HookSecret: a.HookSecret, HookChallenge: a.HookChallenge,
		AllowedDirectories: a.AllowedDirectories, Clock: s.clock}
	if responder != nil {
		cfg.HTTP01 = responder
	}
	issuer, err := acme.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return issuer, mailer, nil
}

// stopCertificates stops background ACME orders and the responder.
func (s *Server) stopCertificates() {
	if s.certificates != nil {
		s.certificates.Shutdown()
	}
	if s.certs.http01 != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.certs.http01.Shutdown(ctx)
		cancel()
	} else if s.certs.http01Ln != nil {
		s.certs.http01Ln.Close()
	}
}

// ACMEHTTP01Addr is the address of the HTTP-01 responder ("" if none).
func (s *Server) ACMEHTTP01Addr() string {
	if s.certs.http01Ln == nil {
		return ""
	}
	return s.certs.http01Ln.Addr().String()
}
