//go:build cgo

package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/hsm/hsmtest"
)

// TestBenchCommandHSM runs `keyward bench --spawn --op hsm-sign-rs256` and
// `hsm-sign-es256` end to end: a dev server process with its own SoftHSM2
// token, an RSA-HSM / EC-HSM key made through the API, signatures over
// HTTPS, and the raw side signing with the same token object from this
// process. It checks that nothing failed and that every figure the ratios
// need is there, never the speed. Skipped locally without SoftHSM2; a
// failure in CI.
func TestBenchCommandHSM(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("server CPU is read from /proc")
	}
	module := hsmtest.Module(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "keyward")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", exe, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The bench runs as its own process, as it is used: SoftHSM2 lists
	// the tokens of its directory once per process (at C_Initialize), so
	// in this test binary, where other tests may have loaded the library
	// already, the token a spawned dev server makes would not be visible.
	for _, tc := range []struct {
		name   string
		op     string
		protos string
		runs   []string
		extra  []string
		noRaw  bool
	}{
		{"rs256", "hsm-sign-rs256", "h1", []string{"HTTP/1.1"}, nil, false},
		{"es256", "hsm-sign-es256", "h1,h2", []string{"HTTP/1.1", "HTTP/2.0"}, nil, false},
		// The hidden profiling server (`keyward bench server`, used by
		// --profile-dir and --server-audit) has its SoftHSM2 token too.
		{"bench-server", "hsm-sign-es256", "h1", []string{"HTTP/1.1"}, []string{"--server-audit", "on", "--no-raw"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"bench", "--spawn", "--data", filepath.Join(dir, tc.name),
				"--server-env", "KEYWARD_HSM_MODULE=" + module,
				"--op", tc.op, "-c", "3", "-d", "800ms", "--warmup", "200ms", "--raw-duration", "300ms",
				"--protocols", tc.protos, "--json"}
			args = append(args, tc.extra...)
			bench := exec.Command(exe, args...)
			bench.Stdout, bench.Stderr = &stdout, &stderr
			if err := bench.Run(); err != nil {
				t.Fatalf("keyward bench --op %s: %v\n%s", tc.op, err, stderr.String())
			}
			var out struct {
				Runs []struct {
					Op       string           `json:"op"`
					Protocol string           `json:"protocol"`
					Requests int64            `json:"requests"`
					OK       int64            `json:"ok"`
					Errors   map[string]int64 `json:"errors"`
					Server   *struct {
						PID        int     `json:"pid"`
						PerRequest float64 `json:"cpu_us_per_request"`
					} `json:"server"`
					Raw *struct {
						Primitive    string  `json:"primitive"`
						Goroutines   int     `json:"goroutines"`
						Ops          int64   `json:"ops"`
						OpsPerSecond float64 `json:"ops_per_second"`
						CPUPerOp     float64 `json:"cpu_us_per_op"`
					} `json:"raw"`
					Ratio    float64 `json:"ratio_to_raw"`
					CPURatio float64 `json:"cpu_ratio_to_raw"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
				t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
			}
			if len(out.Runs) != len(tc.runs) {
				t.Fatalf("want %d runs: %s", len(tc.runs), stdout.String())
			}
			for i, r := range out.Runs {
				if r.Op != tc.op || r.Protocol != tc.runs[i] || r.Requests == 0 || r.OK != r.Requests || len(r.Errors) != 0 {
					t.Fatalf("run %d: %s over %s, %d requests, %d ok, errors %v", i, r.Op, r.Protocol, r.Requests, r.OK, r.Errors)
				}
				if r.Server == nil || r.Server.PID == 0 || r.Server.PerRequest <= 0 || !tc.noRaw && (r.Ratio <= 0 || r.CPURatio <= 0) {
					t.Fatalf("run %d: server %+v, ratio %v, cpu ratio %v", i, r.Server, r.Ratio, r.CPURatio)
				}
			}
			if tc.noRaw {
				return
			}
			raw := out.Runs[len(out.Runs)-1].Raw
			if raw == nil || !strings.Contains(raw.Primitive, "C_Sign") || raw.Goroutines != 3 || raw.Ops <= 0 || raw.OpsPerSecond <= 0 || raw.CPUPerOp <= 0 {
				t.Fatalf("raw PKCS#11 run: %+v", raw)
			}
		})
	}
}
