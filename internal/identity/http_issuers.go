package identity

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/netguard"
)

// The token service's outbound HTTP: external issuers' discovery
// documents and key sets (issuers.go decides what to fetch and trusts).
//
// The issuer a federated identity credential names is chosen by whoever
// may write the application's credentials, not by the operator, so every
// fetch goes through a netguard.Policy ([federation] allowed_hosts): the
// discovery URL, the jwks_uri it names and every redirect hop are checked
// against the list and, on the address actually dialled, against the
// rule for loopback, private and link-local addresses. Without it a
// client assertion naming such an issuer would make the server send GETs
// to its own loopback, the network behind it or a metadata endpoint.

const (
	issuerFetchTimeout = 10 * time.Second
	maxIssuerRedirects = 3
)

// IssuerFetch configures the fetching of external issuers' discovery
// documents and key sets.
type IssuerFetch struct {
	// Guard decides where the fetch may connect; nil: any host name at a
	// public address (netguard.New(nil, false)).
	Guard *netguard.Policy
	// Roots are the CAs trusted for issuers; nil: the system roots.
	Roots *x509.CertPool
	// Log, when not nil, is told of every failed fetch (the token
	// endpoint answers only that the issuer's keys could not be
	// obtained): a slog-style Warn.
	Log func(msg string, args ...any)
}

// SetIssuerFetch sets how external issuers' discovery documents and key
// sets are fetched. Only HTTPS URLs are ever fetched.
func (a *Authority) SetIssuerFetch(o IssuerFetch) {
	f := httpFetcher(o)
	a.ext.mu.Lock()
	a.ext.fetch = f
	a.ext.mu.Unlock()
}

// defaultFetcher is the fetcher of an Authority nobody configured: any
// public host, system roots, no log. Built once so its connections are
// shared.
var defaultFetcher = sync.OnceValue(func() fetcher { return httpFetcher(IssuerFetch{}) })

// httpFetcher fetches HTTPS URLs where o.Guard allows.
func httpFetcher(o IssuerFetch) fetcher {
	g := o.Guard
	if g == nil {
		g, _ = netguard.New(nil, false) // an empty list is always valid
		g.Named("[federation] allowed_hosts")
	}
	client := issuerClient(g, o.Roots)
	return func(ctx context.Context, u string) ([]byte, error) {
		raw, err := fetch(ctx, client, g, u)
		if err != nil && o.Log != nil {
			host := ""
			if pu, perr := url.Parse(u); perr == nil {
				host = pu.Hostname()
			}
			if errors.Is(err, netguard.ErrRefused) {
				o.Log("federated credential issuer refused", "host", host, "error", err)
			} else {
				o.Log("federated credential issuer fetch failed", "host", host, "error", err)
			}
		}
		return raw, err
	}
}

// issuerClient connects only where g allows (each connection checked on
// the address dialled), follows at most maxIssuerRedirects redirects and
// only to https URLs g allows, and gives up after issuerFetchTimeout.
func issuerClient(g *netguard.Policy, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: issuerFetchTimeout,
		Transport: &http.Transport{
			Proxy:                 g.Proxy,
			DialContext:           g.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          10,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   issuerFetchTimeout,
			ResponseHeaderTimeout: issuerFetchTimeout,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxIssuerRedirects {
				return errors.New("too many redirects")
			}
			if req.URL.Scheme != "https" {
				return errors.New("redirect to a URL that is not https")
			}
			return g.Check(req.Context(), req.URL.Hostname())
		},
	}
}

func fetch(ctx context.Context, client *http.Client, g *netguard.Policy, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "https" || pu.Host == "" || pu.User != nil {
		return nil, errors.New("only https URLs without user info are fetched")
	}
	if err := g.Check(ctx, pu.Hostname()); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
}
