// Package kmsprovider holds what the Key Management engine's providers
// (azurekeyvault, awskms) share: the HTTP client they reach their target
// with.
package kmsprovider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"
)

// HTTPClient returns a client that trusts the system roots plus caPEM
// (when given) and resolves "localhost" and every "*.localhost" name to
// the loopback interface (RFC 6761), so that a target may be a Keyward
// addressed as https://{vault}.vault.localhost:{port}/.
func HTTPClient(caPEM string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if strings.TrimSpace(caPEM) != "" {
		if !pool.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("ca_cert holds no PEM certificate")
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     30 * time.Second,
		Proxy:               http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil {
				h := strings.ToLower(strings.TrimSuffix(host, "."))
				if h == "localhost" || strings.HasSuffix(h, ".localhost") {
					addr = net.JoinHostPort("127.0.0.1", port)
				}
			}
			return dialer.DialContext(ctx, network, addr)
		},
	}}, nil
}
