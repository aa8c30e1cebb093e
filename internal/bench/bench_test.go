package bench

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// checkShape checks what every report must hold, not how fast it was.
func checkShape(t *testing.T, r *Report, withServer, withRaw bool) {
	t.Helper()
	if r.Requests == 0 || r.OK != r.Requests || len(r.Errors) != 0 {
		t.Fatalf("%s: %d requests, %d ok, errors %v %v", r.Op, r.Requests, r.OK, r.Errors, r.ErrorSample)
	}
	if r.RPS <= 0 || r.Seconds <= 0 || r.Concurrency <= 0 {
		t.Fatalf("%s: rps %v over %vs, concurrency %d", r.Op, r.RPS, r.Seconds, r.Concurrency)
	}
	l := r.Latency
	if l.Count != int(r.Requests) || !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("%s: latency %+v", r.Op, l)
	}
	if r.Protocol == "" || r.TLS != "TLS 1.3" {
		t.Fatalf("%s: protocol %q, %q", r.Op, r.Protocol, r.TLS)
	}
	if r.Machine.CPUs <= 0 || r.Machine.GoVersion == "" {
		t.Fatalf("%s: machine %+v", r.Op, r.Machine)
	}
	if withServer && (r.Server == nil || r.Server.PID == 0 || r.Server.CPUSeconds < 0 || r.Server.RSSBytes <= 0) {
		t.Fatalf("%s: server %+v", r.Op, r.Server)
	}
	if withRaw && (r.Raw == nil || r.Raw.OpsPerSecond <= 0 || r.Raw.Primitive == "" || r.Ratio <= 0) {
		t.Fatalf("%s: raw %+v, ratio %v", r.Op, r.Raw, r.Ratio)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	for _, k := range []string{"op", "concurrency", "requests_per_second", "latency_ms", "errors", "client", "machine"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("%s: JSON report lacks %q: %s", r.Op, k, raw)
		}
	}
}

// TestRunEveryOperation runs each operation briefly against an in-process
// dev server (its CPU is this process's: the figures mean nothing, the
// shape does) and checks that nothing failed.
func TestRunEveryOperation(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	devJSON := filepath.Join(e.DataDir, "dev.json")
	for _, op := range []string{OpSecretGet, OpSecretSet, OpSecretList, OpRS256, OpPS256, OpES256, OpWrap, OpUnwrap} {
		t.Run(op, func(t *testing.T) {
			r, err := Run(context.Background(), Config{
				DevJSON: devJSON, Op: op, Concurrency: 4, Duration: 500 * time.Millisecond,
				Warmup: 100 * time.Millisecond, ServerPID: os.Getpid(), Raw: true, RawDuration: 200 * time.Millisecond,
				Names: 3, Populate: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkShape(t, r, true, true)
		})
	}
	t.Run("requests", func(t *testing.T) {
		r, err := Run(context.Background(), Config{DevJSON: devJSON, Op: OpSecretGet, Concurrency: 3, Requests: 50, HTTP2: true})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, r, false, false)
		if r.Requests != 50 || r.Protocol != "HTTP/2.0" {
			t.Fatalf("%d requests over %s, want 50 over HTTP/2.0", r.Requests, r.Protocol)
		}
	})
	t.Run("http2 connection per worker", func(t *testing.T) {
		r, err := Run(context.Background(), Config{DevJSON: devJSON, Op: OpES256, Concurrency: 3, Requests: 30, HTTP2: true, HTTP2Conns: true})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, r, false, false)
		if r.Protocol != "HTTP/2.0" || r.Shape != "3 connections × 1 stream" {
			t.Fatalf("%s, %q; want HTTP/2.0 over 3 connections", r.Protocol, r.Shape)
		}
	})
	t.Run("net/http", func(t *testing.T) {
		r, err := Run(context.Background(), Config{DevJSON: devJSON, Op: OpSecretSet, Concurrency: 2, Requests: 20, NetHTTP: true})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, r, false, false)
		if r.Protocol != "HTTP/1.1" {
			t.Fatalf("protocol %s", r.Protocol)
		}
	})
	t.Run("unknown op", func(t *testing.T) {
		if _, err := Run(context.Background(), Config{DevJSON: devJSON, Op: "nope", Duration: time.Second}); err == nil {
			t.Fatal("unknown operation accepted")
		}
	})
	t.Run("aes without hsm", func(t *testing.T) {
		if _, err := Run(context.Background(), Config{DevJSON: devJSON, Op: OpAESGCM, Duration: time.Second}); err == nil {
			t.Fatal("aes-gcm-encrypt ran without a managed HSM")
		}
	})
}

// TestProcCPU checks the /proc reader against the kernel's other account
// of the same thing, getrusage(RUSAGE_SELF), over the same interval. The
// burn loop runs until getrusage has seen 300ms of CPU, however long that
// takes on a loaded machine, so load changes how long the test takes, not
// what it measures; a reader with a wrong field, unit or scope is off by
// far more than the tolerance.
func TestProcCPU(t *testing.T) {
	pid := os.Getpid()
	rA := rusageCPU(t)
	p0, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	rB := rusageCPU(t)

	const burn = 300 * time.Millisecond
	deadline := time.Now().Add(2 * time.Minute)
	for rusageCPU(t)-rB < burn {
		if time.Now().After(deadline) {
			t.Fatalf("getrusage saw less than %v of CPU in two minutes of busy loop", burn)
		}
		for i := 0; i < 1e5; i++ { // a slice of busy work between two reads
			sink += i
		}
	}

	rC := rusageCPU(t)
	p1, err := procCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	rD := rusageCPU(t)
	got := p1.sub(p0)
	// The true CPU time between the two /proc reads lies in [rC-rB, rD-rA];
	// /proc counts whole clock ticks, so each read may lag by one.
	lo, hi := rC-rB-2*clockTick, rD-rA+2*clockTick
	if got < lo || got > hi {
		t.Fatalf("/proc/self/stat measured %v of CPU while getrusage measured %v..%v", got, rC-rB, rD-rA)
	}
	if rss, anon, _ := procMem(pid); rss <= 0 || anon <= 0 {
		t.Fatalf("rss %d, anon %d", rss, anon)
	}
}

var sink int

// rusageCPU is this process's user + system CPU time from getrusage.
func rusageCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestLatencyPercentiles(t *testing.T) {
	var lat []time.Duration
	for i := 1000; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	l := latency(lat)
	if l.P50 != 500 || l.P90 != 900 || l.P99 != 990 || l.P999 != 999 || l.Max != 1000 || l.Mean != 500.5 {
		t.Fatalf("%+v", l)
	}
}

// TestFloor captures a secret-get response from a dev server, serves it
// from the floor handler behind Keyward's listener settings with the dev
// certificate, and drives Keyward and the floor in one Run on each
// protocol shape: both rows filled, no request failed, and the floor's
// audit file holds one chained line of the captured size per request.
func TestFloor(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	devJSON := filepath.Join(e.DataDir, "dev.json")
	ctx := context.Background()
	if _, err := CaptureFloorResponse(ctx, Config{DevJSON: devJSON, Op: OpES256}, filepath.Join(e.DataDir, "audit.log")); err == nil {
		t.Fatal("a floor was captured for ec-sign-es256")
	}
	fr, err := CaptureFloorResponse(ctx, Config{DevJSON: devJSON, Op: OpSecretGet}, filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Value string `json:"value"`
		ID    string `json:"id"`
	}
	if fr.Status != 200 || json.Unmarshal(fr.Body, &bundle) != nil || bundle.Value == "" || bundle.ID == "" {
		t.Fatalf("captured %d %s", fr.Status, fr.Body)
	}
	if !slices.Contains(fr.Vary, "X-Ms-Request-Id") || fr.Header.Get("Content-Type") == "" || fr.Header.Get("Date") != "" {
		t.Fatalf("captured header %v, vary %v", fr.Header, fr.Vary)
	}
	if fr.AuditLineBytes < 200 {
		t.Fatalf("audit line of %d bytes", fr.AuditLineBytes)
	}
	// Saved and loaded as floor-server does.
	respFile := filepath.Join(t.TempDir(), "response.json")
	if err := WriteFloorResponse(respFile, fr); err != nil {
		t.Fatal(err)
	}
	if fr, err = ReadFloorResponse(respFile); err != nil {
		t.Fatal(err)
	}

	cert, err := DevCertificate(filepath.Join(e.DataDir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := server.ListenerTLSConfig(server.TLSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg.Certificates = []tls.Certificate{cert}
	auditPath := filepath.Join(t.TempDir(), "floor-audit.log")
	af, err := os.OpenFile(auditPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := server.NewHTTPServer(NewFloorHandler(fr, af), tlsCfg, nil)
	go hs.ServeTLS(ln, "", "")
	defer hs.Close()

	var floorRequests int64
	for _, v := range []struct{ h2, conns bool }{{false, false}, {true, false}, {true, true}} {
		r, err := Run(ctx, Config{
			DevJSON: devJSON, Op: OpSecretGet, Concurrency: 3, Requests: 60, HTTP2: v.h2, HTTP2Conns: v.conns,
			ServerPID: os.Getpid(), Floor: &FloorTarget{Addr: ln.Addr().String(), PID: os.Getpid(), AuditLineBytes: fr.AuditLineBytes},
		})
		if err != nil {
			t.Fatal(err)
		}
		checkShape(t, r, true, false)
		if r.Floor == nil || r.VsFloor == nil || r.Floor.Target != "floor" {
			t.Fatalf("%s %s: no floor run", r.Protocol, r.Shape)
		}
		checkShape(t, r.Floor, true, false)
		if r.Floor.Protocol != r.Protocol || r.Floor.Shape != r.Shape || r.Floor.Requests != 60 {
			t.Fatalf("floor ran %s %q %d requests; keyward %s %q", r.Floor.Protocol, r.Floor.Shape, r.Floor.Requests, r.Protocol, r.Shape)
		}
		vs := r.VsFloor
		if vs.KeywardCPUMicros != r.Server.CPUMicrosPerRequest || vs.FloorCPUMicros != r.Floor.Server.CPUMicrosPerRequest ||
			vs.PipelineCPUMicros != vs.KeywardCPUMicros-vs.FloorCPUMicros || vs.FloorP99 != r.Floor.Latency.P99 ||
			vs.KeywardP99 != r.Latency.P99 || vs.FloorAuditLineBytes != fr.AuditLineBytes || vs.FloorRPS <= 0 {
			t.Fatalf("vs floor %+v", vs)
		}
		floorRequests += r.Floor.Requests
	}

	// One line per floor request, each the captured size, each carrying
	// the SHA-256 of the line before it.
	raw, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	lines = lines[:len(lines)-1]
	if int64(len(lines)) != floorRequests {
		t.Fatalf("%d audit lines for %d floor requests", len(lines), floorRequests)
	}
	var prev [32]byte
	for i, l := range lines {
		if len(l) != fr.AuditLineBytes {
			t.Fatalf("line %d: %d bytes, want %d", i, len(l), fr.AuditLineBytes)
		}
		body := l[:len(l)-1]
		if got := body[len(body)-64:]; got != hex.EncodeToString(prev[:]) {
			t.Fatalf("line %d: prev %s, want %x", i, got, prev)
		}
		prev = sha256.Sum256([]byte(body))
	}
}

// TestFloorVaryValue: a varying header keeps its length and shape.
func TestFloorVaryValue(t *testing.T) {
	tmpl := "044d9ff8-3055-4c62-b533-365d822886e7"
	a, b := varyValue(tmpl, 1), varyValue(tmpl, 0x1234)
	if len(a) != len(tmpl) || len(b) != len(tmpl) || a == b || a[:24] != tmpl[:24] || !strings.HasSuffix(b, "1234") || strings.Count(b, "-") != 4 {
		t.Fatalf("%s, %s", a, b)
	}
}
