package server

import (
	"crypto/tls"
	"log"
	"net/http"
	"time"
)

// NewHTTPServer is the http.Server every HTTPS listener of Keyward runs:
// its timeouts and header limit. net/http's ServeTLS adds HTTP/2 ("h2",
// then "http/1.1") to tlsCfg.NextProtos. `keyward bench --floor` starts a
// bare server with the same settings and TLS configuration
// (ListenerTLSConfig), so that its baseline differs from Keyward only by
// Keyward's own request pipeline.
func NewHTTPServer(h http.Handler, tlsCfg *tls.Config, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
}

// ListenerTLSConfig is the tls.Config (without certificates) of every
// HTTPS listener configured by c: versions, TLS 1.2 suites, key exchanges
// (X25519MLKEM768 first).
func ListenerTLSConfig(c TLSConfig) (*tls.Config, error) { return c.tlsConfig() }
