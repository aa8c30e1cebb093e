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

	// --floor: the bare net/http floor server beside Keyward, for each
	// protocol shape, in one run; both rows filled, nothing failed, and
	// the floor wrote its chained audit line per request.
	stdout.Reset()
	stderr.Reset()
	floorData := filepath.Join(dir, "data-floor")
	args = []string{"bench", "--spawn", "--server-exe", exe, "--floor-exe", exe, "--data", floorData,
		"--op", "secret-get", "-c", "4", "-d", "1s", "--warmup", "300ms", "--no-raw", "--http2", "--floor", "--json"}
	if err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr); err != nil {
		t.Fatalf("keyward bench --floor: %v\n%s", err, stderr.String())
	}
	type floorRun struct {
		Target   string           `json:"target"`
		Protocol string           `json:"protocol"`
		Shape    string           `json:"shape"`
		Requests int64            `json:"requests"`
		OK       int64            `json:"ok"`
		Errors   map[string]int64 `json:"errors"`
		Latency  struct {
			P99 float64 `json:"p99"`
		} `json:"latency_ms"`
		Server *struct {
			PID        int     `json:"pid"`
			PerRequest float64 `json:"cpu_us_per_request"`
		} `json:"server"`
	}
	var fl struct {
		Runs []struct {
			floorRun
			Floor   *floorRun `json:"floor"`
			VsFloor *struct {
				Floor     float64 `json:"floor_cpu_us_per_request"`
				Keyward   float64 `json:"keyward_cpu_us_per_request"`
				Pipeline  float64 `json:"keyward_minus_floor_cpu_us_per_request"`
				Ratio     float64 `json:"keyward_over_floor_cpu"`
				FloorP99  float64 `json:"floor_p99_ms"`
				AuditLine int     `json:"floor_audit_line_bytes"`
			} `json:"vs_floor"`
		} `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &fl); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	if len(fl.Runs) != len(want) {
		t.Fatalf("--floor --http2: want %d runs: %s", len(want), stdout.String())
	}
	var floorRequests int64
	for i, r := range fl.Runs {
		f, vs := r.Floor, r.VsFloor
		if f == nil || vs == nil || f.Target != "floor" || r.Target != "" {
			t.Fatalf("--floor run %d: no floor row: %+v", i, r)
		}
		if r.Protocol != want[i].proto || f.Protocol != want[i].proto || r.Shape != want[i].shape || f.Shape != want[i].shape {
			t.Fatalf("--floor run %d: keyward %s %q, floor %s %q; want %s %q", i, r.Protocol, r.Shape, f.Protocol, f.Shape, want[i].proto, want[i].shape)
		}
		for _, x := range []*floorRun{&r.floorRun, f} {
			if x.Requests == 0 || x.OK != x.Requests || len(x.Errors) != 0 || x.Server == nil || x.Server.PerRequest <= 0 || x.Latency.P99 <= 0 {
				t.Fatalf("--floor run %d (%s): %+v", i, x.Target, x)
			}
		}
		if f.Server.PID == r.Server.PID {
			t.Fatalf("--floor run %d: the floor's CPU was read from Keyward's process %d", i, f.Server.PID)
		}
		if vs.Floor != f.Server.PerRequest || vs.Keyward != r.Server.PerRequest || vs.Pipeline != vs.Keyward-vs.Floor ||
			vs.Ratio <= 0 || vs.FloorP99 != f.Latency.P99 || vs.AuditLine <= 0 {
			t.Fatalf("--floor run %d: vs_floor %+v", i, vs)
		}
		floorRequests += f.Requests
	}
	floorLog, err := os.ReadFile(filepath.Join(floorData, "floor", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	// The warm-ups wrote lines too.
	if n := int64(bytes.Count(floorLog, []byte("\n"))); n < floorRequests || n*int64(fl.Runs[0].VsFloor.AuditLine) != int64(len(floorLog)) {
		t.Fatalf("floor audit log: %d lines, %d bytes, for %d measured requests of %d-byte lines", n, len(floorLog), floorRequests, fl.Runs[0].VsFloor.AuditLine)
	}
	// --floor has a meaning for secret-get only.
	args = []string{"bench", "--spawn", "--server-exe", exe, "--op", "ec-sign-es256", "--floor"}
	if err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--floor") {
		t.Fatalf("--floor with ec-sign-es256: %v", err)
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
