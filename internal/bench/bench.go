package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one benchmark run. The zero value of every field but DevJSON
// and Op has a usable default (see Defaults).
type Config struct {
	// DevJSON is the dev server's dev.json: credentials, CA, listener.
	DevJSON string
	// Op is the operation (one of Ops).
	Op string
	// Concurrency is the number of workers, each with its own keep-alive
	// connection (HTTP/1.1) or stream (HTTP/2).
	Concurrency int
	// Duration of the measured phase, unless Requests is set.
	Duration time.Duration
	// Requests, when > 0, ends the measured phase after that many requests.
	Requests int64
	// Warmup runs the load unmeasured first (connections, caches, JIT of
	// the CPU frequency governor).
	Warmup time.Duration
	// ServerPID is the server process whose CPU time and memory /proc
	// reports; 0 leaves them out.
	ServerPID int
	// HTTP2 multiplexes every worker over one HTTP/2 connection instead of
	// one HTTP/1.1 connection per worker.
	HTTP2 bool
	// HTTP2Conns, with HTTP2, gives every worker its own HTTP/2 connection
	// (N connections × 1 stream) instead of one connection with N streams.
	HTTP2Conns bool
	// NetHTTP sends HTTP/1.1 load through net/http's client instead of the
	// lean hand-driven connections (lean.go), which cost the shared cores
	// less. Setup always uses net/http.
	NetHTTP bool
	// Raw also runs the bare primitive in this process on every core for
	// RawDuration, and reports the ratio server ÷ raw.
	Raw         bool
	RawDuration time.Duration
	// RawGoroutines, when > 0, is how many goroutines run the raw
	// primitive (default: one per core; for the HSM operations, one token
	// session per worker, Concurrency).
	RawGoroutines int
	// SecretSize is the value size of secret operations, in bytes.
	SecretSize int
	// Names is the number of distinct secrets: get reads random ones, set
	// cycles through them. 1: a single secret named Prefix.
	Names int
	// Populate (get and list) writes the Names secrets before the run.
	Populate bool
	// Prefix names the objects the run creates.
	Prefix string
	// HSMURL is the managed HSM the AES operations run against.
	HSMURL string
	// Timeout is the per-request timeout.
	Timeout time.Duration
	// Progress, when not nil, receives progress lines during long setups.
	Progress io.Writer
	// Profile, when not nil, takes server profiles of the measured phase
	// (needs Duration, not Requests).
	Profile *Profile
	// ClientProcs, when > 0, is GOMAXPROCS of this process during the load
	// (the raw phase always uses every core). One is enough for the client
	// of a slow operation, and spares the server the CPU an idle Go
	// scheduler spends spinning on the second core.
	ClientProcs int
	// Floor, when set, is a bare floor server (floor.go) that the same
	// load drives right after the Keyward run, with the same requests,
	// headers and shape; the report holds both and their difference.
	Floor *FloorTarget

	restoreProcs func()
}

// Defaults fills in unset fields.
func (c *Config) Defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.RawDuration <= 0 {
		c.RawDuration = 5 * time.Second
	}
	if c.SecretSize <= 0 {
		c.SecretSize = 64
	}
	if c.Names <= 0 {
		c.Names = 1
	}
	if c.Prefix == "" {
		c.Prefix = "bench"
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
}

// Report is the result of a run. Times are in the unit their name says.
type Report struct {
	// Target is "floor" for the floor server's run (Report.Floor), empty
	// for Keyward's.
	Target      string `json:"target,omitempty"`
	Op          string `json:"op"`
	Concurrency int    `json:"concurrency"`
	Protocol    string `json:"protocol"` // "HTTP/1.1" or "HTTP/2.0"
	// Shape is how the workers' requests share connections, e.g.
	// "16 connections × 1 stream" or "1 connection × 16 streams".
	Shape    string  `json:"shape"`
	TLS      string  `json:"tls"`
	Seconds  float64 `json:"seconds"`
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	// Errors counts failed requests by status code ("0" for transport
	// errors); ErrorSample holds one message per status.
	Errors      map[string]int64  `json:"errors"`
	ErrorSample map[string]string `json:"error_sample,omitempty"`
	RPS         float64           `json:"requests_per_second"`
	Latency     Latency           `json:"latency_ms"`
	Server      *Process          `json:"server,omitempty"`
	Client      Process           `json:"client"`
	ClientProcs int               `json:"client_gomaxprocs"`
	Raw         *Raw              `json:"raw,omitempty"`
	// Ratio is RPS ÷ Raw.OpsPerSecond: the fraction of the machine's
	// crypto limit the server reaches (0 without a raw run).
	Ratio float64 `json:"ratio_to_raw,omitempty"`
	// CPURatio is Raw.CPUMicrosPerOp ÷ Server.CPUMicrosPerRequest: the
	// fraction of the raw rate the server would reach with every core to
	// itself, which Ratio cannot show when client and server share them.
	CPURatio float64 `json:"cpu_ratio_to_raw,omitempty"`
	// Floor is the floor server's run of the same shape, right after this
	// one (--floor), and VsFloor the two side by side.
	Floor   *Report  `json:"floor,omitempty"`
	VsFloor *VsFloor `json:"vs_floor,omitempty"`
	Machine Machine  `json:"machine"`
}

// Latency percentiles over every measured request, in milliseconds.
type Latency struct {
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
	Count int     `json:"count"`
}

// Process is the CPU time and memory of one process over the measured phase.
type Process struct {
	PID        int     `json:"pid,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUMicrosPerRequest is CPUSeconds per request, in µs.
	CPUMicrosPerRequest float64 `json:"cpu_us_per_request"`
	// Utilization is CPUSeconds ÷ wall seconds (2.0 = two cores busy).
	Utilization float64 `json:"cpu_utilization"`
	// Page faults per request (server only): minor ones map a page already
	// in memory (the first touch of a database page by a new process),
	// major ones read it from disk.
	MinorFaultsPerRequest float64 `json:"minor_faults_per_request,omitempty"`
	MajorFaultsPerRequest float64 `json:"major_faults_per_request,omitempty"`
	// Read-like and write-like system calls per request (server only, from
	// /proc/PID/io): the socket reads and writes, the audit log's writes
	// and the storage's.
	ReadSyscallsPerRequest  float64 `json:"read_syscalls_per_request,omitempty"`
	WriteSyscallsPerRequest float64 `json:"write_syscalls_per_request,omitempty"`
	// Memory at the end of the run (server only), from /proc/PID/status:
	// RSS, and its anonymous (heap, stacks) and file-backed (mmap of the
	// database) parts.
	RSSBytes     int64 `json:"rss_bytes,omitempty"`
	RSSAnonBytes int64 `json:"rss_anon_bytes,omitempty"`
	RSSFileBytes int64 `json:"rss_file_bytes,omitempty"`
}

// Raw is the bare primitive's rate in this process.
type Raw struct {
	Primitive    string  `json:"primitive"`
	Goroutines   int     `json:"goroutines"`
	Seconds      float64 `json:"seconds"`
	Ops          int64   `json:"ops"`
	OpsPerSecond float64 `json:"ops_per_second"`
	// CPUMicrosPerOp is this process's CPU time during the raw run per op.
	CPUMicrosPerOp float64 `json:"cpu_us_per_op"`
	// Utilization is the CPU the raw run got ÷ (Seconds × Goroutines):
	// below about 0.9 other processes took cores from it, OpsPerSecond is
	// understated and Ratio overstated; CPURatio does not depend on it.
	Utilization float64 `json:"cpu_utilization"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs          int       `json:"cpus"`
	CPUModel      string    `json:"cpu_model"`
	GoVersion     string    `json:"go_version"`
	OS            string    `json:"os"`
	LoadAvgBefore []float64 `json:"loadavg_before,omitempty"`
	LoadAvgAfter  []float64 `json:"loadavg_after,omitempty"`
	Time          time.Time `json:"time"`
}

// Run performs one benchmark run against the dev server described by
// cfg.DevJSON.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Defaults()
	if cfg.DevJSON == "" {
		return nil, errors.New("bench: the dev server's dev.json is required")
	}
	info, err := ReadDevInfo(cfg.DevJSON)
	if err != nil {
		return nil, err
	}
	tr, err := newTransport(info.CAFile, info.Listen, cfg.Concurrency, cfg.HTTP2)
	if err != nil {
		return nil, err
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	base := info.VaultURL
	if cfg.HSMURL != "" {
		base = cfg.HSMURL
		if base[len(base)-1] != '/' {
			base += "/"
		}
	}
	tokInfo := *info
	tokInfo.VaultURL = base
	s := &session{hc: hc, base: base, caFile: info.CAFile, addr: info.Listen, tok: &token{hc: hc, d: &tokInfo}}
	if cfg.HTTP2 && cfg.HTTP2Conns {
		// One HTTP/2 connection per worker, kept from the warm-up to the
		// measured phase.
		for range cfg.Concurrency {
			wt, err := newTransport(info.CAFile, info.Listen, 1, true)
			if err != nil {
				return nil, err
			}
			defer wt.CloseIdleConnections()
			s.workers = append(s.workers, &http.Client{Transport: wt, Timeout: cfg.Timeout})
		}
	}
	o, err := setup(ctx, s, &cfg)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	tok, err := s.tok.get(ctx)
	if err != nil {
		return nil, err
	}

	rep := &Report{Op: cfg.Op, Concurrency: cfg.Concurrency, Errors: map[string]int64{}, Shape: shape(&cfg)}
	if cfg.ClientProcs > 0 {
		prev := runtime.GOMAXPROCS(cfg.ClientProcs)
		restore := sync.OnceFunc(func() { runtime.GOMAXPROCS(prev) })
		defer restore()
		cfg.restoreProcs = restore
	}
	if err := measure(ctx, s, o, &cfg, tok, cfg.ServerPID, true, rep); err != nil {
		return nil, err
	}
	if cfg.Floor != nil {
		fs, cleanup, err := s.floorSession(&cfg, cfg.Floor.Addr)
		if err != nil {
			return nil, err
		}
		frep := &Report{Target: "floor", Op: cfg.Op, Concurrency: cfg.Concurrency, Errors: map[string]int64{}, Shape: shape(&cfg)}
		err = measure(ctx, fs, o, &cfg, tok, cfg.Floor.PID, false, frep)
		cleanup()
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		rep.Floor = frep
		rep.VsFloor = compareFloor(rep, frep, cfg.Floor.AuditLineBytes)
	}
	if cfg.restoreProcs != nil {
		cfg.restoreProcs()
	}
	if cfg.Raw {
		raw, err := runRaw(ctx, o, cfg.RawDuration, cfg.RawGoroutines)
		if err != nil {
			return nil, fmt.Errorf("raw %s: %w", o.rawName, err)
		}
		rep.Raw = raw
		rep.SetRaw(raw)
	}
	return rep, ctx.Err()
}

// measure runs the warm-up and the measured phase of cfg against s and
// fills rep, with the CPU time of process pid (0: none); profile takes
// cfg.Profile's profiles (Keyward's run only).
func measure(ctx context.Context, s *session, o *op, cfg *Config, tok string, pid int, profile bool, rep *Report) error {
	var err error
	rep.Machine = machine()
	rep.ClientProcs = runtime.GOMAXPROCS(0)
	if cfg.Warmup > 0 {
		if _, err := load(ctx, s, o, cfg, tok, cfg.Warmup, 0); err != nil {
			return err
		}
	}
	rep.Machine.LoadAvgBefore = loadAvg()
	var srvBefore stat
	if pid > 0 {
		if srvBefore, err = procStat(pid); err != nil {
			return fmt.Errorf("server pid %d: %w", pid, err)
		}
	}
	var prof *profiling
	if profile && cfg.Profile != nil && cfg.Requests <= 0 {
		name := fmt.Sprintf("%s-c%d", cfg.Op, cfg.Concurrency)
		switch {
		case cfg.HTTP2 && cfg.HTTP2Conns:
			name += "-h2conns"
		case cfg.HTTP2:
			name += "-h2"
		}
		if prof, err = cfg.Profile.start(ctx, name, cfg.Duration); err != nil {
			return err
		}
	}
	cliBefore := selfCPU()
	res, err := load(ctx, s, o, cfg, tok, cfg.Duration, cfg.Requests)
	if err != nil {
		return err
	}
	cliCPU := selfCPU() - cliBefore
	if prof != nil {
		if err := prof.stop(ctx); err != nil {
			return err
		}
	}
	rep.Machine.LoadAvgAfter = loadAvg()
	rep.Seconds = res.wall.Seconds()
	rep.Protocol, rep.TLS = res.proto, res.tls
	rep.Requests = int64(len(res.lat))
	for code, n := range res.status {
		if code == http.StatusOK || code == http.StatusNoContent {
			rep.OK += n
			continue
		}
		rep.Errors[strconv.Itoa(code)] = n
	}
	if len(res.sample) > 0 {
		rep.ErrorSample = map[string]string{}
		for code, msg := range res.sample {
			rep.ErrorSample[strconv.Itoa(code)] = msg
		}
	}
	rep.RPS = float64(rep.Requests) / rep.Seconds
	rep.Latency = latency(res.lat)
	rep.Client = perRequest(Process{CPUSeconds: cliCPU.Seconds()}, rep)
	if pid > 0 {
		after, err := procStat(pid)
		if err != nil {
			return fmt.Errorf("server pid %d: %w", pid, err)
		}
		p := Process{PID: pid, CPUSeconds: after.cpu.sub(srvBefore.cpu).Seconds()}
		p.RSSBytes, p.RSSAnonBytes, p.RSSFileBytes = procMem(pid)
		p = perRequest(p, rep)
		if rep.Requests > 0 {
			p.MinorFaultsPerRequest = float64(after.minflt-srvBefore.minflt) / float64(rep.Requests)
			p.MajorFaultsPerRequest = float64(after.majflt-srvBefore.majflt) / float64(rep.Requests)
			if after.syscr >= 0 && srvBefore.syscr >= 0 {
				p.ReadSyscallsPerRequest = float64(after.syscr-srvBefore.syscr) / float64(rep.Requests)
				p.WriteSyscallsPerRequest = float64(after.syscw-srvBefore.syscw) / float64(rep.Requests)
			}
		}
		rep.Server = &p
	}
	return nil
}

// shape describes how cfg's workers share connections.
func shape(cfg *Config) string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.Itoa(n) + " " + many
	}
	if cfg.HTTP2 && !cfg.HTTP2Conns {
		return "1 connection × " + plural(cfg.Concurrency, "stream", "streams")
	}
	return plural(cfg.Concurrency, "connection", "connections") + " × 1 stream"
}

// SetRaw records raw as the baseline of r and computes the ratios.
func (r *Report) SetRaw(raw *Raw) {
	if raw == nil || raw.OpsPerSecond <= 0 {
		return
	}
	r.Ratio = r.RPS / raw.OpsPerSecond
	if r.Server != nil && r.Server.CPUMicrosPerRequest > 0 && raw.CPUMicrosPerOp > 0 {
		r.CPURatio = raw.CPUMicrosPerOp / r.Server.CPUMicrosPerRequest
	}
}

func perRequest(p Process, rep *Report) Process {
	if rep.Requests > 0 {
		p.CPUMicrosPerRequest = p.CPUSeconds / float64(rep.Requests) * 1e6
	}
	if rep.Seconds > 0 {
		p.Utilization = p.CPUSeconds / rep.Seconds
	}
	return p
}

// result is what the workers of one phase measured.
type result struct {
	wall   time.Duration
	lat    []time.Duration
	status map[int]int64
	sample map[int]string
	proto  string
	tls    string
}

// load runs cfg.Concurrency workers for d, or until n requests (n > 0).
func load(ctx context.Context, s *session, o *op, cfg *Config, tok string, d time.Duration, n int64) (*result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	auth := "Bearer " + tok
	var dial func(context.Context) (net.Conn, error)
	var host string
	if !cfg.HTTP2 && !cfg.NetHTTP {
		var err error
		if dial, host, err = leanDialer(s.caFile, s.addr, s.base, cfg.Timeout); err != nil {
			return nil, err
		}
	}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
		res     = &result{status: map[int]int64{}, sample: map[int]string{}}
		started = time.Now()
	)
	deadline := started.Add(d)
	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(w), uint64(started.UnixNano())))
			lat := make([]time.Duration, 0, 1024)
			status := map[int]int64{}
			sample := map[int]string{}
			var proto, tlsv string
			var send func(request) (int, string, error)
			if dial != nil {
				lc := &leanConn{dial: dial, host: host, auth: auth}
				defer lc.close()
				send = func(rq request) (int, string, error) {
					code, smp, err := lc.do(ctx, rq.method, "/"+rq.path, rq.body)
					proto, tlsv = lc.proto, lc.tls
					return code, smp, err
				}
			} else if w < len(s.workers) {
				// Its own transport: its own HTTP/2 connection.
				ws := *s
				ws.hc = s.workers[w]
				send = func(rq request) (int, string, error) { return ws.send(ctx, rq, auth, &proto, &tlsv) }
			} else {
				send = func(rq request) (int, string, error) { return s.send(ctx, rq, auth, &proto, &tlsv) }
			}
			for {
				i := next.Add(1) - 1
				if n > 0 && i >= n || n <= 0 && time.Now().After(deadline) || ctx.Err() != nil {
					break
				}
				rq := o.next(i, rng)
				t0 := time.Now()
				code, smp, err := send(rq)
				el := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					code, smp = 0, clip(err.Error(), 300)
				}
				if smp != "" {
					if _, ok := sample[code]; !ok {
						sample[code] = smp
					}
				}
				lat = append(lat, el)
				status[code]++
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			for k, v := range status {
				res.status[k] += v
			}
			for k, v := range sample {
				if _, ok := res.sample[k]; !ok {
					res.sample[k] = clip(v, 300)
				}
			}
			if res.proto == "" {
				res.proto, res.tls = proto, tlsv
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.wall = time.Since(started)
	return res, ctx.Err()
}

// send is one request through net/http's client.
func (s *session) send(ctx context.Context, rq request, auth string, proto, tlsv *string) (int, string, error) {
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, s.base+rq.path, body)
	if err != nil {
		return 0, "", err
	}
	req.Header["Authorization"] = []string{auth}
	req.Header["User-Agent"] = []string{"keyward-bench"}
	if rq.body != nil {
		req.Header["Content-Type"] = []string{"application/json"}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var smp string
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		smp = string(b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if *proto == "" {
		*proto = resp.Proto
		if resp.TLS != nil {
			*tlsv = tlsName(resp.TLS.Version)
		}
	}
	return resp.StatusCode, smp, err
}

func tlsName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLS 1.3"
	case 0x0303:
		return "TLS 1.2"
	}
	return fmt.Sprintf("TLS 0x%04x", v)
}

func latency(lat []time.Duration) Latency {
	if len(lat) == 0 {
		return Latency{}
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(lat)))) - 1
		return ms(lat[max(0, min(i, len(lat)-1))])
	}
	return Latency{
		Mean: ms(sum / time.Duration(len(lat))), P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999),
		Max: ms(lat[len(lat)-1]), Count: len(lat),
	}
}

// runRaw runs the primitive on g goroutines (0: o's choice, else
// GOMAXPROCS) for d. A primitive that fails ends the run with its error.
func runRaw(ctx context.Context, o *op, d time.Duration, g int) (*Raw, error) {
	if g <= 0 {
		g = o.rawGoroutines
	}
	if g <= 0 {
		g = runtime.GOMAXPROCS(0)
	}
	if o.rawInit != nil {
		if err := o.rawInit(); err != nil {
			if o.rawClose != nil {
				o.rawClose()
			}
			return nil, err
		}
	}
	if o.rawClose != nil {
		defer o.rawClose()
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	var errOnce sync.Once
	var rawErr error
	stop := time.Now().Add(d)
	start := time.Now()
	cpu0 := selfCPU()
	for range g {
		f := o.raw()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			defer func() { total.Add(n) }()
			for ctx.Err() == nil {
				for range 16 {
					if err := f(); err != nil {
						errOnce.Do(func() { rawErr = err })
						return
					}
					n++
				}
				if time.Now().After(stop) {
					break
				}
			}
		}()
	}
	wg.Wait()
	if rawErr != nil {
		return nil, rawErr
	}
	secs := time.Since(start).Seconds()
	r := &Raw{Primitive: o.rawName, Goroutines: g, Seconds: secs, Ops: total.Load(), OpsPerSecond: float64(total.Load()) / secs}
	if r.Ops > 0 {
		cpu := (selfCPU() - cpu0).Seconds()
		r.CPUMicrosPerOp = cpu / float64(r.Ops) * 1e6
		// The cores the run could have used: more goroutines than
		// cores (the HSM operations) still use at most every core.
		r.Utilization = cpu / (secs * float64(min(g, runtime.GOMAXPROCS(0))))
	}
	return r, ctx.Err()
}
