package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is context.WithDeadline(parent, deadline) whose timer is
// made only when something waits on the context: the first Done (which
// context.WithCancel, AfterFunc and every select on it call) arms a real
// context.WithDeadline, and from then on every method is that context's.
// Until then Err reads the clock and the parent, as a timer context would
// answer. Most requests (a bbolt read checks Err, never waits) end
// without a timer, a timer context, a channel or a registration in the
// parent's children: context.WithTimeout was about 2 % of a secret read's
// CPU and four of its allocations.
//
// Value forwards to the armed context once there is one, so that a child
// made with context.WithCancel finds its cancelCtx (and joins it, instead
// of watching it from a goroutine).
//
// The zero value is not usable; init it, and stop it when the request
// ends (the cancel of context.WithTimeout).
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time
	mu       sync.Mutex // serializes arming with stop
	armed    atomic.Pointer[armedDeadline]
	stopped  atomic.Bool
}

type armedDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *lazyDeadline) init(parent context.Context, deadline time.Time) {
	c.parent, c.deadline = parent, deadline
}

func (c *lazyDeadline) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *lazyDeadline) Done() <-chan struct{} { return c.arm().Done() }

func (c *lazyDeadline) Err() error {
	if a := c.armed.Load(); a != nil {
		return a.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if c.stopped.Load() {
		return context.Canceled
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *lazyDeadline) Value(key any) any {
	if a := c.armed.Load(); a != nil {
		return a.ctx.Value(key)
	}
	return c.parent.Value(key)
}

func (c *lazyDeadline) String() string { return "api.lazyDeadline" }

func (c *lazyDeadline) arm() context.Context {
	if a := c.armed.Load(); a != nil {
		return a.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := c.armed.Load(); a != nil {
		return a.ctx
	}
	ctx, cancel := context.WithDeadline(c.parent, c.deadline)
	if c.stopped.Load() {
		cancel()
	}
	c.armed.Store(&armedDeadline{ctx: ctx, cancel: cancel})
	return ctx
}

// stop is the CancelFunc: Err answers Canceled from now on (unless the
// parent or the deadline ended it first), and an armed timer is released.
func (c *lazyDeadline) stop() {
	c.mu.Lock()
	c.stopped.Store(true)
	a := c.armed.Load()
	c.mu.Unlock()
	if a != nil {
		a.cancel()
	}
}
