package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// DevInfo is the part of a dev server's dev.json the tool needs
// (DESIGN.md, dev server contract).
type DevInfo struct {
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	VaultURL     string `json:"vault_url"`
	CAFile       string `json:"ca_file"`
	Listen       string `json:"listen"`
	// HSM is the dev server's SoftHSM2 token (absent without SoftHSM2):
	// the HSM operations' raw side signs in it from this process.
	HSM *DevHSM `json:"hsm,omitempty"`
}

// DevHSM locates the dev server's SoftHSM2 token (dev.json "hsm").
type DevHSM struct {
	Module       string `json:"module"`
	SoftHSM2Conf string `json:"softhsm2_conf"`
	TokenLabel   string `json:"token_label"`
	UserPIN      string `json:"user_pin"`
}

// ReadDevInfo reads dev.json.
func ReadDevInfo(path string) (*DevInfo, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := new(DevInfo)
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if d.VaultURL == "" || d.Listen == "" || d.CAFile == "" || d.ClientID == "" {
		return nil, fmt.Errorf("%s: vault_url, listen, ca_file and client_id are required", path)
	}
	if !strings.HasSuffix(d.VaultURL, "/") {
		d.VaultURL += "/"
	}
	return d, nil
}

// newTransport returns a transport that trusts the CA in caFile and dials
// every host to addr: what an /etc/hosts entry for *.vault.localhost does.
// With http2 false each worker keeps its own HTTP/1.1 keep-alive
// connection; with http2 true all requests share one multiplexed one.
func newTransport(caFile, addr string, conns int, http2 bool) (*http.Transport, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no CA certificate in %s", caFile)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns + 4,
		MaxIdleConnsPerHost: conns + 4,
		IdleConnTimeout:     90 * time.Second,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2: http2,
	}
	if !http2 {
		// A non-nil empty map turns HTTP/2 off.
		t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		t.MaxConnsPerHost = conns + 4
	}
	return t, nil
}

// token gets and refreshes a bearer token the way an SDK does: the vault's
// 401 challenge names the authority and the resource, and the token
// endpoint issues a client_credentials token for resource/.default.
type token struct {
	hc    *http.Client
	d     *DevInfo
	mu    sync.Mutex
	value string
	exp   time.Time
}

// get returns a token valid for at least another five minutes.
func (t *token) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.value != "" && time.Until(t.exp) > 5*time.Minute {
		return t.value, nil
	}
	authority, resource, err := t.challenge(ctx)
	if err != nil {
		return "", err
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {t.d.ClientID},
		"client_secret": {t.d.ClientSecret},
		"scope":         {resource + "/.default"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(authority, "/")+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := t.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("token endpoint: %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: %d %s", resp.StatusCode, body.Error)
	}
	t.value, t.exp = body.AccessToken, time.Now().Add(time.Duration(body.ExpiresIn)*time.Second)
	return t.value, nil
}

// challenge sends an unauthenticated request and parses the 401's
// WWW-Authenticate header: Bearer authorization="...", resource="...".
func (t *token) challenge(ctx context.Context) (authority, resource string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.d.VaultURL+"secrets?api-version=7.6", nil)
	if err != nil {
		return "", "", err
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("challenge: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return "", "", fmt.Errorf("challenge: expected 401, got %d", resp.StatusCode)
	}
	params := map[string]string{}
	h := strings.TrimSpace(resp.Header.Get("WWW-Authenticate"))
	h, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return "", "", errors.New("challenge: not a Bearer challenge")
	}
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			params[k] = strings.Trim(v, `"`)
		}
	}
	authority, resource = params["authorization"], params["resource"]
	if authority == "" || resource == "" {
		return "", "", errors.New("challenge: authorization or resource missing")
	}
	return authority, resource, nil
}
