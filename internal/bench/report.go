package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// WriteText prints r for people: the figures docs/PERFORMANCE.md quotes.
func (r *Report) WriteText(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "keyward bench: %s, concurrency %d, %s keep-alive (%s), %s\n", r.Op, r.Concurrency, r.Protocol, r.Shape, r.TLS)
	fmt.Fprintf(w, "machine:   %d CPUs, %s, %s %s, load %s -> %s\n", m.CPUs, m.CPUModel, m.GoVersion, m.OS,
		floats(m.LoadAvgBefore), floats(m.LoadAvgAfter))
	fmt.Fprintf(w, "requests:  %d in %.2fs: %.0f req/s; %d ok, %d errors%s\n", r.Requests, r.Seconds, r.RPS, r.OK,
		r.Requests-r.OK, errorsText(r.Errors))
	l := r.Latency
	fmt.Fprintf(w, "latency:   mean %.3fms  p50 %.3fms  p90 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms\n",
		l.Mean, l.P50, l.P90, l.P99, l.P999, l.Max)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server:    pid %d, %.2f CPU s, %.1f µs CPU/request, %.2f cores busy; RSS %s (anon %s, file %s); page faults/request %.2f minor, %.3f major\n",
			s.PID, s.CPUSeconds, s.CPUMicrosPerRequest, s.Utilization, mib(s.RSSBytes), mib(s.RSSAnonBytes), mib(s.RSSFileBytes),
			s.MinorFaultsPerRequest, s.MajorFaultsPerRequest)
		if s.ReadSyscallsPerRequest > 0 || s.WriteSyscallsPerRequest > 0 {
			fmt.Fprintf(w, "syscalls:  %.2f read-like, %.2f write-like per request (server, /proc/PID/io)\n", s.ReadSyscallsPerRequest, s.WriteSyscallsPerRequest)
		}
	} else {
		fmt.Fprintf(w, "server:    CPU not measured (give --server-pid or --spawn)\n")
	}
	fmt.Fprintf(w, "client:    %.2f CPU s, %.1f µs CPU/request, %.2f cores busy (GOMAXPROCS %d)\n", r.Client.CPUSeconds, r.Client.CPUMicrosPerRequest, r.Client.Utilization, r.ClientProcs)
	if r.Raw != nil {
		fmt.Fprintf(w, "raw:       %s on %d goroutines: %.0f ops/s, %.2f µs CPU/op\n", r.Raw.Primitive, r.Raw.Goroutines, r.Raw.OpsPerSecond, r.Raw.CPUMicrosPerOp)
		fmt.Fprintf(w, "ratio:     server %.0f req/s ÷ raw %.0f ops/s = %.3f\n", r.RPS, r.Raw.OpsPerSecond, r.Ratio)
		if r.Raw.Utilization > 0 && r.Raw.Utilization < 0.9 {
			fmt.Fprintf(w, "warning:   the raw run got only %.0f%% of %d cores (other processes were running): its rate is understated and the ratio overstated; the cpu ratio is not affected\n",
				100*r.Raw.Utilization, min(r.Raw.Goroutines, max(r.Machine.CPUs, 1)))
		}
		if r.CPURatio > 0 {
			fmt.Fprintf(w, "cpu ratio: raw %.2f µs CPU/op ÷ server %.1f µs CPU/request = %.3f (the ratio with the cores to the server alone)\n",
				r.Raw.CPUMicrosPerOp, r.Server.CPUMicrosPerRequest, r.CPURatio)
		}
	}
	for _, code := range sortedKeys(r.ErrorSample) {
		fmt.Fprintf(w, "error %s:  %s\n", code, oneLine(r.ErrorSample[code]))
	}
	if f, v := r.Floor, r.VsFloor; f != nil && v != nil {
		aud := "no audit write"
		if v.FloorAuditLineBytes > 0 {
			aud = fmt.Sprintf("one %d-byte chained audit write(2)/request", v.FloorAuditLineBytes)
		}
		fmt.Fprintf(w, "floor:     bare net/http TLS server, %s, same run right after: %d requests in %.2fs: %.0f req/s; %d errors%s; p99 %.3fms\n",
			aud, f.Requests, f.Seconds, f.RPS, f.Requests-f.OK, errorsText(f.Errors), f.Latency.P99)
		if s := f.Server; s != nil {
			fmt.Fprintf(w, "floor cpu: pid %d, %.1f µs CPU/request, %.2f cores busy; syscalls %.2f read-like, %.2f write-like per request; load %s -> %s\n",
				s.PID, s.CPUMicrosPerRequest, s.Utilization, s.ReadSyscallsPerRequest, s.WriteSyscallsPerRequest,
				floats(f.Machine.LoadAvgBefore), floats(f.Machine.LoadAvgAfter))
			fmt.Fprintf(w, "vs floor:  keyward %.1f − floor %.1f = %.1f µs CPU/request (Keyward's own pipeline); keyward ÷ floor = %.2f\n",
				v.KeywardCPUMicros, v.FloorCPUMicros, v.PipelineCPUMicros, v.CPURatio)
		}
		for _, code := range sortedKeys(f.ErrorSample) {
			fmt.Fprintf(w, "floor error %s: %s\n", code, oneLine(f.ErrorSample[code]))
		}
	}
}

func floats(v []float64) string {
	if len(v) == 0 {
		return "?"
	}
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(s, " ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func errorsText(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		name := k
		if k == "0" {
			name = "transport"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// WriteScaling prints one row per run: the scaling table of
// docs/PERFORMANCE.md.
func WriteScaling(w io.Writer, runs []*Report) {
	fmt.Fprintf(w, "| concurrency | req/s | p50 ms | p99 ms | server µs CPU/req | client µs CPU/req | ratio to raw | cpu ratio | errors |\n")
	fmt.Fprintf(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		srv := "n/a"
		if r.Server != nil {
			srv = fmt.Sprintf("%.1f", r.Server.CPUMicrosPerRequest)
		}
		ratio, cpuRatio := "n/a", "n/a"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.3f", r.Ratio)
		}
		if r.CPURatio > 0 {
			cpuRatio = fmt.Sprintf("%.3f", r.CPURatio)
		}
		fmt.Fprintf(w, "| %d | %.0f | %.3f | %.3f | %s | %.1f | %s | %s | %d |\n", r.Concurrency, r.RPS, r.Latency.P50, r.Latency.P99,
			srv, r.Client.CPUMicrosPerRequest, ratio, cpuRatio, r.Requests-r.OK)
	}
}

// WriteProtocols prints one row per run with the server's CPU per request
// against the HTTP/1.1 run of the same concurrency: the protocol table of
// docs/PERFORMANCE.md.
func WriteProtocols(w io.Writer, runs []*Report) {
	h1 := map[int]float64{}
	for _, r := range runs {
		if r.Protocol == "HTTP/1.1" && r.Server != nil {
			h1[r.Concurrency] = r.Server.CPUMicrosPerRequest
		}
	}
	fmt.Fprintf(w, "| protocol | shape | req/s | p50 ms | p99 ms | server µs CPU/req | ÷ HTTP/1.1 | client µs CPU/req | errors |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		srv, rel := "n/a", "n/a"
		if r.Server != nil {
			srv = fmt.Sprintf("%.1f", r.Server.CPUMicrosPerRequest)
			if base := h1[r.Concurrency]; base > 0 {
				rel = fmt.Sprintf("%.2f", r.Server.CPUMicrosPerRequest/base)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %.0f | %.3f | %.3f | %s | %s | %.1f | %d |\n", r.Protocol, r.Shape, r.RPS, r.Latency.P50, r.Latency.P99,
			srv, rel, r.Client.CPUMicrosPerRequest, r.Requests-r.OK)
	}
}
