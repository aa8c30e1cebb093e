package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/kwtest"
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
