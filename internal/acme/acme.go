package acme

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/keyward/keyward/internal/certificates"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/events"
)

// Challenge types.
const (
	HTTP01 = "http-01"
	DNS01  = "dns-01"
)

// Config configures the ACME client.
type Config struct {
	// Roots, when not nil, are trusted for ACME servers and the hook
	// instead of the system roots (a private CA, tests).
	Roots *x509.CertPool
	// HTTP01 is Keyward's built-in HTTP-01 responder (nil: none).
	HTTP01 *Responder
	// HookURL is the challenge hook (https://; empty: none).
	HookURL string
	// HookSecret signs hook requests (Keyward-Signature); empty: unsigned.
	HookSecret []byte
	// HookChallenge is what the hook solves: "dns-01" (default) or "http-01".
	HookChallenge string
	// AllowedDirectories, when not empty, are the only directory URLs an
	// ACME issuer may name. Without it any https URL is allowed: anyone
	// who may set issuers can make Keyward send requests to it.
	AllowedDirectories []string
	// Clock stamps hook signatures; nil is the real clock.
	Clock clock.Clock
}

// Issuer is the ACME client Keyward uses for every ACME issuer.
type Issuer struct {
	cfg    Config
	client *http.Client
}

var _ certificates.ExternalCA = (*Issuer)(nil)

// New returns an ACME client.
func New(cfg Config) (*Issuer, error) {
	if cfg.HookChallenge == "" {
		cfg.HookChallenge = DNS01
	}
	if cfg.HookChallenge != DNS01 && cfg.HookChallenge != HTTP01 {
		return nil, fmt.Errorf("acme: hook challenge %q must be dns-01 or http-01", cfg.HookChallenge)
	}
	if cfg.HookURL != "" {
		u, err := url.Parse(cfg.HookURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return nil, fmt.Errorf("acme: the hook URL must be an https:// URL without credentials")
		}
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &Issuer{cfg: cfg, client: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: cfg.Roots, MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 4,
		},
	}}, nil
}

// Validate checks an issuer's directory URL.
func (i *Issuer) Validate(dir string) error {
	if i.cfg.HTTP01 == nil && i.cfg.HookURL == "" {
		return errors.New("no ACME challenge solver is configured (acme.http01_listen or acme.hook_url)")
	}
	u, err := url.Parse(dir)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("org_details.id must be the https:// URL of the ACME directory")
	}
	if len(i.cfg.AllowedDirectories) > 0 && !slices.Contains(i.cfg.AllowedDirectories, dir) {
		return errors.New("the directory URL is not in this Keyward's acme.allowed_directories")
	}
	return nil
}

// Issue runs one ACME order: account (registered on first use, with
// external account binding when the issuer has credentials), order,
// authorizations, finalize with the vault's CSR, download the chain.
func (i *Issuer) Issue(ctx context.Context, req *certificates.ExternalRequest) ([][]byte, error) {
	if err := i.Validate(req.DirectoryURL); err != nil {
		return nil, err
	}
	cl := &acme.Client{Key: req.AccountKey, DirectoryURL: req.DirectoryURL, HTTPClient: i.client, UserAgent: "keyward"}
	acct := &acme.Account{}
	for _, c := range req.Contacts {
		acct.Contact = append(acct.Contact, "mailto:"+c)
	}
	if req.EABKeyID != "" {
		acct.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: req.EABKeyID, Key: req.EABKey}
	}
	if _, err := cl.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("ACME account: %w", err)
	}
	order, err := cl.AuthorizeOrder(ctx, acme.DomainIDs(req.DNSNames...))
	if err != nil {
		return nil, fmt.Errorf("ACME order: %w", err)
	}
	for _, zurl := range order.AuthzURLs {
		if err := i.authorize(ctx, cl, req, zurl); err != nil {
			return nil, err
		}
	}
	if order, err = cl.WaitOrder(ctx, order.URI); err != nil {
		return nil, fmt.Errorf("ACME order: %w", err)
	}
	ders, _, err := cl.CreateCertFromOrder(ctx, order, req.CSR, true)
	if err != nil {
		return nil, fmt.Errorf("ACME finalize: %w", err)
	}
	return ders, nil
}

func (i *Issuer) authorize(ctx context.Context, cl *acme.Client, req *certificates.ExternalRequest, zurl string) error {
	z, err := cl.GetAuthorization(ctx, zurl)
	if err != nil {
		return fmt.Errorf("ACME authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	byHook := false
	for _, c := range z.Challenges {
		if c.Type == HTTP01 && i.cfg.HTTP01 != nil && !z.Wildcard {
			chal = c
			break
		}
	}
	if chal == nil && i.cfg.HookURL != "" {
		for _, c := range z.Challenges {
			if c.Type == i.cfg.HookChallenge {
				chal, byHook = c, true
			}
		}
	}
	if chal == nil {
		return fmt.Errorf("ACME: no configured solver for the challenges offered for %s", z.Identifier.Value)
	}
	h := Hook{Type: chal.Type, Identifier: z.Identifier.Value, Token: chal.Token, Vault: req.Vault,
		Certificate: req.Certificate, Issuer: req.Issuer}
	if h.KeyAuthorization, err = cl.HTTP01ChallengeResponse(chal.Token); err != nil {
		return err
	}
	switch chal.Type {
	case HTTP01:
		h.HTTPPath = cl.HTTP01ChallengePath(chal.Token)
	case DNS01:
		h.DNSRecordName = "_acme-challenge." + strings.TrimPrefix(z.Identifier.Value, "*.") + "."
		if h.DNSRecordValue, err = cl.DNS01ChallengeRecord(chal.Token); err != nil {
			return err
		}
	}
	if byHook {
		h.Action = "present"
		if err := i.callHook(ctx, &h); err != nil {
			return err
		}
		defer func() {
			h.Action = "cleanup"
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			i.callHook(cctx, &h) // best effort
		}()
	} else {
		i.cfg.HTTP01.put(chal.Token, h.KeyAuthorization)
		defer i.cfg.HTTP01.remove(chal.Token)
	}
	if _, err := cl.Accept(ctx, chal); err != nil {
		return fmt.Errorf("ACME challenge %s for %s: %w", chal.Type, z.Identifier.Value, err)
	}
	if _, err := cl.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("ACME authorization of %s: %w", z.Identifier.Value, err)
	}
	return nil
}

// Hook is the body of a challenge hook request.
type Hook struct {
	Action           string `json:"action"` // "present" or "cleanup"
	Type             string `json:"type"`   // "dns-01" or "http-01"
	Identifier       string `json:"identifier"`
	Token            string `json:"token"`
	KeyAuthorization string `json:"keyAuthorization"`
	DNSRecordName    string `json:"dnsRecordName,omitempty"`  // dns-01: _acme-challenge.{name}.
	DNSRecordValue   string `json:"dnsRecordValue,omitempty"` // dns-01: the TXT value
	HTTPPath         string `json:"httpPath,omitempty"`       // http-01: /.well-known/acme-challenge/{token}
	Vault            string `json:"vault"`
	Certificate      string `json:"certificate"`
	Issuer           string `json:"issuer"`
}

func (i *Issuer) callHook(ctx context.Context, h *Hook) error {
	body, err := json.Marshal(h)
	if err != nil {
		return err
	}
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, i.cfg.HookURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	rq.Header.Set("Content-Type", "application/json; charset=utf-8")
	if len(i.cfg.HookSecret) > 0 {
		rq.Header.Set("Keyward-Signature", events.Sign(i.cfg.HookSecret, body, i.cfg.Clock.Now()))
	}
	resp, err := i.client.Do(rq)
	if err != nil {
		return fmt.Errorf("ACME challenge hook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("ACME challenge hook answered %s to %s", resp.Status, h.Action)
	}
	return nil
}

// Responder answers HTTP-01 challenges: serve it on port 80 of every name
// Keyward obtains certificates for (or behind a proxy that forwards
// /.well-known/acme-challenge/ there). It is safe for concurrent use.
type Responder struct {
	mu     sync.RWMutex
	tokens map[string]string
}

// NewResponder returns an empty responder.
func NewResponder() *Responder { return &Responder{tokens: map[string]string{}} }

func (r *Responder) put(token, keyAuth string) {
	r.mu.Lock()
	r.tokens[token] = keyAuth
	r.mu.Unlock()
}

func (r *Responder) remove(token string) {
	r.mu.Lock()
	delete(r.tokens, token)
	r.mu.Unlock()
}

const challengePrefix = "/.well-known/acme-challenge/"

// ServeHTTP answers GET /.well-known/acme-challenge/{token}.
func (r *Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, challengePrefix)
	if !ok || (req.Method != http.MethodGet && req.Method != http.MethodHead) {
		http.NotFound(w, req)
		return
	}
	r.mu.RLock()
	ka, found := r.tokens[token]
	r.mu.RUnlock()
	if !found {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, ka)
}
