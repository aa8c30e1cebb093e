package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestBenchCommand runs `keyward bench --spawn` for a few seconds: a dev
// server started as its own process (this package built as a binary), the
// load over HTTPS, the server's CPU from /proc, the raw primitive. It checks
// the report's shape and that no request failed, never the speed.
func TestBenchCommand(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("server CPU is read from /proc")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "keyward")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", exe, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "--spawn", "--server-exe", exe, "--data", filepath.Join(dir, "data"),
		"--op", "secret-get", "-c", "2,8", "-d", "1500ms", "--warmup", "300ms", "--raw-duration", "500ms", "--json"}
	if err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("keyward bench: %v\n%s", err, stderr.String())
	}
	var out struct {
		Runs []struct {
			Op          string           `json:"op"`
			Concurrency int              `json:"concurrency"`
			Requests    int64            `json:"requests"`
			OK          int64            `json:"ok"`
			Errors      map[string]int64 `json:"errors"`
			RPS         float64          `json:"requests_per_second"`
			Latency     struct {
				P50  float64 `json:"p50"`
				P99  float64 `json:"p99"`
				P999 float64 `json:"p99_9"`
			} `json:"latency_ms"`
			Server *struct {
				PID        int     `json:"pid"`
				CPUSeconds float64 `json:"cpu_seconds"`
				PerRequest float64 `json:"cpu_us_per_request"`
				RSS        int64   `json:"rss_bytes"`
			} `json:"server"`
			Raw *struct {
				OpsPerSecond float64 `json:"ops_per_second"`
			} `json:"raw"`
			Ratio float64 `json:"ratio_to_raw"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if len(out.Runs) != 2 || out.Runs[0].Concurrency != 2 || out.Runs[1].Concurrency != 8 {
		t.Fatalf("want runs at concurrency 2 and 8: %s", stdout.String())
	}
	for _, r := range out.Runs {
		if r.Op != "secret-get" || r.Requests == 0 || r.OK != r.Requests || len(r.Errors) != 0 {
			t.Fatalf("run %+v: requests failed", r)
		}
		if r.RPS <= 0 || r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.P999 < r.Latency.P99 {
			t.Fatalf("run %+v: throughput or latency missing", r)
		}
		if r.Server == nil || r.Server.PID == 0 || r.Server.CPUSeconds <= 0 || r.Server.PerRequest <= 0 || r.Server.RSS <= 0 {
			t.Fatalf("run %+v: server CPU missing", r.Server)
		}
		if r.Ratio <= 0 {
			t.Fatalf("run %+v: no ratio to the raw primitive", r)
		}
	}
	if out.Runs[1].Raw == nil || out.Runs[1].Raw.OpsPerSecond <= 0 {
		t.Fatal("no raw-primitive run")
	}

	// --http2: HTTP/1.1, HTTP/2 over one connection and HTTP/2 over one
	// connection per worker, against one spawned server, in one run.
	stdout.Reset()
	stderr.Reset()
	args = []string{"bench", "--spawn", "--server-exe", exe, "--data", filepath.Join(dir, "data2"),
		"--op", "secret-get", "-c", "4", "-d", "1s", "--warmup", "300ms", "--no-raw", "--http2", "--json"}
	if err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("keyward bench --http2: %v\n%s", err, stderr.String())
	}
	var h2 struct {
		Runs []struct {
			Concurrency int              `json:"concurrency"`
			Protocol    string           `json:"protocol"`
			Shape       string           `json:"shape"`
			Requests    int64            `json:"requests"`
			OK          int64            `json:"ok"`
			Errors      map[string]int64 `json:"errors"`
			Server      *struct {
				PID        int     `json:"pid"`
				PerRequest float64 `json:"cpu_us_per_request"`
			} `json:"server"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &h2); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	want := []struct{ proto, shape string }{
		{"HTTP/1.1", "4 connections × 1 stream"},
		{"HTTP/2.0", "1 connection × 4 streams"},
		{"HTTP/2.0", "4 connections × 1 stream"},
	}
	if len(h2.Runs) != len(want) {
		t.Fatalf("--http2: want %d runs: %s", len(want), stdout.String())
	}
	pid := h2.Runs[0].Server
	for i, r := range h2.Runs {
		if r.Protocol != want[i].proto || r.Shape != want[i].shape || r.Concurrency != 4 {
			t.Fatalf("--http2 run %d: %s, %q, concurrency %d; want %s, %q", i, r.Protocol, r.Shape, r.Concurrency, want[i].proto, want[i].shape)
		}
		if r.Requests == 0 || r.OK != r.Requests || len(r.Errors) != 0 {
			t.Fatalf("--http2 run %d (%s, %s): %d requests, %d ok, errors %v", i, r.Protocol, r.Shape, r.Requests, r.OK, r.Errors)
		}
		if r.Server == nil || pid == nil || r.Server.PID != pid.PID || r.Server.PerRequest <= 0 {
			t.Fatalf("--http2 run %d: server CPU missing or not the same server: %+v", i, r.Server)
		}
	}

	// --server-audit on|off: the hidden benchmark server, with the audit
	// log written or not (the cost of the audit in one build).
	for _, mode := range []string{"on", "off"} {
		stdout.Reset()
		stderr.Reset()
		data := filepath.Join(dir, "data-audit-"+mode)
		args = []string{"bench", "--spawn", "--server-exe", exe, "--data", data, "--server-audit", mode,
			"--op", "secret-get", "-c", "2", "-n", "40", "--warmup", "0s", "--no-raw", "--json"}
		if err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr); err != nil {
			t.Fatalf("keyward bench --server-audit %s: %v\n%s", mode, err, stderr.String())
		}
		if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || len(out.Runs) != 1 || out.Runs[0].OK != 40 {
			t.Fatalf("--server-audit %s: %v\n%s", mode, err, stdout.String())
		}
		log, err := os.ReadFile(filepath.Join(data, "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Count(log, []byte(`"operation":"SecretGet"`)); (mode == "on") != (got >= 40) || mode == "off" && got != 0 {
			t.Fatalf("--server-audit %s: %d SecretGet events in the audit log", mode, got)
		}
	}
}
