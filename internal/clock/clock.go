// Package clock is the one source of time in Keyward.
//
// Token lifetimes, nbf/exp checks, soft-delete retention, rotation and audit
// timestamps all read a Clock, and background jobs wait on its timers and
// tickers, so that tests move time without sleeping and then see the job
// run (DESIGN.md invariant 6). time.Now and the time package's timers
// appear only in Real.
package clock

import (
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// NewTimer is time.NewTimer on this clock.
	NewTimer(d time.Duration) Timer
	// NewTicker is time.NewTicker on this clock (d > 0).
	NewTicker(d time.Duration) Ticker
}

// Timer is a *time.Timer, or a Fake's.
type Timer interface {
	C() <-chan time.Time
	// Stop and Reset behave as time.Timer's (Go 1.23 semantics: no stale
	// value is received after either returns).
	Stop() bool
	Reset(d time.Duration) bool
}

// Ticker is a *time.Ticker, or a Fake's.
type Ticker interface {
	C() <-chan time.Time
	Stop()
	Reset(d time.Duration)
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// NewTicker returns a time.Ticker.
func (Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time   { return r.t.C }
func (r realTicker) Stop()                 { r.t.Stop() }
func (r realTicker) Reset(d time.Duration) { r.t.Reset(d) }
