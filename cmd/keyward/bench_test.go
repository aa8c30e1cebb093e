package main

import (
	"bytes"
	"context"
	"encoding/json"
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
}
