package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/bench"
	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/server"
)

// newBenchCmd is `keyward bench`: load against a running dev server, with
// the server's CPU per request and the raw primitive's rate for comparison
// (docs/PERFORMANCE.md).
func newBenchCmd(stdout, stderr io.Writer) *cobra.Command {
	var (
		cfg         bench.Config
		data        string
		conc        string
		spawn       bool
		noRaw       bool
		asJSON      bool
		jsonOut     string
		profileDir  string
		clientProf  string
		serverFlags []string
		serverEnv   []string
		serverExe   string
		http2       bool
		protos      string
		serverAudit string
		floor       bool
		floorAudit  bool
		floorExe    string
	)
	var opsHelp strings.Builder
	for _, o := range bench.Ops {
		fmt.Fprintf(&opsHelp, "  %-20s %s\n", o.Name, o.Help)
	}
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Drive a Keyward dev server with load and report throughput, latency and server CPU",
		Long: `Drive a Keyward dev server over HTTPS with keep-alive connections and a real
bearer token, for one operation at one or more concurrencies, and report
requests/s, latency percentiles, errors by status, the server's CPU time per
request (from /proc/PID/stat) and the rate of the raw primitive run in this
process on every core, with the ratio server ÷ raw.

The server is either started here as its own process (--spawn: keyward
server --dev --listen 127.0.0.1:0 --data DIR) or already running (--data DIR
or --dev-json FILE, and --server-pid PID for its CPU time).

Operations:
` + opsHelp.String() + `
Examples:
  keyward bench --spawn --op secret-get -c 16 -d 10s
  keyward bench --spawn --op rsa-sign-rs256 -c 1,4,16,64 -d 5s
  keyward bench --spawn --op secret-get -c 16 -d 10s --http2
  keyward bench --spawn --op secret-get -c 16 -d 10s --http2 --floor
  keyward bench --spawn --op hsm-sign-rs256 -c 16 -d 10s --client-procs 1
  keyward bench --data ./.keyward-dev --server-pid 1234 --op ec-sign-es256

--floor (secret-get only) also starts a bare net/http TLS server as its own
process (the hidden ` + "`keyward bench floor-server`" + `), with the TLS and
http.Server settings of Keyward's listener and the dev server's certificate,
answering every request with a secret-get response captured from Keyward
(status, headers, body), after one audit-sized chained write(2) to a file
(--floor-audit, default on). Each protocol shape runs against Keyward, then
at once against the floor with the same client, requests and headers; the
report gives both servers' CPU per request, Keyward − floor (what Keyward's
own pipeline costs) and Keyward ÷ floor.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			concs, err := parseInts(conc)
			if err != nil {
				return fmt.Errorf("--concurrency: %w", err)
			}
			if floor {
				if cfg.Op != bench.OpSecretGet {
					return fmt.Errorf("--floor: the floor is a bare HTTPS server answering with a captured %s response, a baseline for %s only; %s's baseline is its raw primitive (the raw run)", bench.OpSecretGet, bench.OpSecretGet, cfg.Op)
				}
				if !spawn && data == "" {
					return errors.New("--floor needs the dev server's data directory (its TLS certificate and audit log): give --spawn or --data DIR")
				}
			}
			if spawn {
				if data == "" {
					dir, err := os.MkdirTemp("", "keyward-bench-")
					if err != nil {
						return err
					}
					defer os.RemoveAll(dir)
					data = dir
				}
				exe := serverExe
				if exe == "" {
					if exe, err = os.Executable(); err != nil {
						return err
					}
				}
				args := []string{"server", "--dev", "--listen", "127.0.0.1:0", "--data", data, "--log-level", "warn"}
				var pprofAddr string
				if profileDir != "" {
					if pprofAddr, err = freeLoopbackAddr(); err != nil {
						return err
					}
					args = []string{"bench", "server", "--listen", "127.0.0.1:0", "--data", data, "--pprof", pprofAddr}
				}
				switch serverAudit {
				case "":
				case "on", "off":
					if profileDir == "" {
						args = []string{"bench", "server", "--listen", "127.0.0.1:0", "--data", data}
					}
					args = append(args, "--audit="+serverAudit)
				default:
					return errors.New("--server-audit: on or off")
				}
				srv, err := bench.StartServer(ctx, exe, append(args, serverFlags...), serverEnv, data, stderr)
				if err != nil {
					return err
				}
				defer srv.Stop()
				cfg.ServerPID = srv.PID()
				if profileDir != "" {
					cfg.Profile = &bench.Profile{URL: "http://" + pprofAddr + "/debug/pprof/", Dir: profileDir}
				}
			}
			if cfg.DevJSON == "" {
				if data == "" {
					return errors.New("give --spawn, --data DIR or --dev-json FILE")
				}
				cfg.DevJSON = filepath.Join(data, "dev.json")
			}
			cfg.Progress = stderr
			if floor {
				stop, err := startFloor(ctx, &cfg, data, floorExe, serverEnv, floorAudit, stderr)
				if err != nil {
					return err
				}
				defer stop()
			}
			if clientProf != "" {
				f, err := os.Create(clientProf)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := rpprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer rpprof.StopCPUProfile()
			}
			if http2 {
				protos = "h1,h2,h2-conns"
			}
			variants, err := parseProtocols(protos)
			if err != nil {
				return err
			}
			var reports []*bench.Report
			for i, c := range concs {
				for j, v := range variants {
					run := cfg
					run.Concurrency = c
					run.HTTP2, run.HTTP2Conns = v.http2, v.conns
					run.Raw = !noRaw && i == len(concs)-1 && j == len(variants)-1
					if i > 0 || j > 0 {
						run.Populate = false // done by the first run
					}
					rep, err := bench.Run(ctx, run)
					if err != nil {
						return err
					}
					reports = append(reports, rep)
					if !asJSON {
						rep.WriteText(stdout)
						fmt.Fprintln(stdout)
					}
				}
			}
			if raw := reports[len(reports)-1].Raw; raw != nil {
				for _, r := range reports {
					r.SetRaw(raw)
				}
			}
			if len(variants) > 1 && !asJSON {
				bench.WriteProtocols(stdout, reports)
			} else if len(reports) > 1 && !asJSON {
				bench.WriteScaling(stdout, reports)
			}
			out := struct {
				Runs []*bench.Report `json:"runs"`
			}{reports}
			raw, err := json.MarshalIndent(out, "", "  ")
			if err != nil {
				return err
			}
			if asJSON {
				fmt.Fprintf(stdout, "%s\n", raw)
			}
			if jsonOut != "" {
				if err := os.WriteFile(jsonOut, append(raw, '\n'), 0o644); err != nil {
					return err
				}
			}
			if floor && !asJSON {
				fmt.Fprintln(stdout)
				bench.WriteFloor(stdout, reports)
			}
			var failed int64
			for _, r := range reports {
				failed += r.Requests - r.OK
				if r.Floor != nil {
					failed += r.Floor.Requests - r.Floor.OK
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d requests failed", failed)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Op, "op", bench.OpSecretGet, "operation (see above)")
	f.StringVarP(&conc, "concurrency", "c", "16", "workers, or a comma-separated list for a scaling table (1,4,16,64)")
	f.DurationVarP(&cfg.Duration, "duration", "d", 10*time.Second, "measured duration of each run")
	f.Int64VarP(&cfg.Requests, "requests", "n", 0, "stop each run after this many requests instead of --duration")
	f.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured load before each run")
	f.StringVar(&data, "data", "", "the dev server's data directory (reads DIR/dev.json); with --spawn: where to start it (default: a temporary one)")
	f.StringVar(&cfg.DevJSON, "dev-json", "", "the dev server's dev.json (instead of --data)")
	f.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process ID, for its CPU time and memory (/proc/PID)")
	f.BoolVar(&spawn, "spawn", false, "start `keyward server --dev` as a separate process for the run and stop it afterwards")
	f.StringArrayVar(&serverFlags, "server-flag", nil, "extra flag for the spawned server (repeatable)")
	f.StringVar(&serverExe, "server-exe", "", "with --spawn: the keyward binary to start (default: this one)")
	f.StringVar(&serverAudit, "server-audit", "", "with --spawn: start the hidden profiling dev server (`keyward bench server`) with its audit log on or off (off: events are completed and observed but not written), to measure what the fail-closed audit costs in one build")
	f.StringArrayVar(&serverEnv, "server-env", nil, "extra KEY=VALUE environment variable for the spawned server, e.g. GOGC=200 (repeatable)")
	f.BoolVar(&http2, "http2", false, "compare the protocols in one run against the same server: HTTP/1.1 (one connection per worker), HTTP/2 with one connection × N streams and HTTP/2 with N connections × 1 stream (--protocols h1,h2,h2-conns)")
	f.StringVar(&protos, "protocols", "h1", "comma-separated: h1 (one HTTP/1.1 keep-alive connection per worker), h2 (every worker multiplexed over one HTTP/2 connection, what an Azure SDK client does), h2-conns (one HTTP/2 connection per worker)")
	f.BoolVar(&cfg.NetHTTP, "net-http", false, "send HTTP/1.1 load through Go's net/http client instead of the lean one (more client CPU on the shared cores)")
	f.BoolVar(&noRaw, "no-raw", false, "skip the raw-primitive run")
	f.DurationVar(&cfg.RawDuration, "raw-duration", 5*time.Second, "duration of the raw-primitive run")
	f.IntVar(&cfg.RawGoroutines, "raw-goroutines", 0, "goroutines of the raw-primitive run (default: one per core; hsm-sign-*: one token session per worker, --concurrency)")
	f.IntVar(&cfg.SecretSize, "secret-size", 64, "secret value size in bytes")
	f.IntVar(&cfg.Names, "names", 1, "distinct secrets: get reads random ones, set cycles through them")
	f.BoolVar(&cfg.Populate, "populate", false, "secret-get/secret-list: write the --names secrets first")
	f.StringVar(&cfg.Prefix, "prefix", "bench", "name prefix of the secrets and keys the run creates")
	f.StringVar(&cfg.HSMURL, "hsm-url", "", "managed HSM URL for aes-gcm-encrypt")
	f.BoolVar(&asJSON, "json", false, "print the reports as JSON instead of text")
	f.StringVar(&jsonOut, "json-out", "", "also write the JSON reports to this file")
	f.StringVar(&profileDir, "profile-dir", "", "with --spawn: run a profiling dev server and save its CPU and allocation profiles of each measured phase here")
	f.IntVar(&cfg.ClientProcs, "client-procs", 0, "GOMAXPROCS of this tool during the load (default: every core; the raw run always uses every core)")
	f.StringVar(&clientProf, "client-cpuprofile", "", "write this tool's own CPU profile (setup, load and raw phases) to a file")
	f.BoolVar(&floor, "floor", false, "secret-get: also measure a bare net/http TLS server (same TLS and server settings, a captured secret-get response) with the same load, right after each Keyward run, and report Keyward − floor")
	f.BoolVar(&floorAudit, "floor-audit", true, "with --floor: the floor server appends one audit-sized, SHA-256 chained line per request to a file (the fail-closed audit's mandatory write)")
	f.StringVar(&floorExe, "floor-exe", "", "with --floor: the keyward binary whose hidden `bench floor-server` runs the floor (default: this one, whatever --server-exe is)")
	cmd.AddCommand(newBenchServerCmd(stdout, stderr), newBenchFloorServerCmd())
	return cmd
}

// startFloor captures a secret-get response (and its audit line's size)
// from the dev server of cfg and starts `keyward bench floor-server` (this
// binary) answering with it; it sets cfg.Floor.
func startFloor(ctx context.Context, cfg *bench.Config, data, exe string, env []string, withAudit bool, stderr io.Writer) (func(), error) {
	fr, err := bench.CaptureFloorResponse(ctx, *cfg, filepath.Join(data, "audit.log"))
	if err != nil {
		return nil, fmt.Errorf("--floor: %w", err)
	}
	dir := filepath.Join(data, "floor")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	respFile := filepath.Join(dir, "response.json")
	if err := bench.WriteFloorResponse(respFile, fr); err != nil {
		return nil, err
	}
	info, err := bench.ReadDevInfo(cfg.DevJSON)
	if err != nil {
		return nil, err
	}
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	ready := filepath.Join(dir, "ready.json")
	args := []string{"bench", "floor-server", "--listen", "127.0.0.1:0", "--tls-dir", filepath.Dir(info.CAFile),
		"--response", respFile, "--ready", ready}
	auditLine := 0
	if withAudit {
		args = append(args, "--audit-file", filepath.Join(dir, "audit.log"))
		auditLine = fr.AuditLineBytes
	}
	srv, r, err := bench.StartFloorServer(ctx, exe, args, env, ready, stderr)
	if err != nil {
		return nil, err
	}
	cfg.Floor = &bench.FloorTarget{Addr: r.Listen, PID: srv.PID(), AuditLineBytes: auditLine}
	return func() { srv.Stop() }, nil
}

// newBenchFloorServerCmd is the hidden `keyward bench floor-server`: the
// floor of `keyward bench --floor`, a bare net/http TLS server with the
// TLS configuration and http.Server settings of Keyward's listener
// (server.ListenerTLSConfig, server.NewHTTPServer) and the dev server's
// certificate, answering every request on any host and path with one
// captured response (bench.FloorHandler). It is a measuring instrument, not
// a server: it holds no secret but the captured bundle of a benchmark
// secret.
func newBenchFloorServerCmd() *cobra.Command {
	var listen, tlsDir, respFile, auditFile, ready string
	cmd := &cobra.Command{
		Use:    "floor-server",
		Short:  "Run the bare HTTPS floor server of keyward bench --floor (benchmark only)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			host, _, err := net.SplitHostPort(listen)
			if err != nil || !net.ParseIP(host).IsLoopback() {
				return errors.New("--listen must be a loopback address, e.g. 127.0.0.1:0")
			}
			fr, err := bench.ReadFloorResponse(respFile)
			if err != nil {
				return err
			}
			cert, err := bench.DevCertificate(tlsDir)
			if err != nil {
				return err
			}
			tlsCfg, err := server.ListenerTLSConfig(server.TLSConfig{})
			if err != nil {
				return err
			}
			tlsCfg.Certificates = []tls.Certificate{cert}
			var af *os.File
			if auditFile != "" {
				if af, err = os.OpenFile(auditFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY|os.O_TRUNC, 0o600); err != nil {
					return err
				}
				defer af.Close()
			}
			setGCPercent(os.Getenv) // as keyward server does
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			hs := server.NewHTTPServer(bench.NewFloorHandler(fr, af), tlsCfg, log.New(io.Discard, "", 0))
			done := make(chan error, 1)
			go func() { done <- hs.ServeTLS(ln, "", "") }()
			raw, _ := json.Marshal(bench.FloorReady{Listen: ln.Addr().String(), AuditFile: auditFile})
			if err := os.WriteFile(ready+".tmp", raw, 0o600); err != nil {
				return err
			}
			if err := os.Rename(ready+".tmp", ready); err != nil {
				return err
			}
			select {
			case err := <-done:
				return err
			case <-cmd.Context().Done():
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return hs.Shutdown(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:0", "loopback address to listen on")
	f.StringVar(&tlsDir, "tls-dir", "", "the dev server's TLS directory (server-cert.pem, server-key.pem, ca.pem)")
	f.StringVar(&respFile, "response", "", "the captured response (JSON, from keyward bench --floor)")
	f.StringVar(&auditFile, "audit-file", "", "append one chained audit-sized line per request here (empty: no audit write)")
	f.StringVar(&ready, "ready", "", "write {\"listen\": ADDR} here once listening")
	for _, n := range []string{"tls-dir", "response", "ready"} {
		cmd.MarkFlagRequired(n)
	}
	return cmd
}

// protocolVariant is one entry of --protocols.
type protocolVariant struct{ http2, conns bool }

func parseProtocols(s string) ([]protocolVariant, error) {
	var out []protocolVariant
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "h1":
			out = append(out, protocolVariant{})
		case "h2":
			out = append(out, protocolVariant{http2: true})
		case "h2-conns":
			out = append(out, protocolVariant{http2: true, conns: true})
		default:
			return nil, fmt.Errorf("--protocols: %q is not h1, h2 or h2-conns", p)
		}
	}
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// newBenchServerCmd is the hidden `keyward bench server`: a dev server like
// `keyward server --dev` that also serves net/http/pprof on a loopback
// address, so that `keyward bench --profile-dir` can take CPU and
// allocation profiles of the measured phase only. It is for profiling, not
// for the figures: those come from the real `keyward server --dev`.
func newBenchServerCmd(stdout, stderr io.Writer) *cobra.Command {
	var listen, data, pprofAddr, auditMode string
	cmd := &cobra.Command{
		Use:    "server",
		Short:  "Run a dev server with a loopback pprof endpoint (profiling only)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if pprofAddr != "" {
				host, _, err := net.SplitHostPort(pprofAddr)
				if err != nil || !net.ParseIP(host).IsLoopback() {
					return errors.New("--pprof must be a loopback address, e.g. 127.0.0.1:6060")
				}
			}
			cfg := server.Config{
				Dev: true, Listen: listen, DataDir: data, DNSSuffix: "localhost",
				Log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
				// Its own SoftHSM2 token, as `keyward server --dev` makes
				// (the hsm-sign-* operations sign in it).
				DevHSMModule: cmp.Or(os.Getenv("KEYWARD_HSM_MODULE"), hsm.DefaultSoftHSMModule),
			}
			switch auditMode {
			case "on":
			case "off":
				// For measuring what the audit write costs, in this
				// hidden benchmark server only: events are still
				// completed and observed (alerts, metrics), not written.
				cfg.TestOnlyWrapAuditSink = func(audit.Sink) audit.Sink { return discardSink{} }
				fmt.Fprintln(stderr, "keyward bench server: AUDIT LOG OFF (benchmark only)")
			default:
				return errors.New("--audit: on or off")
			}
			setGCPercent(os.Getenv)
			s, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			if pprofAddr != "" {
				mux := http.NewServeMux()
				mux.HandleFunc("/debug/pprof/", pprof.Index)
				mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
				ps := &http.Server{Addr: pprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
				go ps.ListenAndServe()
				defer ps.Close()
			}
			if pprofAddr != "" {
				fmt.Fprintf(stdout, "Keyward dev server on https://%s, pprof on http://%s/debug/pprof/\n", s.Addr(), pprofAddr)
			} else {
				fmt.Fprintf(stdout, "Keyward dev server on https://%s\n", s.Addr())
			}
			<-cmd.Context().Done()
			return s.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:0", "address to listen on")
	f.StringVar(&data, "data", "", "data directory")
	f.StringVar(&pprofAddr, "pprof", "", "loopback address for net/http/pprof, e.g. 127.0.0.1:6060 (empty: none)")
	f.StringVar(&auditMode, "audit", "on", "on, or off: the audit sink discards events (to measure its cost; never for real use)")
	cmd.MarkFlagRequired("data")
	return cmd
}

// discardSink takes every event and writes none: the audit-off side of
// `keyward bench --server-audit off`.
type discardSink struct{}

func (discardSink) Write(context.Context, *audit.Event) error { return nil }
func (discardSink) Close() error                              { return nil }
