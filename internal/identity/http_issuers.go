package identity

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// The token service's outbound HTTP: external issuers' discovery
// documents and key sets (issuers.go decides what to fetch and trusts).

// SetIssuerHTTPClient sets the client used to fetch external issuers'
// discovery documents and key sets (nil: http.DefaultClient). Only HTTPS
// URLs are ever fetched.
func (a *Authority) SetIssuerHTTPClient(c *http.Client) {
	a.ext.mu.Lock()
	a.ext.fetch = httpFetcher(c)
	a.ext.mu.Unlock()
}

// httpFetcher fetches HTTPS URLs with client (nil: http.DefaultClient).
func httpFetcher(client *http.Client) fetcher {
	if client == nil {
		client = http.DefaultClient
	}
	return func(ctx context.Context, u string) ([]byte, error) { return fetch(ctx, client, u) }
}

func fetch(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "https" || pu.Host == "" {
		return nil, errors.New("only https URLs are fetched")
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
