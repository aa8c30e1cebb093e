package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

func TestProcCPU(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	after, _ := procCPU(os.Getpid())
	if d := after.sub(before); d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("100ms of busy loop measured as %v of CPU", d)
	}
	if rss, anon, _ := procMem(os.Getpid()); rss <= 0 || anon <= 0 {
		t.Fatalf("rss %d, anon %d", rss, anon)
	}
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
