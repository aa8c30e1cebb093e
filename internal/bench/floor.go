package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/keyward/keyward/internal/devca"
)

// The floor (`keyward bench --floor`) is the raw primitive of a secret
// read: a bare net/http TLS server, in its own process, with the TLS and
// http.Server settings of Keyward's listener, whose handler answers every
// request with the bytes and headers of a real secret-get response
// captured from the Keyward server at setup, after (optionally) the one
// cost Keyward's fail-closed audit cannot shed: a write(2) of an
// audit-sized line to an append-only file, SHA-256 chained, under a mutex.
// The client drives it right after each Keyward run with the same
// requests, headers and shape, and the report sets the two servers' CPU
// per request side by side: Keyward − floor is what Keyward's own request
// pipeline costs.

// FloorResponse is what the floor server answers, captured from Keyward.
type FloorResponse struct {
	Status int         `json:"status"`
	Header http.Header `json:"header"` // without Date and Content-Length (net/http writes those)
	// Vary names the headers whose value changed between two captured
	// responses (the request ID): the floor writes a new value of the same
	// length into them per request, so that HTTP/2's header compression
	// sees what it sees from Keyward.
	Vary []string `json:"vary,omitempty"`
	Body []byte   `json:"body"`
	// AuditLineBytes is the size of the audit log line Keyward wrote for
	// the captured request, newline included.
	AuditLineBytes int `json:"audit_line_bytes"`
}

// CaptureFloorResponse reads cfg.Op's response twice from the Keyward dev
// server of cfg.DevJSON (after the op's setup: the secret exists) and the
// size of its audit line from auditLog. Only secret-get has a floor.
func CaptureFloorResponse(ctx context.Context, cfg Config, auditLog string) (*FloorResponse, error) {
	cfg.Defaults()
	if cfg.Op != OpSecretGet {
		return nil, fmt.Errorf("the floor answers with a captured %s response; %s has none", OpSecretGet, cfg.Op)
	}
	info, err := ReadDevInfo(cfg.DevJSON)
	if err != nil {
		return nil, err
	}
	tr, err := newTransport(info.CAFile, info.Listen, 1, false)
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	s := &session{hc: hc, base: info.VaultURL, caFile: info.CAFile, addr: info.Listen, tok: &token{hc: hc, d: info}}
	o, err := setup(ctx, s, &cfg)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	tok, err := s.tok.get(ctx)
	if err != nil {
		return nil, err
	}
	rq := o.next(0, mrand.New(mrand.NewPCG(1, 2)))
	var resps [2]*http.Response
	var bodies [2][]byte
	for i := range resps {
		req, err := http.NewRequestWithContext(ctx, rq.method, s.base+rq.path, nil)
		if err != nil {
			return nil, err
		}
		// What the load sends (lean.go and session.send).
		req.Header["Authorization"] = []string{"Bearer " + tok}
		req.Header["User-Agent"] = []string{"keyward-bench"}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		bodies[i], err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("capturing the %s response: %d %s", cfg.Op, resp.StatusCode, clip(string(bodies[i]), 300))
		}
		resps[i] = resp
	}
	fr := &FloorResponse{Status: resps[0].StatusCode, Header: http.Header{}, Body: bodies[0]}
	for k, v := range resps[0].Header {
		if k == "Date" || k == "Content-Length" {
			continue
		}
		fr.Header[k] = v
		if !slices.Equal(v, resps[1].Header[k]) {
			fr.Vary = append(fr.Vary, k)
		}
	}
	slices.Sort(fr.Vary)
	if fr.AuditLineBytes, err = lastAuditLine(auditLog, resps[1].Header.Get("X-Ms-Request-Id")); err != nil {
		return nil, err
	}
	return fr, nil
}

// lastAuditLine is the length of the audit log line (newline included)
// that holds requestID.
func lastAuditLine(path, requestID string) (int, error) {
	if requestID == "" {
		return 0, errors.New("the captured response has no x-ms-request-id to find its audit line by")
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"`+requestID+`"`)) {
			n = len(sc.Bytes()) + 1
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("audit log: %w", err)
	}
	if n == 0 {
		return 0, fmt.Errorf("audit log %s: no line for request %s", path, requestID)
	}
	return n, nil
}

// FloorHandler answers every request with resp: no routing, no
// authentication, any host. With audit set it first appends one
// resp.AuditLineBytes line to audit under a mutex, SHA-256 chained (the
// line carries the hex hash of the line before it, as Keyward's audit
// lines do), and answers 500 if the write fails (fail-closed).
type FloorHandler struct {
	status int
	header http.Header // values shared by every response, len == cap
	vary   []string
	tmpl   map[string]string // a vary header's captured value
	body   []byte
	n      atomic.Uint64

	audit *os.File
	mu    sync.Mutex
	line  []byte
	prev  [sha256.Size]byte
}

// NewFloorHandler returns the floor's handler; audit may be nil (no audit
// write). The line written is resp.AuditLineBytes long (at least 72).
func NewFloorHandler(resp *FloorResponse, audit *os.File) *FloorHandler {
	h := &FloorHandler{status: resp.Status, header: http.Header{}, vary: resp.Vary, tmpl: map[string]string{}, body: resp.Body, audit: audit}
	for k, v := range resp.Header {
		h.header[k] = slices.Clip(slices.Clone(v))
	}
	h.header["Content-Length"] = []string{strconv.Itoa(len(resp.Body))}
	for _, k := range resp.Vary {
		h.tmpl[k] = h.header.Get(k)
		delete(h.header, k)
	}
	if audit != nil {
		n := max(resp.AuditLineBytes, 2*sha256.Size+8)
		h.line = bytes.Repeat([]byte{'a'}, n)
		copy(h.line[n-1-2*sha256.Size-3:], `":"`)
		h.line[n-1] = '\n'
	}
	return h
}

func (h *FloorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	if h.audit != nil {
		if err := h.record(); err != nil {
			http.Error(w, "audit write failed", http.StatusInternalServerError)
			return
		}
	}
	hdr := w.Header()
	for k, v := range h.header {
		hdr[k] = v
	}
	if len(h.vary) > 0 {
		n := h.n.Add(1)
		for _, k := range h.vary {
			hdr[k] = []string{varyValue(h.tmpl[k], n)}
		}
	}
	w.WriteHeader(h.status)
	w.Write(h.body)
}

// record appends one chained audit-sized line.
func (h *FloorHandler) record() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.line)
	hex.Encode(h.line[n-1-2*sha256.Size:n-1], h.prev[:])
	h.prev = sha256.Sum256(h.line[:n-1])
	_, err := h.audit.Write(h.line)
	return err
}

// varyValue is tmpl with its last hex digits replaced by n's, same length
// (a request ID's shape).
func varyValue(tmpl string, n uint64) string {
	b := []byte(tmpl)
	const digits = "0123456789abcdef"
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		c := b[i]
		if '0' <= c && c <= '9' || 'a' <= c && c <= 'f' {
			b[i] = digits[n&15]
			n >>= 4
		}
	}
	return string(b)
}

// WriteFloorResponse saves fr for `keyward bench floor-server`.
func WriteFloorResponse(path string, fr *FloorResponse) error {
	raw, err := json.Marshal(fr)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}

// ReadFloorResponse loads what WriteFloorResponse saved.
func ReadFloorResponse(path string) (*FloorResponse, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fr := new(FloorResponse)
	if err := json.Unmarshal(raw, fr); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if fr.Status < 100 || fr.Status > 999 {
		return nil, fmt.Errorf("%s: status %d", path, fr.Status)
	}
	return fr, nil
}

// FloorTarget is a running floor server the load also drives.
type FloorTarget struct {
	Addr string // its loopback listener; every host name is dialled to it
	PID  int    // for its CPU time from /proc
	// AuditLineBytes is the size of the line it writes per request, 0 if none.
	AuditLineBytes int
}

// VsFloor sets a Keyward run beside the floor's run of the same shape.
type VsFloor struct {
	FloorCPUMicros   float64 `json:"floor_cpu_us_per_request"`
	KeywardCPUMicros float64 `json:"keyward_cpu_us_per_request"`
	// PipelineCPUMicros is Keyward − floor: the CPU of Keyward's own
	// request pipeline (auth, authorization, storage, encryption, audit
	// encoding) above a bare server's.
	PipelineCPUMicros float64 `json:"keyward_minus_floor_cpu_us_per_request"`
	CPURatio          float64 `json:"keyward_over_floor_cpu"`
	FloorRPS          float64 `json:"floor_requests_per_second"`
	KeywardRPS        float64 `json:"keyward_requests_per_second"`
	FloorP99          float64 `json:"floor_p99_ms"`
	KeywardP99        float64 `json:"keyward_p99_ms"`
	// FloorAuditLineBytes is the floor's audit line per request (0: none).
	FloorAuditLineBytes int `json:"floor_audit_line_bytes"`
}

func compareFloor(k, f *Report, auditLine int) *VsFloor {
	v := &VsFloor{FloorRPS: f.RPS, KeywardRPS: k.RPS, FloorP99: f.Latency.P99, KeywardP99: k.Latency.P99, FloorAuditLineBytes: auditLine}
	if k.Server != nil && f.Server != nil {
		v.KeywardCPUMicros, v.FloorCPUMicros = k.Server.CPUMicrosPerRequest, f.Server.CPUMicrosPerRequest
		v.PipelineCPUMicros = v.KeywardCPUMicros - v.FloorCPUMicros
		if v.FloorCPUMicros > 0 {
			v.CPURatio = v.KeywardCPUMicros / v.FloorCPUMicros
		}
	}
	return v
}

// floorSession is s re-pointed at the floor's listener: same base URL
// (Host and :authority), CA, token and shape, new connections.
func (s *session) floorSession(cfg *Config, addr string) (*session, func(), error) {
	tr, err := newTransport(s.caFile, addr, cfg.Concurrency, cfg.HTTP2)
	if err != nil {
		return nil, nil, err
	}
	closers := []func(){tr.CloseIdleConnections}
	cleanup := func() {
		for _, c := range closers {
			c()
		}
	}
	fs := &session{hc: &http.Client{Transport: tr, Timeout: cfg.Timeout}, base: s.base, caFile: s.caFile, addr: addr, tok: s.tok}
	if cfg.HTTP2 && cfg.HTTP2Conns {
		for range cfg.Concurrency {
			wt, err := newTransport(s.caFile, addr, 1, true)
			if err != nil {
				cleanup()
				return nil, nil, err
			}
			closers = append(closers, wt.CloseIdleConnections)
			fs.workers = append(fs.workers, &http.Client{Transport: wt, Timeout: cfg.Timeout})
		}
	}
	return fs, cleanup, nil
}

// WriteFloor prints one row per run with the floor of the same shape: the
// floor table of docs/PERFORMANCE.md.
func WriteFloor(w io.Writer, runs []*Report) {
	fmt.Fprintf(w, "| protocol | shape | floor µs CPU/req | keyward µs CPU/req | keyward − floor | keyward ÷ floor | floor req/s | keyward req/s | floor p99 ms | keyward p99 ms | errors (keyward, floor) |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		v := r.VsFloor
		if v == nil || r.Floor == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %.1f | %.1f | %.2f | %.0f | %.0f | %.3f | %.3f | %d, %d |\n", r.Protocol, r.Shape,
			v.FloorCPUMicros, v.KeywardCPUMicros, v.PipelineCPUMicros, v.CPURatio, v.FloorRPS, v.KeywardRPS, v.FloorP99, v.KeywardP99,
			r.Requests-r.OK, r.Floor.Requests-r.Floor.OK)
	}
}

// DevCertificate is the dev server's TLS certificate from its tls
// directory, with the chain its listener sends (the leaf, then the CA), for
// the floor server.
func DevCertificate(tlsDir string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(tlsDir, devca.CertFile), filepath.Join(tlsDir, devca.KeyFile))
	if err != nil {
		return cert, err
	}
	caPEM, err := os.ReadFile(filepath.Join(tlsDir, devca.CACertFile))
	if err != nil {
		return cert, err
	}
	b, _ := pem.Decode(caPEM)
	if b == nil {
		return cert, fmt.Errorf("%s: no PEM block", devca.CACertFile)
	}
	cert.Certificate = append(cert.Certificate, b.Bytes)
	return cert, nil
}
