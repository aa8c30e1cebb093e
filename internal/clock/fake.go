package clock

import (
	"sort"
	"sync"
	"time"
)

// Fake is a clock that moves only when told to. Its timers and tickers
// fire when Advance or Set moves the time to or past their deadline; the
// values are sent as a real ticker sends them (a buffer of one, ticks
// dropped while it is full), so a goroutine waiting on one runs after the
// call returns. To know that the work a tick triggered has finished, wait
// on that work (internal/jobs: Runner.WaitRunSince). It is safe for
// concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[*fakeWaiter]bool // pending timers and tickers
}

// NewFake returns a Fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t, waiters: map[*fakeWaiter]bool{}} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the clock forward by d and fires what is due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(f.now.Add(d))
}

// Set sets the clock to t and fires what is due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(t)
}

// Waiters reports how many timers and tickers are pending.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

func (f *Fake) setLocked(t time.Time) {
	f.now = t
	due := make([]*fakeWaiter, 0, len(f.waiters))
	for w := range f.waiters {
		if !w.when.After(t) {
			due = append(due, w)
		}
	}
	sort.Slice(due, func(i, j int) bool { return due[i].when.Before(due[j].when) })
	for _, w := range due {
		select {
		case w.c <- t:
		default: // the last tick has not been received: dropped, as time.Ticker does
		}
		if w.period <= 0 {
			delete(f.waiters, w)
			continue
		}
		// The next tick is the first multiple of the period after t.
		missed := t.Sub(w.when)/w.period + 1
		w.when = w.when.Add(missed * w.period)
	}
}

// NewTimer returns a timer that fires when the clock reaches Now()+d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	w := &fakeWaiter{f: f, c: make(chan time.Time, 1)}
	w.Reset(d)
	return w
}

// NewTicker returns a ticker that fires every d of fake time.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	w := &fakeWaiter{f: f, c: make(chan time.Time, 1), period: d}
	w.schedule(d)
	return fakeTicker{w}
}

// fakeWaiter is a Fake's timer or (with a period) ticker.
type fakeWaiter struct {
	f      *Fake
	c      chan time.Time
	when   time.Time
	period time.Duration
}

func (w *fakeWaiter) C() <-chan time.Time { return w.c }

// Stop stops the timer; it reports whether the timer was pending.
func (w *fakeWaiter) Stop() bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	was := w.f.waiters[w]
	delete(w.f.waiters, w)
	w.drain()
	return was
}

// Reset makes the timer fire d after the current fake time.
func (w *fakeWaiter) Reset(d time.Duration) bool {
	return w.schedule(d)
}

func (w *fakeWaiter) schedule(d time.Duration) bool {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	was := w.f.waiters[w]
	w.drain()
	w.when = w.f.now.Add(d)
	if w.f.waiters == nil {
		w.f.waiters = map[*fakeWaiter]bool{}
	}
	w.f.waiters[w] = true
	if d <= 0 {
		w.f.setLocked(w.f.now) // fires at once
	}
	return was
}

func (w *fakeWaiter) drain() {
	select {
	case <-w.c:
	default:
	}
}

type fakeTicker struct{ w *fakeWaiter }

func (t fakeTicker) C() <-chan time.Time { return t.w.c }
func (t fakeTicker) Stop()               { t.w.Stop() }
func (t fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	t.w.f.mu.Lock()
	t.w.period = d
	t.w.f.mu.Unlock()
	t.w.schedule(d)
}
