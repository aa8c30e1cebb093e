// Package jobs runs Keyward's background work on the injected clock.
//
// A Runner runs each Job on a ticker of its Clock: the due work of the
// vaults (purge after retention, rotation, expiry notifications,
// certificate lifetime actions, event and mail delivery) on the leader
// only, the refresh of what a node keeps in memory on every node, all only
// while the node is ready (unsealed). Work that has a time is kept in due
// queues (queue.go), whose layout this package alone writes and reads;
// key rotation, decided from each key's policy, scans the policies.
//
// Tests give the server a clock.Fake, advance it, and wait for the run the
// advance triggered (WaitRunSince), or run a job once more at the same
// moment (RunOnce); then they assert what the job did — or that it ran and
// did nothing. They never sleep and hope the scheduler ticked.
package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

// Job is one periodic task.
type Job struct {
	Name  string
	Every time.Duration
	// LeaderOnly jobs run only on the node that leads (Config.Leader).
	LeaderOnly bool
	// Run does the work. Jobs check their preconditions in the
	// transactions that do the work, so a run that two nodes make during a
	// leader takeover still happens once. An error is logged.
	Run func(ctx context.Context) error
}

// Leader elects the one node that runs LeaderOnly jobs
// (*postgres.Leader is one).
type Leader interface {
	// Lead reports whether this node leads, trying to become leader when
	// it does not.
	Lead(ctx context.Context) (bool, error)
	// Resign gives leadership up (on shutdown).
	Resign()
}

// Config are a Runner's dependencies.
type Config struct {
	Clock clock.Clock
	Log   *slog.Logger
	// Ready gates every run: a job does not run while it reports false
	// (the barrier is sealed). Nil: always ready.
	Ready func() bool
	// Leader gates LeaderOnly jobs; nil: this node is the only one.
	Leader Leader
	// LeadTimeout bounds one election; zero: 10 seconds.
	LeadTimeout time.Duration
}

// Runner runs jobs until Stop.
type Runner struct {
	cfg  Config
	jobs map[string]*job
	list []*job
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	started bool
	stopped bool
	// changed is closed (and replaced) whenever a run finishes.
	changed chan struct{}
}

type job struct {
	Job
	kick   chan struct{}
	ticker clock.Ticker
	// Guarded by Runner.mu.
	runs      uint64    // runs started
	finished  uint64    // runs finished
	lastStart time.Time // clock time at which the last finished run started
}

// New returns a Runner for jobs. Names must be unique and Every positive.
func New(cfg Config, jobs ...Job) *Runner {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.LeadTimeout == 0 {
		cfg.LeadTimeout = 10 * time.Second
	}
	r := &Runner{cfg: cfg, jobs: map[string]*job{}, stop: make(chan struct{}), changed: make(chan struct{})}
	for _, j := range jobs {
		if _, dup := r.jobs[j.Name]; dup || j.Every <= 0 || j.Run == nil {
			panic(fmt.Sprintf("jobs: bad job %q", j.Name))
		}
		jj := &job{Job: j, kick: make(chan struct{}, 1)}
		r.jobs[j.Name] = jj
		r.list = append(r.list, jj)
	}
	return r
}

// Start starts every job's ticker, before it returns, so that a clock
// advanced right after Start fires them, and runs the jobs in the
// background.
func (r *Runner) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.stopped {
		return
	}
	r.started = true
	for _, j := range r.list {
		j.ticker = r.cfg.Clock.NewTicker(j.Every)
		r.wg.Add(1)
		go r.loop(j)
	}
}

// Stop stops the jobs, waits for a run in progress to finish and resigns
// leadership. It is safe to call twice.
func (r *Runner) Stop() {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	close(r.stop)
	r.mu.Unlock()
	r.wg.Wait()
	if r.cfg.Leader != nil {
		r.cfg.Leader.Resign()
	}
}

func (r *Runner) loop(j *job) {
	defer r.wg.Done()
	defer j.ticker.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-j.ticker.C():
		case <-j.kick:
		}
		r.runOnce(j)
	}
}

// runOnce runs j if the node is ready and, for a LeaderOnly job, leads.
func (r *Runner) runOnce(j *job) {
	if r.cfg.Ready != nil && !r.cfg.Ready() {
		return
	}
	if j.LeaderOnly && r.cfg.Leader != nil {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.LeadTimeout)
		lead, err := r.cfg.Leader.Lead(ctx)
		cancel()
		if err != nil {
			r.cfg.Log.Warn("leader election failed", "job", j.Name, "error", err)
		}
		if !lead {
			return
		}
	}
	start := r.cfg.Clock.Now()
	r.mu.Lock()
	j.runs++
	r.mu.Unlock()
	err := j.Run(context.Background())
	if err != nil {
		r.cfg.Log.Error("background job failed", "job", j.Name, "error", err)
	}
	r.mu.Lock()
	j.finished++
	if start.After(j.lastStart) {
		j.lastStart = start
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Runs reports how many runs of job name have finished.
func (r *Runner) Runs(name string) uint64 {
	j := r.job(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	return j.finished
}

// LastStarts returns, per job, the clock time its last finished run
// started (zero: never ran), for the job-lag metric.
func (r *Runner) LastStarts() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]time.Time, len(r.jobs))
	for name, j := range r.jobs {
		out[name] = j.lastStart
	}
	return out
}

// WaitRunSince waits until a run of job name that started at clock time t
// or later has finished. After a fake clock is advanced to t, it returns
// once the run that the advance triggered is done (the advance must pass
// the job's next tick).
func (r *Runner) WaitRunSince(ctx context.Context, name string, t time.Time) error {
	j := r.job(name)
	return r.wait(ctx, func() bool { return j.finished > 0 && !j.lastStart.Before(t) })
}

// RunOnce makes job name run now, as a tick would, and waits until a run
// that started after the call has finished. A job that is not ready or
// whose node does not lead does not run: RunOnce then waits until ctx ends.
func (r *Runner) RunOnce(ctx context.Context, name string) error {
	j := r.job(name)
	r.mu.Lock()
	after := j.runs
	r.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default: // a kick is pending already; it runs after this call
	}
	return r.wait(ctx, func() bool { return j.finished > after })
}

func (r *Runner) job(name string) *job {
	j, ok := r.jobs[name]
	if !ok {
		panic("jobs: no job " + name)
	}
	return j
}

// wait waits until done (called with r.mu held) holds.
func (r *Runner) wait(ctx context.Context, done func() bool) error {
	for {
		r.mu.Lock()
		ok, ch, stopped := done(), r.changed, r.stopped
		r.mu.Unlock()
		if ok {
			return nil
		}
		if stopped {
			return fmt.Errorf("jobs: stopped")
		}
		select {
		case <-ch:
		case <-r.stop:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
