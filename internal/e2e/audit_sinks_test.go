package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// collector is a TLS HTTP endpoint that takes batches of JSON lines, as a
// log collector does.
type collector struct {
	srv    *httptest.Server
	caFile string
	mu     sync.Mutex
	events []audit.Event
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Authorization") != "Splunk test-token" {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		c.mu.Lock()
		defer c.mu.Unlock()
		for sc.Scan() {
			var ev audit.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				http.Error(w, "bad line", http.StatusBadRequest)
				return
			}
			c.events = append(c.events, ev)
		}
	}))
	t.Cleanup(c.srv.Close)
	c.caFile = filepath.Join(t.TempDir(), "collector-ca.pem")
	if err := os.WriteFile(c.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *collector) has(pred func(audit.Event) bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ev := range c.events {
		if pred(ev) {
			return true
		}
	}
	return false
}

// syslogReceiver is a TLS syslog collector reading RFC 5425 frames.
type syslogReceiver struct {
	addr   string
	caFile string
	mu     sync.Mutex
	msgs   []string
}

func newSyslogReceiver(t *testing.T) *syslogReceiver {
	ts := httptest.NewUnstartedServer(nil) // only for its certificate
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	caFile := filepath.Join(t.TempDir(), "syslog-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600)
	ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &syslogReceiver{addr: ln.Addr().String(), caFile: caFile}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					n, err := br.ReadString(' ')
					if err != nil {
						return
					}
					size, err := strconv.Atoi(strings.TrimSpace(n))
					if err != nil || size <= 0 || size > 1<<20 {
						return
					}
					msg := make([]byte, size)
					if _, err := ioReadFull(br, msg); err != nil {
						return
					}
					r.mu.Lock()
					r.msgs = append(r.msgs, string(msg))
					r.mu.Unlock()
				}
			}(conn)
		}
	}()
	return r
}

func ioReadFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// fillDisk writes to dir until the filesystem is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

// TestAuditSinksFailClosed (issue #17): with the audit file on a full disk
// and the file sink required, requests are refused with 503 and change
// nothing; with the file best-effort and a healthy HTTP collector (and a
// syslog collector) beside it, the same requests succeed and their events
// reach the collectors.
func TestAuditSinksFailClosed(t *testing.T) {
	for _, withSecond := range []bool{false, true} {
		t.Run(map[bool]string{false: "file required", true: "second healthy sink"}[withSecond], func(t *testing.T) {
			dir := t.TempDir()
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", dir).CombinedOutput(); err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("cannot mount a tmpfs: %v: %s", err, out)
				}
				t.Skipf("cannot mount a tmpfs (%v: %s); needs root", err, bytes.TrimSpace(out))
			}
			t.Cleanup(func() { exec.Command("umount", dir).Run() })
			opts := kwtest.Options{AuditPath: filepath.Join(dir, "audit.log")}
			var col *collector
			var sys *syslogReceiver
			if withSecond {
				col, sys = newCollector(t), newSyslogReceiver(t)
				opts.Audit = server.AuditConfig{FileBestEffort: true, Sinks: []server.AuditSinkConfig{
					{Type: "http", Required: true, URL: col.srv.URL + "/services/collector/raw", CAFile: col.caFile,
						Header: map[string]string{"Authorization": "Splunk test-token"}},
					{Type: "syslog", Address: sys.addr, CAFile: sys.caFile},
				}}
			}
			e := kwtest.Start(t, opts)
			tok := tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0])
			url := e.Info.VaultURL + "secrets/guarded?api-version=7.4"
			if r := do(t, e, "PUT", url, tok, "application/json", `{"value":"before"}`); r.Status != http.StatusOK {
				t.Fatalf("set: %d %s", r.Status, r.Body)
			}
			filler := fillDisk(t, dir)
			r := do(t, e, "PUT", url, tok, "application/json", `{"value":"while-full"}`)
			base := strings.TrimSuffix(e.Info.AuthorityHost, "/")
			if !withSecond {
				if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
					t.Fatalf("write with the required audit file full: %d %s", r.Status, r.Body)
				}
				if r := do(t, e, "GET", url, tok, "", ""); r.Status != http.StatusServiceUnavailable || strings.Contains(r.Body, "before") {
					t.Fatalf("read with the required audit file full: %d %s", r.Status, r.Body)
				}
				rr := do(t, e, "GET", base+"/readyz", "", "", "")
				if rr.Status != http.StatusServiceUnavailable || !strings.Contains(rr.Body, `"name":"file"`) {
					t.Fatalf("readyz: %d %s", rr.Status, rr.Body)
				}
				os.Remove(filler)
				if r := do(t, e, "GET", url, tok, "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, `"value":"before"`) {
					t.Fatalf("after the disk has room: %d %s (the refused write must have changed nothing)", r.Status, r.Body)
				}
				return
			}
			if r.Status != http.StatusOK {
				t.Fatalf("write with the file full but the collector healthy: %d %s", r.Status, r.Body)
			}
			if r := do(t, e, "GET", url, tok, "", ""); r.Status != http.StatusOK || !strings.Contains(r.Body, "while-full") {
				t.Fatalf("read: %d %s", r.Status, r.Body)
			}
			if rr := do(t, e, "GET", base+"/readyz", "", "", ""); rr.Status != http.StatusOK {
				t.Fatalf("readyz with a best-effort sink failing: %d %s", rr.Status, rr.Body)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !col.has(func(ev audit.Event) bool {
				return ev.OperationName == "SecretSet" && ev.Status == 200 && strings.Contains(ev.Properties.RequestURI, "/secrets/guarded")
			}) {
				if time.Now().After(deadline) {
					t.Fatal("the collector never got the SecretSet events")
				}
				time.Sleep(50 * time.Millisecond)
			}
			sys.mu.Lock()
			n := len(sys.msgs)
			var first string
			if n > 0 {
				first = sys.msgs[0]
			}
			sys.mu.Unlock()
			if n == 0 || !strings.HasPrefix(first, "<") || !strings.Contains(first, ">1 ") || !strings.Contains(first, " keyward ") || !strings.Contains(first, `"category":"AuditEvent"`) {
				t.Fatalf("syslog got %d messages, first %q", n, first)
			}
			var fileState audit.SinkState
			for _, st := range e.Server.AuditSinks() {
				if st.Name == "file" {
					fileState = st
				}
			}
			if fileState.Healthy || fileState.Failures == 0 {
				t.Fatalf("file sink state %+v, want unhealthy with failures", fileState)
			}
			os.Remove(filler)
		})
	}
}
