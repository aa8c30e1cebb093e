package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"
)

// leanConn is one HTTP/1.1 keep-alive connection driven by hand: the
// request is written from a reused buffer and the response read with
// http.ReadResponse. It sends exactly what net/http's client sends that
// matters to the server (request line, Host, Authorization, User-Agent,
// Content-Type, Content-Length), at a fraction of the client's CPU, so
// that on a machine shared with the server the client takes less of the
// cores the server is measured on. The server cannot tell the difference.
type leanConn struct {
	dial func(ctx context.Context) (net.Conn, error)
	host string // Host header
	auth string // "Bearer ..."

	conn  net.Conn
	br    *bufio.Reader
	wbuf  []byte
	proto string
	tls   string
}

// leanDialer returns a dial function for base's host over TLS to addr,
// trusting the CA in caFile.
func leanDialer(caFile, addr, base string, timeout time.Duration) (func(context.Context) (net.Conn, error), string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, "", err
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("no CA certificate in %s", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}, Config: cfg}
	return func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }, u.Host, nil
}

// do sends one request and returns the status code; the body is read and
// discarded unless the status is not 2xx, when up to 512 bytes are kept.
func (c *leanConn) do(ctx context.Context, method, path string, body []byte) (int, string, error) {
	if c.conn == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			return 0, "", err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 16<<10)
		if tc, ok := conn.(*tls.Conn); ok {
			c.tls = tlsName(tc.ConnectionState().Version)
		}
	}
	b := c.wbuf[:0]
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.host...)
	b = append(b, "\r\nUser-Agent: keyward-bench\r\nAuthorization: "...)
	b = append(b, c.auth...)
	if body != nil {
		b = append(b, "\r\nContent-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
	} else if method != http.MethodGet && method != http.MethodHead {
		b = append(b, "\r\nContent-Length: 0"...)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.wbuf = b
	if _, err := c.conn.Write(b); err != nil {
		c.close()
		return 0, "", err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		return 0, "", err
	}
	c.proto = resp.Proto
	var sample string
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		sample = string(raw)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		c.close()
		if err != nil && !errors.Is(err, io.EOF) {
			return resp.StatusCode, sample, err
		}
	}
	return resp.StatusCode, sample, nil
}

func (c *leanConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}
