// Package metrics exposes Keyward's Prometheus metrics (/metrics): requests
// by surface, operation and status and their latency, crypto operations,
// throttled requests, the seal state, background job lag, audit sink
// health and storage latency.
//
// Request metrics are taken from the audit events as they are recorded
// (audit.Log.Observe), so every surface is counted the same way and a
// request is counted once. Label values come from fixed vocabularies
// (surface, operation name, status code): never an object name, a caller
// or an IP address.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/storage"
)

// Sources are the server's states the metrics read at scrape time.
type Sources struct {
	Sealed     func() bool
	AuditSinks func() []audit.SinkState
	// JobLastRun returns when each job last started (clock time) and now.
	JobLastRun func() (map[string]time.Time, time.Time)
}

// Metrics is the registry and the collectors fed on the request path.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	crypto   *prometheus.CounterVec
	throttle *prometheus.CounterVec
	storage  *prometheus.HistogramVec

	mu     sync.Mutex
	cached map[reqKey]reqSeries // label lookups are cached: the hot path does no hashing of label values
	crypts map[cryptoKey]prometheus.Counter
}

type cryptoKey struct{ op, alg, prot, result string }

type reqKey struct {
	surface, op string
	status      int
}

type reqSeries struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

// cryptoOps are the key operations counted as crypto operations.
var cryptoOps = map[string]bool{"KeySign": true, "KeyVerify": true, "KeyEncrypt": true, "KeyDecrypt": true,
	"KeyWrap": true, "KeyUnwrap": true, "KeyRelease": true, "KeyEncapsulate": true, "KeyDecapsulate": true}

// New returns the metrics, registered with the Go and process collectors
// and the state read from src.
func New(src Sources) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), cached: map[reqKey]reqSeries{}, crypts: map[cryptoKey]prometheus.Counter{}}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyward_requests_total",
		Help: "Requests answered, by surface (vault, management, identity, sys, ...), Azure operation name and HTTP status."},
		[]string{"surface", "operation", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keyward_request_duration_seconds",
		Help:    "Time to answer a request, by surface and operation (until its audit event was recorded).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
		[]string{"surface", "operation"})
	m.crypto = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyward_crypto_operations_total",
		Help: "Key operations (sign, verify, encrypt, decrypt, wrap, unwrap, encapsulate, decapsulate, release) by operation, algorithm, protection (hsm, software) and result; algorithm and protection are \"none\" for an operation that did not run."},
		[]string{"operation", "algorithm", "protection", "result"})
	m.throttle = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keyward_throttled_requests_total",
		Help: "Requests answered 429 (throttled), by surface."}, []string{"surface"})
	m.storage = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keyward_storage_duration_seconds",
		Help:    "Storage transaction time, by kind (view, update) and outcome.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}},
		[]string{"kind", "outcome"})
	m.reg.MustRegister(m.requests, m.latency, m.crypto, m.throttle, m.storage,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if src.Sealed != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "keyward_sealed",
			Help: "1 while the barrier is sealed."}, func() float64 {
			if src.Sealed() {
				return 1
			}
			return 0
		}))
	}
	if src.AuditSinks != nil {
		m.reg.MustRegister(&sinkCollector{states: src.AuditSinks})
	}
	if src.JobLastRun != nil {
		m.reg.MustRegister(&jobCollector{last: src.JobLastRun})
	}
	return m
}

// Observe counts one recorded request (audit.Log.Observe).
func (m *Metrics) Observe(e *audit.Event) {
	surface := e.Service
	if surface == "" {
		surface = "unknown"
	}
	op := e.OperationName
	if op == "" {
		op = "unknown"
	}
	k := reqKey{surface, op, e.Status}
	m.mu.Lock()
	s, ok := m.cached[k]
	if !ok && len(m.cached) < 10000 {
		s = reqSeries{count: m.requests.WithLabelValues(surface, op, strconv.Itoa(e.Status)), latency: m.latency.WithLabelValues(surface, op)}
		m.cached[k] = s
	}
	m.mu.Unlock()
	if s.count == nil { // beyond the cache bound: look up each time
		s = reqSeries{count: m.requests.WithLabelValues(surface, op, strconv.Itoa(e.Status)), latency: m.latency.WithLabelValues(surface, op)}
	}
	s.count.Inc()
	s.latency.Observe(e.LatencyMS / 1000)
	if cryptoOps[op] {
		alg, prot := e.Algorithm, e.Protection
		if alg == "" || prot == "" {
			alg, prot = "none", "none"
		}
		k := cryptoKey{op, alg, prot, string(e.Result)}
		m.mu.Lock()
		c, ok := m.crypts[k]
		if !ok && len(m.crypts) < 10000 {
			c = m.crypto.WithLabelValues(k.op, k.alg, k.prot, k.result)
			m.crypts[k] = c
		}
		m.mu.Unlock()
		if c == nil { // beyond the cache bound: look up each time
			c = m.crypto.WithLabelValues(k.op, k.alg, k.prot, k.result)
		}
		c.Inc()
	}
	if e.Status == http.StatusTooManyRequests {
		m.throttle.WithLabelValues(surface).Inc()
	}
}

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry, for tests and further collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// sinkCollector reports every audit sink's health and counts at scrape.
type sinkCollector struct{ states func() []audit.SinkState }

var (
	sinkHealthy  = prometheus.NewDesc("keyward_audit_sink_healthy", "1 when the sink accepted the last event it was given.", []string{"sink", "required"}, nil)
	sinkAccepted = prometheus.NewDesc("keyward_audit_sink_events_total", "Events given to the sink, by outcome.", []string{"sink", "outcome"}, nil)
	jobLag       = prometheus.NewDesc("keyward_job_seconds_since_last_run", "Seconds (server clock) since each background job last started.", []string{"job"}, nil)
)

func (c *sinkCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sinkHealthy
	ch <- sinkAccepted
}

func (c *sinkCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.states() {
		h := 0.0
		if s.Healthy {
			h = 1
		}
		ch <- prometheus.MustNewConstMetric(sinkHealthy, prometheus.GaugeValue, h, s.Name, strconv.FormatBool(s.Required))
		ch <- prometheus.MustNewConstMetric(sinkAccepted, prometheus.CounterValue, float64(s.Accepted), s.Name, "accepted")
		ch <- prometheus.MustNewConstMetric(sinkAccepted, prometheus.CounterValue, float64(s.Failures), s.Name, "refused")
	}
}

type jobCollector struct {
	last func() (map[string]time.Time, time.Time)
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) { ch <- jobLag }

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	runs, now := c.last()
	for name, t := range runs {
		if t.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(jobLag, prometheus.GaugeValue, now.Sub(t).Seconds(), name)
	}
}

// WrapStorage times every transaction of b.
func (m *Metrics) WrapStorage(b storage.Backend) storage.Backend {
	return &timedBackend{Backend: b, m: m,
		view: [2]prometheus.Observer{m.storage.WithLabelValues("view", "ok"), m.storage.WithLabelValues("view", "error")},
		upd:  [2]prometheus.Observer{m.storage.WithLabelValues("update", "ok"), m.storage.WithLabelValues("update", "error")}}
}

type timedBackend struct {
	storage.Backend
	m         *Metrics
	view, upd [2]prometheus.Observer
}

func (t *timedBackend) View(ctx context.Context, fn func(storage.Tx) error) error {
	start := time.Now()
	err := t.Backend.View(ctx, fn)
	t.view[outcome(err)].Observe(time.Since(start).Seconds())
	return err
}

func (t *timedBackend) Update(ctx context.Context, fn func(storage.Tx) error) error {
	start := time.Now()
	err := t.Backend.Update(ctx, fn)
	t.upd[outcome(err)].Observe(time.Since(start).Seconds())
	return err
}

func outcome(err error) int {
	if err != nil {
		return 1
	}
	return 0
}
